import type { Redis } from 'ioredis';
import { ViewkeeperError } from '../errors.ts';
import { latestMark, waitForReceipts } from './receipts.ts';

// Read your writes for an app that writes captured tables with its own SQL. Its transaction's
// statements left rows in viewkeeper.capture_outbox (the triggers' work); a daemon drains them in
// batches and deletes them only after it has marked the refreshes they owe in the refresh backlog
// (capture/drainer.ts). So, after the app's COMMIT: (1) wait until none of those outbox rows is
// left — rows another daemon holds (SKIP LOCKED) are still visible, so several daemons draining
// change nothing; (2) every mark made for them is now at or below the backlog's latest mark: wait
// until every entry marked up to it has been refreshed (receipts.ts). The SQL is plain text here,
// not in src/db, because the client loads no daemon code and runs it on the app's own connection.

/** Anything with pg's `query(text, values)`: a `pg` Pool, Client or PoolClient. */
export interface SqlQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

export interface AfterCommitOptions {
  /**
   * The transaction's id, read inside it with `select pg_current_xact_id()::text`: then only its own
   * outbox rows are waited for. Without it, every change captured before the call is.
   */
  txid?: string | bigint;
  /** Longest wait (ms); then it rejects with `E_TIMEOUT`. @defaultValue 30000 */
  timeoutMs?: number;
}

export const AFTER_COMMIT_DEFAULTS = { timeoutMs: 30_000 } as const;

const OWN_ROWS_LEFT = `select exists (select 1 from viewkeeper.capture_outbox where txid = $1::xid8) as "left"`;
const LAST_ROW = `select max(id)::text as id from viewkeeper.capture_outbox`;
const ROWS_LEFT = `select exists (select 1 from viewkeeper.capture_outbox where id <= $1::bigint) as "left"`;

/** Waits as described above; `queueRedis` holds the refresh backlog. */
export async function afterCommit(
  db: SqlQueryable,
  queueRedis: Redis,
  prefix: string,
  options: AfterCommitOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? AFTER_COMMIT_DEFAULTS.timeoutMs;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new ViewkeeperError(
      'E_USAGE',
      `afterCommit timeoutMs must be a positive number of milliseconds, got ${JSON.stringify(timeoutMs)}`,
    );
  }
  const txid = options.txid === undefined ? undefined : String(options.txid);
  if (txid !== undefined && !/^[0-9]{1,20}$/.test(txid)) {
    throw new ViewkeeperError(
      'E_USAGE',
      `afterCommit txid must be a transaction id from pg_current_xact_id(), got ${JSON.stringify(txid)}`,
    );
  }
  const deadline = Date.now() + timeoutMs;
  const timedOut = (what: string) =>
    new ViewkeeperError(
      'E_TIMEOUT',
      `afterCommit${txid ? ` of transaction ${txid}` : ''}: ${what} within ${timeoutMs} ms (the change is committed and will still be applied); is a daemon running with capture installed?`,
    );

  let query = OWN_ROWS_LEFT;
  let values: unknown[] = [txid];
  if (txid === undefined) {
    const last = (await db.query(LAST_ROW)).rows[0]?.id;
    query = ROWS_LEFT;
    values = [last];
  }
  if (values[0] !== null && values[0] !== undefined) {
    for (let pause = 2; ; pause = Math.min(100, pause * 1.5)) {
      if (!(await db.query(query, values)).rows[0]?.left) break;
      const left = deadline - Date.now();
      if (left <= 0) throw timedOut('the outbox was not drained');
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
    }
  }
  const seq = await latestMark(queueRedis, prefix);
  if (!(await waitForReceipts(queueRedis, prefix, [{ seq }], deadline))) {
    throw timedOut('the refreshes it owes were not written');
  }
}
