import { explainReplicaError, type ReadReplica } from '../db/read-replica.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RowSource } from './row-source.ts';

/** Which Postgres a run's view query reads. */
export type ReadSource = 'primary' | 'replica';

/** The row source a run streams from, where it is, and how to word a failure of its query. */
export interface ReadRoute {
  rows: RowSource;
  source: ReadSource;
  /** The error to throw for a failure of the query (a recovery conflict gets its hint). */
  explain(error: unknown): unknown;
}

export interface ReadRouterOptions {
  primary: RowSource;
  /** The standby and a row source over it; undefined = every run reads the primary. */
  replica?: { handle: ReadReplica; rows: RowSource };
  /** How long a full rebuild waits for the standby to catch up before reading the primary. */
  waitMs: number;
  logger: Logger;
}

/**
 * Decides, per run, which Postgres its query reads: THE read-replica rule, and its only home.
 *
 * Every run takes its sequence number before its query starts, and a run's writes win over those of
 * any older sequence. That is only sound if a run's query sees every commit made before its sequence
 * was taken: a standby that lags would let a newer sequence carry older data (a full rebuild
 * overwriting the partial refresh that followed a write, with a snapshot from before the write). So:
 *
 * - **Partial refreshes read the primary**, whoever asked: the ones owed by write-behind commits and
 *   captured changes, and those apps enqueue after their own writes, which expect to see them. Each
 *   is an index lookup or a few — cheap on the primary — and waiting for the standby to replay the
 *   write would only add its lag to the latency of every refresh after a write.
 * - **Full rebuilds and chunks of chunked rebuilds read the standby once it has replayed the WAL
 *   the primary had written when the run began** (after the sequence was taken): from then on its
 *   snapshot includes everything the sequence must cover. These are the heavy queries a standby is
 *   for. A standby that does not get there within `waitMs` — lagging, paused, down, or no longer a
 *   standby — sends the run to the primary with one `warn` line: a view stays fresh rather than
 *   fail while the standby is away (the primary carried every rebuild before there was a standby);
 *   the next run tries the standby again.
 *
 * Must be called after the run's sequence is taken.
 */
export function createReadRouter(
  options: ReadRouterOptions,
): (kind: 'full' | 'chunk' | 'partial', view: string, signal?: AbortSignal) => Promise<ReadRoute> {
  const { primary, replica, waitMs } = options;
  const logger = options.logger.child({ component: 'read-route' });
  const onPrimary: ReadRoute = { rows: primary, source: 'primary', explain: (error) => error };

  return async (kind, view, signal) => {
    if (!replica || kind === 'partial') return onPrimary;
    const what = kind === 'full' ? `full rebuild of view ${view}` : `chunk of view ${view}`;
    const behind = await replica.handle.catchUp(waitMs, signal);
    if (behind === undefined) {
      return {
        rows: replica.rows,
        source: 'replica',
        explain: (error) => explainReplicaError(error, what),
      };
    }
    logger.warn({ view, kind, replica: behind }, `${what} reads the primary: the replica is ${behind}`);
    return onPrimary;
  };
}
