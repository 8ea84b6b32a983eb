import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES, type RefreshJobData, type RefreshJobResult } from '../contract.ts';
import { describeError, isViewkeeperError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RefreshEngine } from '../views/refresh-engine.ts';
import type { Registry } from '../views/registry.ts';
import { createWorker } from './factories.ts';
import { parseRefreshJob } from './refresh-payload.ts';
import { backoffMs, isTransient } from './transient.ts';

export interface RefreshWorkerOptions {
  /** Queue Redis connection with `maxRetriesPerRequest: null`; owned by the caller. */
  connection: Redis;
  prefix: string;
  registry: Registry;
  engine: RefreshEngine;
  /** Jobs this worker runs at once. */
  concurrency: number;
  logger: Logger;
  /** A job whose transient failures reach this many starts fails for good. @defaultValue 25 */
  maxStarts?: number;
}

export interface RefreshWorker {
  /**
   * Stops taking jobs and waits up to `timeoutMs` for running ones; then cancels them (they go back
   * to the queue for another daemon). Idempotent.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Consumes the `refresh` queue. Bad payloads fail once with a one-line reason (UnrecoverableError:
 * no retries); a run that finds its (view, params) busy or inside its coalescing window goes back to
 * the delayed set for exactly that long, so later requests for it coalesce into this job;
 * transient errors (connections, serialization failures) retry with exponential backoff whatever
 * attempts the producer set.
 */
export function createRefreshWorker(options: RefreshWorkerOptions): RefreshWorker {
  const { registry, engine } = options;
  const logger = options.logger.child({ component: 'refresh-worker' });
  const maxStarts = options.maxStarts ?? 25;

  async function delay(job: Job, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  async function process(job: Job<RefreshJobData, RefreshJobResult>, token?: string, signal?: AbortSignal) {
    let request: ReturnType<typeof parseRefreshJob>;
    try {
      request = parseRefreshJob(registry, job.name, job.data);
    } catch (error) {
      logger.warn({ jobId: job.id, view: job.name, reason: describeError(error) }, 'rejected refresh job');
      throw new UnrecoverableError(describeError(error));
    }
    try {
      const outcome = await engine.refresh(request.view, request.params, { signal });
      if (outcome.status === 'busy') return await delay(job, token, outcome.retryInMs);
      return {
        view: outcome.view,
        kind: outcome.kind,
        rows: outcome.rows,
        version: outcome.version,
        ms: outcome.ms,
        keys: outcome.keys === null ? null : outcome.keys.length,
        superseded: outcome.superseded,
      } satisfies RefreshJobResult;
    } catch (error) {
      if (error instanceof DelayedError) throw error;
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

  const worker = createWorker<RefreshJobData, RefreshJobResult>(
    QUEUES.refresh,
    process,
    options.connection,
    options.prefix,
    { concurrency: options.concurrency },
  );
  worker.on('error', (error) => logger.warn({ reason: describeError(error) }, 'refresh worker error'));

  let closing: Promise<void> | undefined;
  return {
    close(timeoutMs) {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const graceful = worker.close().then(() => true);
        const timedOut = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        });
        const finished = await Promise.race([graceful, timedOut]);
        clearTimeout(timer);
        if (!finished) {
          logger.warn({ timeoutMs }, 'refresh jobs still running at shutdown timeout: cancelling them');
          worker.cancelAllJobs('daemon shutting down');
          await Promise.race([worker.close(true), new Promise((resolve) => setTimeout(resolve, 5000))]);
        }
      })();
      return closing;
    },
  };
}
