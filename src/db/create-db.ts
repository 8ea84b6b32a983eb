import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { connectFailure } from '../connect-failure.ts';
import { ResilientCursor } from './cursor.ts';
import type { ViewkeeperDatabase } from './schema.ts';

export interface DbOptions {
  /** Pool size. @defaultValue 10 */
  max?: number;
  /** How long to wait for a connection before failing. @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** `application_name` shown in pg_stat_activity. @defaultValue `viewkeeper` */
  applicationName?: string;
  /**
   * Told of every connection the server dropped (restart, failover, terminated backend). The work
   * that was using it has already failed with the error (a transient one: retried); the pool opens a
   * new connection for the next query. @defaultValue ignore
   */
  onConnectionError?: (error: Error) => void;
  /** The variable `databaseUrl` came from, for connection errors. @defaultValue `DATABASE_URL` */
  variable?: string;
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
  // A client that loses its server emits 'error' on itself, idle or checked out (a query, a cursor, a
  // transaction between statements); the pool forwards only idle clients' errors, and nobody listens
  // to a checked-out client. Without a listener Node exits; with one the query in flight fails
  // (transiently) and the pool replaces the client when it is released. Told once per client: the
  // pool's copy of an idle client's error is dropped.
  const onConnectionError = options.onConnectionError ?? (() => {});
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', (error) => onConnectionError(error)));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool, cursor: ResilientCursor }) });
  let closing: Promise<void> | undefined;

  return {
    db,
    pool,
    async ping() {
      try {
        await pool.query('select 1');
      } catch (error) {
        throw connectFailure('Postgres', databaseUrl, options.variable ?? 'DATABASE_URL', error);
      }
    },
    close() {
      // Kysely only ends a pool it has used; ping() may have been the pool's only user.
      closing ??= db.destroy().then(() => (pool.ended ? undefined : pool.end()));
      return closing;
    },
  };
}
