import { redactSecrets } from './config/redact.ts';

/**
 * The error codes viewkeeper throws. Codes are stable: scripts and other apps may match on them.
 */
export type ErrorCode =
  | 'E_CONFIG'
  | 'E_USAGE'
  | 'E_CONNECT'
  | 'E_MIGRATION'
  | 'E_VIEW_DEFINITION'
  | 'E_VIEW_UNKNOWN'
  | 'E_BAD_PARAMS'
  | 'E_BAD_PAYLOAD'
  | 'E_SINK_DEFINITION'
  | 'E_SINK_UNKNOWN'
  | 'E_TIMEOUT'
  | 'E_JOB_FAILED'
  /** A write-behind op the sink or the database refused (kept in viewkeeper.rejected_ops). */
  | 'E_OP_REJECTED'
  /** Redis did not answer in time, the client's circuit breaker is open, or the client is closed. */
  | 'E_UNAVAILABLE'
  /** The HTTP surface could not listen on VK_HTTP_HOST:VK_HTTP_PORT (in use, not allowed). */
  | 'E_HTTP_LISTEN'
  /** A hot standby cancelled a view query (conflict with recovery); transient, retried. */
  | 'E_REPLICA_CONFLICT';

/**
 * Every error viewkeeper raises on purpose. `message` is one line that says what happened, with the
 * offending value, and what to do; `cause` keeps the underlying error for debug logs.
 */
export class ViewkeeperError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ViewkeeperError';
    this.code = code;
  }
}

export function isViewkeeperError(error: unknown, code?: ErrorCode): error is ViewkeeperError {
  return error instanceof ViewkeeperError && (code === undefined || error.code === code);
}

/**
 * A one-line description of any thrown value, for logs and job failure reasons: redacted, as it is
 * how most library errors become text.
 */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return describeError(error.errors[0]);
  }
  const text = error instanceof Error ? error.message || error.name : String(error);
  return redactSecrets(text.replace(/\s*\n\s*/g, ' ').trim());
}
