import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { endpointOf } from '../config/redact.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import type { ViewkeeperDatabase } from './schema.ts';

export interface DbOptions {
  /** Pool size. @defaultValue 10 */
  max?: number;
  /** How long to wait for a connection before failing. @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** `application_name` shown in pg_stat_activity. @defaultValue `viewkeeper` */
  applicationName?: string;
}

export interface DbHandle<DB = ViewkeeperDatabase> {
  db: Kysely<DB>;
  pool: pg.Pool;
  /** Fails fast with `E_CONNECT` naming host and port when Postgres does not answer. */
  ping(): Promise<void>;
  /** Ends the pool; safe to call more than once. */
  close(): Promise<void>;
}

// int8 → string is pg's default; keep it (ids exceed 2^53 in real systems). numeric stays a string too.

/**
 * Kysely over a pg Pool, with pg-cursor wired in so `.stream()` reads rows in chunks instead of
 * holding a whole result in memory.
 */
export function createDb<DB = ViewkeeperDatabase>(
  databaseUrl: string,
  options: DbOptions = {},
): DbHandle<DB> {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    application_name: options.applicationName ?? 'viewkeeper',
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener Node exits.
  pool.on('error', () => {});
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool, cursor: Cursor }) });
  let closing: Promise<void> | undefined;

  return {
    db,
    pool,
    async ping() {
      try {
        await pool.query('select 1');
      } catch (error) {
        throw new ViewkeeperError(
          'E_CONNECT',
          `cannot reach Postgres at ${endpointOf(databaseUrl, 5432)} (DATABASE_URL): ${describeError(error)}`,
          { cause: error },
        );
      }
    },
    close() {
      // Kysely only ends a pool it has used; ping() may have been the pool's only user.
      closing ??= db.destroy().then(() => (pool.ended ? undefined : pool.end()));
      return closing;
    },
  };
}
