import { type Job, type Queue, UnrecoverableError, WaitingChildrenError } from 'bullmq';
import { QUEUES, type RefreshJobResult } from '../contract.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { bullmqKeys, chunkStateKey } from '../redis/keys.ts';
import { defineScripts } from '../redis/lua.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import type { RefreshEngine, RunOptions } from '../views/refresh-engine.ts';
import type { Registry } from '../views/registry.ts';
import { jobResult } from './job-result.ts';

/** Data of a job on the internal `refresh-chunks` queue: one key range of a chunked rebuild. */
export interface ChunkJobData {
  seq: number;
  token: string;
  from: string;
  to: string;
  /** Id of the refresh job that owns the rebuild; its progress hash is keyed by it. */
  parent: string;
}

/** Progress of a chunked rebuild, readable by `status` and `refresh --wait` (built in redis/keys.ts). */
export { chunkStateKey };

const STATE_TTL_SECONDS = 24 * 3600;

// BullMQ's deduplication with keepLastIfActive keeps "one more run" only for requests that arrive
// while the job is *active*; a parent waiting on its children is not, so a request arriving then
// would be swallowed although the chunks that already ran cannot reflect it (guarantee 3). Before
// waiting, the parent gives up its deduplication key: later requests then make a fresh job, which
// waits (the view is busy) and runs once after this rebuild. Unless a request already arrived while
// the parent was active: that one is re-created when the parent finishes, after every chunk, so it
// covers anything that arrives meanwhile and the key stays.
const CHUNKED_SCRIPTS = defineScripts({
  vkHandOffDeduplication: {
    file: new URL('./scripts/hand-off-deduplication.lua', import.meta.url),
    keys: 2,
  },
});

const CHUNK_ATTEMPTS = 5;

export interface ChunkedRebuildOptions {
  engine: RefreshEngine;
  registry: Registry;
  /** Queue Redis: progress hashes live next to the jobs. */
  redis: RedisConnection;
  chunkQueue: Queue<ChunkJobData>;
  prefix: string;
  logger: Logger;
}

/**
 * Full rebuilds of chunked views as a BullMQ parent with one child job per key range. The parent
 * (the refresh job itself) takes the lock and the sequence, adds the children and waits; children
 * run on whichever daemons are free (a chunk whose daemon died is picked up again by BullMQ's
 * stalled-job check); when the last child completes the parent runs again and finishes once: the
 * orphan sweep, the version bump and the event.
 */
export function createChunkedRebuild(options: ChunkedRebuildOptions) {
  const { engine, registry, redis, chunkQueue, prefix } = options;
  const logger = options.logger.child({ component: 'chunked-rebuild' });
  const scripts = CHUNKED_SCRIPTS.load(redis);

  async function waitForChildren(job: Job, token: string | undefined): Promise<boolean> {
    if (job.deduplicationId) {
      const keys = bullmqKeys(prefix, QUEUES.refresh);
      await scripts.run(
        'vkHandOffDeduplication',
        [keys.dedup(job.deduplicationId), keys.dedupNext(job.deduplicationId)],
        [job.id!],
      );
    }
    return job.moveToWaitingChildren(token!);
  }

  return {
    /** Runs a step of the parent job. Returns the result, or throws Waiting/Delayed control errors. */
    async parentStep(
      job: Job,
      token: string | undefined,
      view: ViewDefinition,
      runOptions: RunOptions,
      delay: (ms: number) => Promise<never>,
    ): Promise<RefreshJobResult> {
      const stateKey = chunkStateKey(prefix, job.id!);
      const state = await redis.hgetall(stateKey);
      if (!state.seq) {
        // One range is not worth child jobs: rebuild the ordinary way.
        if ((await engine.chunkRanges(view)).length <= 1) {
          const outcome = await engine.refresh(view, undefined, runOptions);
          if (outcome.status === 'busy') return delay(outcome.retryInMs);
          return jobResult(outcome);
        }
        const begun = await engine.beginChunked(view, runOptions);
        if (begun.status === 'busy') return delay(begun.retryInMs);
        await redis
          .multi()
          .hset(stateKey, {
            view: view.name,
            seq: begun.seq,
            token: begun.token,
            startedAt: begun.startedAt,
            total: begun.ranges.length,
            done: 0,
          })
          .expire(stateKey, STATE_TTL_SECONDS)
          .exec();
        await chunkQueue.addBulk(
          begun.ranges.map((range) => ({
            name: view.name,
            data: { seq: begun.seq, token: begun.token, from: range.from, to: range.to, parent: job.id! },
            opts: {
              jobId: `chunk|${view.name}|${begun.seq}|${range.from}`,
              parent: { id: job.id!, queue: job.queueQualifiedName },
              attempts: CHUNK_ATTEMPTS,
              backoff: { type: 'exponential', delay: 500 },
              failParentOnFailure: true,
            },
          })),
        );
        logger.info(
          { view: view.name, chunks: begun.ranges.length, seq: begun.seq },
          'chunked rebuild started',
        );
        if (await waitForChildren(job, token)) throw new WaitingChildrenError();
        return this.parentStep(job, token, view, runOptions, delay);
      }
      if (await waitForChildren(job, token)) throw new WaitingChildrenError();
      const rows = Object.entries(state)
        .filter(([field]) => field.startsWith('rows:'))
        .reduce((sum, [, value]) => sum + Number(value), 0);
      const outcome = await engine.finishChunked(
        view,
        {
          seq: Number(state.seq),
          token: state.token!,
          startedAt: state.startedAt!,
          rows,
          fields: state.fields ?? '',
        },
        runOptions,
      );
      await redis.del(stateKey);
      return jobResult(outcome);
    },

    /** Processor of the `refresh-chunks` queue. */
    async chunk(job: Job<ChunkJobData>, _token?: string, signal?: AbortSignal): Promise<number> {
      const view = registry.view(job.name);
      const { seq, token, from, to, parent } = job.data ?? ({} as ChunkJobData);
      if (!view?.chunking || typeof seq !== 'number' || !token || !from || !to || !parent) {
        throw new UnrecoverableError(`malformed chunk job ${job.id} for view ${JSON.stringify(job.name)}`);
      }
      try {
        const { rows, fields } = await engine.runChunk(
          view,
          { seq, token, range: { from, to } },
          { signal, trigger: 'chunk' },
        );
        // Per-range fields: a chunk that runs twice (its daemon died after writing) is counted once.
        await redis.hset(chunkStateKey(prefix, parent), `rows:${from}`, rows);
        if (fields) await redis.hset(chunkStateKey(prefix, parent), 'fields', fields);
        await redis.hincrby(chunkStateKey(prefix, parent), 'done', 1);
        return rows;
      } catch (error) {
        if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
          // Last attempt: the parent fails with this child; release the rebuild's lock now.
          await engine.failChunked(view, { token }, `chunk ${from}..${to}: ${describeError(error)}`);
          await redis.del(chunkStateKey(prefix, parent));
        }
        throw error;
      }
    },
  };
}

export const CHUNK_QUEUE = `${QUEUES.refresh}-chunks`;
