import type { Kysely } from 'kysely';
import { changedRows, claimOutbox, deleteOutbox, recordCaptureFailures } from '../db/capture-outbox.ts';
import { describeError } from '../errors.ts';
import { createSleeper } from '../lib/sleeper.ts';
import { backoffMs } from '../lib/transient.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { captureKeys } from '../redis/keys.ts';
import type { RefreshBacklog } from '../sinks/refresh-backlog.ts';
import { mapChanges } from './map-changes.ts';
import type { CapturedTable } from './tables.ts';

// Drains the change-capture outbox into the refresh backlog (the durable, coalescing set of owed
// refreshes that write-behind uses too, so a sink's refresh and the captured change of the same row
// are one entry). Per batch, in one transaction: lock the oldest rows no other daemon holds (SKIP
// LOCKED), map them to (view, params), record failures, mark the backlog — durable in Redis — and
// only then delete the rows and commit. A daemon killed anywhere in between leaves its rows to be
// drained again (at least once: refreshes recompute, so twice is harmless).

export interface CaptureDrainerOptions {
  // biome-ignore lint/suspicious/noExplicitAny: the user's database of any type
  db: Kysely<any>;
  tables: Map<string, CapturedTable>;
  backlog: Pick<RefreshBacklog, 'mark'>;
  /** Queue Redis: where drain counts are kept for `capture status`. Owned by the caller. */
  redis: RedisConnection;
  prefix: string;
  logger: Logger;
  /** Changed rows (keys) per batch; a larger single statement is drained alone. @defaultValue 5000 */
  batchSize?: number;
  /** Longest wait between looks at the outbox without a notification. @defaultValue 2000 */
  pollMs?: number;
  /** Told about every drained batch (metrics); must not throw. */
  observer?: CaptureObserver;
}

/** What the operations surface learns from the drainer: counts, and failures by view. No keys. */
export interface CaptureObserver {
  /** A batch committed: the captured statements and the changed rows (distinct keys) it drained. */
  drained(statements: number, rows: number): void;
  /** Changed rows of `view` whose mapping failed in that batch (the view is rebuilt whole). */
  failed(view: string, count: number): void;
}

export interface CaptureDrainer {
  /** Starts draining now and after every wake() or poll. */
  start(): void;
  /** Drain soon (a notification arrived, or the LISTEN connection came back). */
  wake(): void;
  /** Stops after the batch in flight (within `timeoutMs`). Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export const DRAINER_DEFAULTS = { batchSize: 5000, pollMs: 2000 } as const;
/** Captured statements claimed per batch at most. */
const BATCH_STATEMENTS = 500;
/** How long drain counts are kept (capture status reports the last 5 minutes). */
const COUNT_TTL_S = 3600;
/** How long a drain receipt is kept for a writer waiting on it. */
const RECEIPT_TTL_S = 600;

export function createCaptureDrainer(options: CaptureDrainerOptions): CaptureDrainer {
  const logger = options.logger.child({ component: 'capture' });
  const batchSize = options.batchSize ?? DRAINER_DEFAULTS.batchSize;
  const pollMs = options.pollMs ?? DRAINER_DEFAULTS.pollMs;
  const keys = captureKeys(options.prefix);
  let closed = false;
  let woken = false;
  const idle = createSleeper();
  let loop: Promise<void> | undefined;
  let closing: Promise<void> | undefined;

  /** One batch; returns how many statements and changed rows it drained. */
  async function drainBatch(): Promise<{ statements: number; rows: number; failures: { view: string }[] }> {
    const started = performance.now();
    return options.db.transaction().execute(async (trx) => {
      const statements = await claimOutbox(trx, BATCH_STATEMENTS, batchSize);
      if (statements.length === 0) return { statements: 0, rows: 0, failures: [] };
      const claimedMs = performance.now() - started;
      const rows = changedRows(statements);
      // Lookups run on the pool, not in this transaction: a failing lookup must not abort it.
      const { targets, failures } = await mapChanges(options.db, options.tables, rows);
      const mappedMs = performance.now() - started;
      await recordCaptureFailures(trx, failures);
      const { seq } = await options.backlog.mark(targets);
      await writeReceipts(statements, seq);
      const markedMs = performance.now() - started;
      await deleteOutbox(
        trx,
        statements.map((statement) => statement.id),
      );
      if (failures.length > 0) {
        logger.warn(
          { failed: failures.length, view: failures[0]!.view, reason: failures[0]!.reason },
          'captured changes failed to map: their views are rebuilt whole',
        );
      }
      logger.debug(
        {
          statements: statements.length,
          rows: rows.length,
          refreshes: targets.length,
          ms: Math.round(performance.now() - started),
          claimedMs: Math.round(claimedMs),
          mappedMs: Math.round(mappedMs),
          markedMs: Math.round(markedMs),
        },
        'drained captured changes',
      );
      return { statements: statements.length, rows: rows.length, failures };
    });
  }

  /**
   * For the transactions of the batch that asked for one (a write-behind commit whose refreshes
   * capture brings, see write-behind-worker.ts), records the backlog mark covering their changes.
   * One round trip when nobody asked.
   */
  async function writeReceipts(statements: { txid: string }[], seq: number): Promise<void> {
    const txids = [...new Set(statements.map((statement) => statement.txid))];
    const watched = await options.redis.mget(txids.map((txid) => keys.watch(txid)));
    const asked = txids.filter((_, i) => watched[i] !== null);
    if (asked.length === 0) return;
    const pipeline = options.redis.pipeline();
    for (const txid of asked) pipeline.set(keys.receipt(txid), seq, 'EX', RECEIPT_TTL_S);
    await pipeline.exec();
  }

  function observe(drained: { statements: number; rows: number; failures: { view: string }[] }): void {
    if (!options.observer) return;
    options.observer.drained(drained.statements, drained.rows);
    const byView = new Map<string, number>();
    for (const { view } of drained.failures) byView.set(view, (byView.get(view) ?? 0) + 1);
    for (const [view, n] of byView) options.observer.failed(view, n);
  }

  async function count(rows: number): Promise<void> {
    const key = keys.drained(Math.floor(Date.now() / 60_000));
    await options.redis.multi().incrby(key, rows).expire(key, COUNT_TTL_S).exec();
  }

  async function main(): Promise<void> {
    let failuresInARow = 0;
    while (!closed) {
      woken = false;
      try {
        const drained = await drainBatch();
        failuresInARow = 0;
        if (drained.rows > 0) await count(drained.rows).catch(() => undefined);
        if (drained.statements > 0) observe(drained);
        if (drained.statements > 0) continue; // more may be waiting: look again at once
      } catch (error) {
        failuresInARow += 1;
        const retryInMs = Math.min(10_000, backoffMs(failuresInARow));
        logger.warn({ reason: describeError(error), retryInMs }, 'capture drain failed, will retry');
        if (!closed) await idle.sleep(retryInMs);
        continue;
      }
      // A notification that arrived while the batch ran may be for rows committed after its read.
      if (!closed && !woken) await idle.sleep(pollMs);
    }
  }

  return {
    start() {
      loop ??= main();
    },
    wake() {
      woken = true;
      idle.wake();
    },
    close(timeoutMs) {
      closing ??= (async () => {
        closed = true;
        idle.wake();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          loop,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, timeoutMs);
          }),
        ]);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
