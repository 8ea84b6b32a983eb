// Scalar values as they arrive on the wire (JSON from producers in any language), checked the same
// way by refresh params and write-behind op fields.

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A 64-bit integer (safe JSON number or decimal string) as its canonical decimal string. */
export function toInt64String(value: unknown): string | undefined {
  let text: string | undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value)) text = String(value);
  else if (typeof value === 'string' && /^-?\d{1,19}$/.test(value)) text = value;
  if (text === undefined) return undefined;
  const big = BigInt(text);
  return big >= INT64_MIN && big <= INT64_MAX ? big.toString() : undefined;
}

/** Whether `value` is a 32-bit integer number. */
export function isInt32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= -2147483648 && value <= 2147483647;
}

/** JSON-ish rendering of a bad value for error messages, bounded in length. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
