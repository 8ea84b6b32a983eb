import { endpointOf, redactSecrets } from './config/redact.ts';
import { describeError, ViewkeeperError } from './errors.ts';

// One wording for "could not connect", for the daemon's start-up and every CLI command: what failed,
// which variable and host (never the password), and what to do. Refused authentication and a missing
// database are told apart from an unreachable server: the fixes differ.

export type Service = 'Redis' | 'Postgres';

export type FailureKind = 'auth' | 'database' | 'unreachable';

const AUTH_MESSAGES =
  /WRONGPASS|NOAUTH|invalid password|invalid username-password|password authentication failed|no password supplied|NOPERM/i;
const AUTH_SQLSTATES = new Set(['28P01', '28000']);

/** What kind of connection failure `error` is. */
export function failureKind(error: unknown): FailureKind {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && AUTH_SQLSTATES.has(code)) return 'auth';
    if (code === '3D000') return 'database';
    if (typeof message === 'string') {
      if (AUTH_MESSAGES.test(message)) return 'auth';
      if (/DB index is out of range|invalid DB index/i.test(message)) return 'database';
    }
    current = (current as { cause?: unknown }).cause;
  }
  return 'unreachable';
}

const DEFAULT_PORTS: Record<Service, number> = { Redis: 6379, Postgres: 5432 };

/**
 * The one-line error for a failed connection to `service` at `url`, configured by `variable`.
 * A Redis database number the server lacks is a configuration error (`E_CONFIG`, exit 2); the rest
 * are `E_CONNECT` (exit 1).
 */
export function connectFailure(
  service: Service,
  url: string,
  variable: string,
  error: unknown,
): ViewkeeperError {
  const endpoint = endpointOf(url, DEFAULT_PORTS[service]);
  const reason = redactSecrets(describeError(error));
  const kind = failureKind(error);
  if (kind === 'auth') {
    return new ViewkeeperError(
      'E_CONNECT',
      `${service} at ${endpoint} (${variable}): authentication failed (${reason}); check the user and password in ${variable}`,
      { cause: error },
    );
  }
  if (kind === 'database' && service === 'Redis') {
    const db = databaseNumber(url);
    return new ViewkeeperError(
      'E_CONFIG',
      `${variable} selects database ${db}, which Redis at ${endpoint} does not have (${reason}); use a number below the server's 'databases' setting (default 16: 0–15)`,
      { cause: error },
    );
  }
  if (kind === 'database') {
    return new ViewkeeperError(
      'E_CONNECT',
      `Postgres at ${endpoint} (${variable}): ${reason}; run viewkeeper migrate (it creates the database) or fix the database name in ${variable}`,
      { cause: error },
    );
  }
  return new ViewkeeperError(
    'E_CONNECT',
    `cannot reach ${service} at ${endpoint} (${variable}): ${reason}; check that ${service} runs there and that ${variable} names it`,
    { cause: error },
  );
}

/** The database number of a Redis URL (`redis://host:6379/5` → 5), 0 when it names none. */
export function databaseNumber(url: string): number {
  try {
    const path = new URL(url).pathname.replace(/^\//, '');
    return path === '' ? 0 : Number(path);
  } catch {
    return 0;
  }
}
