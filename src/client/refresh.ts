import type { Job, JobsOptions, Queue, QueueEvents } from 'bullmq';
import {
  BULK_REFRESH_PAYLOAD_LIMIT_BYTES,
  MAX_BULK_PARAMS,
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

/** Params of a refresh request: one key's (partial), or a list of them (bulk). */
export type RefreshParams = Record<string, unknown> | readonly Record<string, unknown>[];

/**
 * Job options every refresh job carries when enqueued through viewkeeper. A bulk request gets no
 * deduplication id (its elements are covered one by one by the daemon instead).
 */
export function refreshJobOptions(
  view: string,
  params: RefreshParams | undefined,
  coalesce = true,
): JobsOptions {
  if (!coalesce || isBulk(params)) return {};
  return { deduplication: { id: refreshDedupId(view, params), keepLastIfActive: true } };
}

function isBulk(params: RefreshParams | undefined): params is readonly Record<string, unknown>[] {
  return Array.isArray(params);
}

/**
 * Asks the daemon to refresh `view` (all of it, the keys `params` select, or with a list of params
 * the keys of each, as one bulk job) through the refresh queue — the same path any other app uses.
 * Resolves once Redis has accepted the job.
 */
export async function enqueueRefresh(
  queue: Queue,
  view: string,
  params?: RefreshParams,
  options: EnqueueRefreshOptions = {},
): Promise<Job<RefreshJobData, RefreshJobResult>> {
  const data: RefreshJobData = {};
  if (isBulk(params)) {
    if (params.length === 0 || params.length > MAX_BULK_PARAMS) {
      throw new ViewkeeperError(
        'E_BAD_PARAMS',
        `a bulk refresh of ${view} takes 1 to ${MAX_BULK_PARAMS} params objects, got ${params.length}`,
      );
    }
    data.params = [...params];
  } else if (params !== undefined) data.params = params;
  if (options.reason !== undefined) data.reason = options.reason.slice(0, MAX_REASON_LENGTH);
  const size = Buffer.byteLength(JSON.stringify(data));
  const limit = isBulk(params) ? BULK_REFRESH_PAYLOAD_LIMIT_BYTES : REFRESH_PAYLOAD_LIMIT_BYTES;
  if (size > limit) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `refresh request is ${size} bytes, over the ${limit}-byte limit${isBulk(params) ? ' for bulk requests: split it' : ''}`,
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
