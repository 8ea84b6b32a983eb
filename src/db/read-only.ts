import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient, sql } from 'kysely';
import type pg from 'pg';

/** The outcome of one attempt: its value, or the error that rolled it back. */
export type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };

// biome-ignore lint/suspicious/noExplicitAny: the session runs user queries over any database type
type AnyDb = Kysely<any>;

/**
 * One read-only transaction for looking at a database without changing it (`viewkeeper check`):
 * Postgres refuses every write in it (SQLSTATE 25006), and `close()` rolls it back whatever ran.
 */
export interface ReadOnlySession {
  /** Kysely over the session's one connection, inside its transaction. */
  db: AnyDb;
  /**
   * Runs `fn` inside a savepoint, so that a failing statement (a missing table) does not abort the
   * session's later attempts. With `skipWrites`, each statement gets a savepoint of its own and a
   * refused write returns no rows instead of failing: code that writes as it goes (a sink's
   * `apply`) runs to its end, so every statement it sends is parsed and planned — missing tables
   * and columns still fail — and none is executed.
   */
  attempt<T>(fn: (db: AnyDb) => Promise<T>, options?: { skipWrites?: boolean }): Promise<Attempt<T>>;
  /** Rolls back and releases the connection; safe to call more than once. */
  close(): Promise<void>;
}

const READ_ONLY_REFUSAL = '25006';

export async function openReadOnlySession(pool: pg.Pool): Promise<ReadOnlySession> {
  const client = await pool.connect();
  try {
    await client.query('start transaction read only');
  } catch (error) {
    client.release(true);
    throw error;
  }
  let skipWrites = false;

  async function query(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    if (!skipWrites) return client.query(text, values);
    await client.query('savepoint vk_statement');
    try {
      const result = await client.query(text, values);
      await client.query('release savepoint vk_statement');
      return result;
    } catch (error) {
      await client.query('rollback to savepoint vk_statement');
      if (sqlState(error) !== READ_ONLY_REFUSAL) throw error;
      return { command: '', rowCount: 0, oid: 0, rows: [], fields: [] };
    }
  }
  // Kysely acquires and releases a connection per query; here every one is this client, kept open.
  const connection = { query, release() {} } as unknown as PostgresPoolClient;
  const sessionPool: PostgresPool = { connect: async () => connection, end: async () => {}, options: {} };
  const db: AnyDb = new Kysely({ dialect: new PostgresDialect({ pool: sessionPool }) });
  let closing: Promise<void> | undefined;

  return {
    db,
    async attempt(fn, options = {}) {
      await sql`savepoint vk_attempt`.execute(db);
      let outcome: Attempt<Awaited<ReturnType<typeof fn>>>;
      skipWrites = options.skipWrites ?? false;
      try {
        outcome = { ok: true, value: await fn(db) };
      } catch (error) {
        outcome = { ok: false, error };
      } finally {
        skipWrites = false;
      }
      await sql`${sql.raw(outcome.ok ? 'release' : 'rollback to')} savepoint vk_attempt`.execute(db);
      return outcome;
    },
    close() {
      closing ??= client
        .query('rollback')
        .then(
          () => client.release(),
          (error: unknown) => client.release(error instanceof Error ? error : true),
        )
        .then(() => db.destroy());
      return closing;
    },
  };
}

/** The SQLSTATE of a Postgres error, if it is one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
