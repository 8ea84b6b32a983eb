import { DelayedError, type Job, UnrecoverableError, WaitingChildrenError } from 'bullmq';
import { QUEUES, type RefreshJobData, type RefreshJobResult } from '../contract.ts';
import { describeError, isViewkeeperError } from '../errors.ts';
import { createSlots } from '../lib/slots.ts';
import { backoffMs, isTransient } from '../lib/transient.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { parseScheduledJobId } from '../scheduler/scheduler.ts';
import { refreshIdentity } from '../views/params.ts';
import type { RefreshEngine, RunOptions } from '../views/refresh-engine.ts';
import type { Registry } from '../views/registry.ts';
import { runBulk } from './bulk-refresh.ts';
import { CHUNK_QUEUE, type ChunkJobData, createChunkedRebuild } from './chunked-rebuild.ts';
import { createCoverage } from './coverage.ts';
import { createQueue, createWorker } from './factories.ts';
import { jobResult } from './job-result.ts';
import { createPartialBatcher } from './partial-batcher.ts';
import { parseRefreshJob } from './refresh-payload.ts';

export interface RefreshWorkerOptions {
  /** Queue Redis connection with `maxRetriesPerRequest: null`; owned by the caller. */
  connection: RedisConnection;
  prefix: string;
  registry: Registry;
  engine: RefreshEngine;
  /**
   * Engine runs at once: full rebuilds, chunked-rebuild steps and batches of partial refreshes. The
   * worker holds up to PARTIAL_JOBS_PER_SLOT × this many jobs (at most MAX_HELD_JOBS), so that
   * partial refreshes queued at the same time run together (see partial-batcher.ts).
   */
  concurrency: number;
  logger: Logger;
  /** A job whose transient failures reach this many starts fails for good. @defaultValue 25 */
  maxStarts?: number;
  /** How long a job's lock lives without renewal (a dead daemon's jobs are retried after about this). @defaultValue 15000 */
  lockDurationMs?: number;
  /**
   * Called whenever a worker takes, finishes or fails a job or finds its queue empty: the readiness
   * check's evidence that the fetch loop still turns (a worker can wedge after a reconnect).
   */
  onActivity?: () => void;
}

export interface RefreshWorker {
  /**
   * Stops taking jobs and waits up to `timeoutMs` for running ones; then cancels them (they go back
   * to the queue for another daemon). Idempotent.
   */
  close(timeoutMs: number): Promise<void>;
}

const CONTROL_ERRORS = [DelayedError, WaitingChildrenError];

/** Jobs held per engine slot: the pool partial refreshes are batched from. */
const PARTIAL_JOBS_PER_SLOT = 64;
/** …but never more than this in one daemon (VK_REFRESH_CONCURRENCY goes up to 256). */
const MAX_HELD_JOBS = 1024;

function coveredResult(view: string, kind: 'full' | 'partial'): RefreshJobResult {
  return { view, kind, rows: 0, version: 0, ms: 0, keys: null, superseded: false, covered: true };
}

/**
 * Consumes the `refresh` queue (and the internal `refresh-chunks` queue of chunked rebuilds). Bad
 * payloads fail once with a one-line reason (UnrecoverableError: no retries); a bulk request's bad
 * elements fail alone, listed in its result. A job whose (view, params) ran within the last moment
 * (the spacing its last run left, see run-spacing.ts) or is running goes back to the delayed set for
 * exactly that long, so later requests for it coalesce into this job; any other job runs at once.
 * Transient errors (connections, serialization failures) retry with exponential backoff whatever
 * attempts the producer set.
 */
