/**
 * How a column value becomes a Redis string: numbers and strings as they are, `null` as the empty
 * string, dates as ISO-8601, booleans as `true`/`false`, anything else as JSON.
 */
export function toRedisString(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Date) return value.toISOString();
  return JSON.stringify(value);
}
