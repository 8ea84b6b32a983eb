import type { Job, JobsOptions, Queue, QueueEvents } from 'bullmq';
import {
  MAX_REASON_LENGTH,
  REFRESH_PAYLOAD_LIMIT_BYTES,
  type RefreshJobData,
  type RefreshJobResult,
  refreshDedupId,
} from '../contract.ts';
import { describeError, ViewkeeperError } from '../errors.ts';

export interface EnqueueRefreshOptions {
  reason?: string;
  /**
   * Coalesce with other requests for the same (view, params): at most one waiting job, and a
   * request arriving while one runs causes exactly one more run (BullMQ keepLastIfActive).
   * `false` gives this request its own job (the daemon still never overlaps runs).
   * @defaultValue true
   */
  coalesce?: boolean;
}

/** Job options every refresh job carries when enqueued through viewkeeper. */
export function refreshJobOptions(
  view: string,
  params: Record<string, unknown> | undefined,
  coalesce = true,
): JobsOptions {
  return coalesce ? { deduplication: { id: refreshDedupId(view, params), keepLastIfActive: true } } : {};
}

/**
 * Asks the daemon to refresh `view` (all of it, or the keys `params` select) through the refresh
 * queue — the same path any other app uses. Resolves once Redis has accepted the job.
 */
export async function enqueueRefresh(
  queue: Queue,
  view: string,
  params?: Record<string, unknown>,
  options: EnqueueRefreshOptions = {},
): Promise<Job<RefreshJobData, RefreshJobResult>> {
  const data: RefreshJobData = {};
  if (params !== undefined) data.params = params;
  if (options.reason !== undefined) data.reason = options.reason.slice(0, MAX_REASON_LENGTH);
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size > REFRESH_PAYLOAD_LIMIT_BYTES) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `refresh request is ${size} bytes, over the ${REFRESH_PAYLOAD_LIMIT_BYTES}-byte limit`,
    );
  }
  return queue.add(view, data, refreshJobOptions(view, params, options.coalesce ?? true));
}

/**
 * Waits for a refresh job to finish. Resolves with its result; rejects with `E_JOB_FAILED` carrying
 * the daemon's one-line reason, or `E_TIMEOUT`.
 */
export async function waitForRefresh(
  job: Job<RefreshJobData, RefreshJobResult>,
  events: QueueEvents,
  timeoutMs: number,
): Promise<RefreshJobResult> {
  try {
    return (await job.waitUntilFinished(events, timeoutMs)) as RefreshJobResult;
  } catch (error) {
    const reason = describeError(error);
    if (/timed out|timeout/i.test(reason) && !/failed/i.test(reason)) {
      throw new ViewkeeperError(
        'E_TIMEOUT',
        `refresh of ${job.name} (job ${job.id}) did not finish within ${timeoutMs} ms; is a daemon running?`,
      );
    }
    throw new ViewkeeperError('E_JOB_FAILED', `refresh of ${job.name} failed: ${reason}`, { cause: error });
  }
}
