// Which failures are worth retrying: lost connections and Postgres errors that a later attempt can
// get past. Everything else (bad SQL in a view, bad data) fails at once.

const TRANSIENT_SQLSTATE_CLASSES = ['08', '53', '57']; // connection, insufficient resources, operator intervention
const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '55P03']); // serialization, deadlock, lock not available
const TRANSIENT_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const TRANSIENT_MESSAGES = [
  /Connection is closed/i,
  /Connection terminated/i,
  /MaxRetriesPerRequest/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
  /Stream isn't writeable/i,
];

export function isTransient(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string') {
      if (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code)) return true;
      if (/^[0-9A-Z]{5}$/.test(code) && TRANSIENT_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return true;
    }
    if (typeof message === 'string' && TRANSIENT_MESSAGES.some((pattern) => pattern.test(message)))
      return true;
    if (current instanceof AggregateError) return current.errors.some(isTransient);
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** Exponential backoff with jitter for the n-th retry (1-based): 250 ms, 500 ms, 1 s … capped at 30 s. */
export function backoffMs(retry: number): number {
  const base = Math.min(30_000, 250 * 2 ** Math.max(0, retry - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}
