import type { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES, type WriteBehindJobResult, type WriteOp } from '../contract.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import { createQueueEvents } from '../queues/factories.ts';
import type { SinkDefinition } from '../sinks/define-sink.ts';
import { type Receipt, waitForReceipts } from './receipts.ts';

// Read your writes for write-behind: `write(sink, ops, { until })`. The daemon completes a
// write-behind job only after its batch committed and the refreshes it owes were durably marked,
// and the job's result lists per-op rejections and the receipt of those refreshes. So `committed`
// = the job's completion (BullMQ's QueueEvents: one blocking connection, opened on the first wait),
// and `refreshed` = that, then the receipt settled (receipts.ts).

/** What `write()` waits for before it resolves. */
export interface WriteWaitOptions {
  /**
   * `'committed'`: the daemon has written the ops to Postgres. `'refreshed'`: and every view refresh
   * they owe has been written to Redis. Either way the promise rejects with `E_OP_REJECTED` (the
   * daemon's reason) if an op was refused.
   */
  until: 'committed' | 'refreshed';
  /** Longest wait (ms); then it rejects with `E_TIMEOUT` (the ops stay queued). @defaultValue 30000 */
  timeoutMs?: number;
}

export const WRITE_WAIT_DEFAULTS = { timeoutMs: 30_000 } as const;

type WriteJob = Job<{ ops: WriteOp[] }, WriteBehindJobResult>;

export interface WriteWaits {
  /** Throws when `wait` is malformed or names a sink the writer was not given. */
  check(sink: string, wait: WriteWaitOptions, sinks: Map<string, SinkDefinition> | undefined): void;
  /** Resolves with `ids` once the jobs `acks` bring have done what `wait` asks. */
  wait(sink: string, ids: string[], acks: Promise<WriteJob>[], wait: WriteWaitOptions): Promise<string[]>;
  close(): Promise<void>;
}

export function createWriteWaits(options: {
  queue: Queue;
  connection: Redis | undefined;
  prefix: string;
}): WriteWaits {
  let events: QueueEvents | undefined;
  let closed = false;

  function connection(): Redis {
    if (!options.connection) {
      throw new ViewkeeperError('E_CONFIG', 'write() with until needs a writer built from a connection');
    }
    return options.connection;
  }

  function timeout(sink: string, wait: WriteWaitOptions, timeoutMs: number): ViewkeeperError {
    const what = wait.until === 'committed' ? 'committed' : 'committed and refreshed';
    return new ViewkeeperError(
      'E_TIMEOUT',
      `write to sink "${sink}" was not ${what} within ${timeoutMs} ms (until: '${wait.until}'): the ops are durable in the write-behind queue and will still be applied; is a daemon running?`,
    );
  }

  async function run(sink: string, ids: string[], acks: Promise<WriteJob>[], wait: WriteWaitOptions) {
    const timeoutMs = wait.timeoutMs ?? WRITE_WAIT_DEFAULTS.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    events ??= createQueueEvents(QUEUES.writeBehind, connection(), options.prefix);
    const listening = events;
    const jobs = await Promise.all(acks);
    const results = await Promise.all(
      [...new Set(jobs)].map(async (job) => {
        try {
          // With a ttl, BullMQ drops its listeners when the wait times out.
          return (await job.waitUntilFinished(
            listening,
            Math.max(1, deadline - Date.now()),
          )) as WriteBehindJobResult;
        } catch (error) {
          if (closed) throw new ViewkeeperError('E_UNAVAILABLE', 'the writer is closed');
          if (Date.now() >= deadline - 5) throw timeout(sink, wait, timeoutMs);
          throw new ViewkeeperError(
            'E_JOB_FAILED',
            `write to sink "${sink}" failed: ${describeError(error)}`,
            {
              cause: error,
            },
          );
        }
      }),
    );
    const mine = new Set(ids);
    for (const result of results) {
      const refused = result?.rejected?.find((op) => mine.has(op.id));
      if (refused) {
        throw new ViewkeeperError(
          'E_OP_REJECTED',
          `write to sink "${sink}" rejected ${refused.reason} (kept in viewkeeper.rejected_ops)`,
        );
      }
    }
    if (wait.until === 'refreshed') {
      const receipts = results.flatMap((result): Receipt[] => (result?.refresh ? [result.refresh] : []));
      if (!(await waitForReceipts(connection(), options.prefix, receipts, deadline))) {
        throw timeout(sink, wait, timeoutMs);
      }
    }
    return ids;
  }

  return {
    check(sink, wait, sinks) {
      if (
        wait === null ||
        typeof wait !== 'object' ||
        (wait.until !== 'committed' && wait.until !== 'refreshed')
      ) {
        throw new ViewkeeperError(
          'E_USAGE',
          `write(${sink}) wait option "until" must be 'committed' or 'refreshed', got ${JSON.stringify((wait as { until?: unknown } | null)?.until)}`,
        );
      }
      if (wait.timeoutMs !== undefined && !(Number.isFinite(wait.timeoutMs) && wait.timeoutMs > 0)) {
        throw new ViewkeeperError(
          'E_USAGE',
          `write(${sink}) timeoutMs must be a positive number of milliseconds, got ${JSON.stringify(wait.timeoutMs)}`,
        );
      }
      if (!sinks?.has(sink)) {
        throw new ViewkeeperError(
          'E_SINK_UNKNOWN',
          `write(${sink}, …, { until }) needs the sink's definition: pass it in the client's sinks option`,
        );
      }
      connection();
    },

    wait(sink, ids, acks, wait) {
      const timeoutMs = wait.timeoutMs ?? WRITE_WAIT_DEFAULTS.timeoutMs;
      let timer: NodeJS.Timeout | undefined;
      // The deadline bounds every step (enqueue, completion, receipts); the steps check it as well.
      return Promise.race([
        run(sink, ids, acks, wait),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(timeout(sink, wait, timeoutMs)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    },

    async close() {
      closed = true;
      await events?.close();
    },
  };
}