export function createRefreshWorker(options: RefreshWorkerOptions): RefreshWorker {
  const { registry, engine, connection, prefix } = options;
  const logger = options.logger.child({ component: 'refresh-worker' });
  const maxStarts = options.maxStarts ?? 25;
  const lockDuration = options.lockDurationMs ?? 15_000;
  const chunkQueue = createQueue(CHUNK_QUEUE, connection, prefix) as import('bullmq').Queue<ChunkJobData>;
  chunkQueue.on('error', (error) => logger.warn({ reason: describeError(error) }, 'chunk queue error'));
  const coverage = createCoverage(connection, prefix);
  const chunked = createChunkedRebuild({ engine, registry, redis: connection, chunkQueue, prefix, logger });
  const slots = createSlots(options.concurrency);
  const batcher = createPartialBatcher({ engine, coverage, slots });

  async function delay(job: Job, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  async function process(
    job: Job<RefreshJobData, RefreshJobResult>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<RefreshJobResult> {
    let request: ReturnType<typeof parseRefreshJob>;
    try {
      request = parseRefreshJob(registry, job.name, job.data);
    } catch (error) {
      logger.warn({ jobId: job.id, view: job.name, reason: describeError(error) }, 'rejected refresh job');
      throw new UnrecoverableError(describeError(error));
    }
    const scheduled = parseScheduledJobId(job.id);
    const runOptions: RunOptions = {
      signal,
      trigger: scheduled?.trigger ?? 'queue',
      slot: scheduled?.slot,
      ignoreWindow: scheduled !== undefined,
    };
    try {
      if (request.bulk !== undefined) {
        const outcome = await runBulk(batcher, request.view, request.bulk, job.id, signal);
        if (outcome.status === 'busy') return await delay(job, token, outcome.retryInMs);
        if (outcome.result.failed) {
          logger.warn(
            { jobId: job.id, view: job.name, failed: outcome.result.failed, keys: request.bulk.length },
            'bulk refresh: some entries failed',
          );
        }
        return outcome.result;
      }
      if (request.params !== undefined) {
        const outcome = await batcher.submit(request.view, request.params, job.id);
        if (outcome.status === 'covered') return coveredResult(request.view.name, 'partial');
        if (outcome.status === 'busy') return await delay(job, token, outcome.retryInMs);
        return jobResult(outcome);
      }
      if (request.view.chunking) {
        return await slots.run(() =>
          chunked.parentStep(job, token, request.view, runOptions, (ms) => delay(job, token, ms)),
        );
      }
      const identity = refreshIdentity(request.view.name, undefined);
      const outcome = await slots.run(() =>
        coverage.runUnlessCovered(identity, job.id, () =>
          engine.refresh(request.view, undefined, runOptions),
        ),
      );
      if (outcome.status === 'covered') return coveredResult(request.view.name, 'full');
      if (outcome.status === 'busy') return await delay(job, token, outcome.retryInMs);
      return jobResult(outcome);
    } catch (error) {
      if (CONTROL_ERRORS.some((type) => error instanceof type)) throw error;
      if (signal?.aborted) return await delay(job, token, 0); // shutting down: leave it to another daemon
      const reason = describeError(error);
      if (isTransient(error) && job.attemptsStarted < maxStarts) {
        const wait = backoffMs(job.attemptsStarted);
        logger.warn({ jobId: job.id, view: job.name, reason, retryInMs: wait }, 'refresh failed, will retry');
        return await delay(job, token, wait);
      }
      logger.error({ jobId: job.id, view: job.name, params: request.params, reason }, 'refresh failed');
      throw isViewkeeperError(error) || !isTransient(error) ? new UnrecoverableError(reason) : error;
    }
  }

  // A job whose daemon died is stalled and runs again elsewhere. Refreshes are idempotent, and a
  // daemon holds many jobs at once (partial batching), so a second crash must not fail them for good
  // (BullMQ's default allows one stall).
  const undecodable = (job: Job, reason: string) =>
    logger.warn({ jobId: job.id, queue: job.queueName, name: job.name, reason }, 'rejected refresh job');
  const workers = [
    createWorker<RefreshJobData, RefreshJobResult>(
      QUEUES.refresh,
      process,
      connection,
      prefix,
      {
        concurrency: Math.min(MAX_HELD_JOBS, options.concurrency * PARTIAL_JOBS_PER_SLOT),
        lockDuration,
        stalledInterval: Math.max(500, lockDuration / 2),
        maxStalledCount: maxStarts,
      },
      undecodable,
    ),
    createWorker<ChunkJobData, number>(
      CHUNK_QUEUE,
      chunked.chunk,
      connection,
      prefix,
      {
        concurrency: Math.max(1, Math.floor(options.concurrency / 2)),
        lockDuration,
        stalledInterval: Math.max(500, lockDuration / 2),
        maxStalledCount: maxStarts,
      },
      undecodable,
    ),
  ];
  for (const worker of workers) {
    worker.on('error', (error) => logger.warn({ reason: describeError(error) }, 'refresh worker error'));
    const activity = options.onActivity;
    if (activity)
      for (const event of ['active', 'completed', 'failed', 'drained'] as const) worker.on(event, activity);
  }

  let closing: Promise<void> | undefined;
  return {
    close(timeoutMs) {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const graceful = Promise.all(workers.map((worker) => worker.close())).then(() => true);
        const timedOut = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        });
        const finished = await Promise.race([graceful, timedOut]);
        clearTimeout(timer);
        if (!finished) {
          logger.warn({ timeoutMs }, 'refresh jobs still running at shutdown timeout: cancelling them');
          for (const worker of workers) worker.cancelAllJobs('daemon shutting down');
          await Promise.race([
            Promise.all(workers.map((worker) => worker.close(true))),
            new Promise((resolve) => setTimeout(resolve, 5000).unref()),
          ]);
        }
        await chunkQueue.close().catch(() => undefined);
      })();
      return closing;
    },
  };
}
