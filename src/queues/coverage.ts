import { QUEUES } from '../contract.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { bullmqKeys, runKeys } from '../redis/keys.ts';
import { defineScripts } from '../redis/lua.ts';
import type { RefreshOutcome } from '../views/refresh-engine.ts';

// A refresh request is satisfied by any successful run whose snapshot was taken after the request
// was enqueued. BullMQ numbers jobs from one Redis counter ({prefix}:refresh:id, incremented by every
// add, deduplicated or not), so "enqueued before" needs no clocks: read the counter before a run
// starts; when the run succeeds, every job numbered up to that reading is covered by it.
//
// This catches what deduplication alone lets through: a request that arrives while a job is briefly
// active only to be sent back to wait out its coalescing window is stored as BullMQ's "next" job,
// and would otherwise cause one redundant run after the window.

const COVERED_TTL_MS = 60_000;

const COVERAGE_SCRIPTS = defineScripts({
  vkRaiseCovered: { file: new URL('./scripts/raise-covered.lua', import.meta.url), keys: 'variable' },
});

export function createCoverage(redis: RedisConnection, prefix: string) {
  const counterKey = bullmqKeys(prefix, QUEUES.refresh).id;
  const scripts = COVERAGE_SCRIPTS.load(redis);
  const coveredKey = (identity: string) => runKeys(prefix, identity).covered;
  /**
   * Whether each job is already covered by a finished run of its identity, in one round trip; and
   * the counter reading to pass to `markCovered` for the jobs that run now.
   */
  async function checkMany(
    jobs: { identity: string; jobId: string | undefined }[],
  ): Promise<{ covered: boolean[]; counter: number }> {
    const replies = await redis.mget(...jobs.map((job) => coveredKey(job.identity)), counterKey);
    const covered = jobs.map(({ jobId }, i) => {
      const mark = replies[i];
      const numeric = jobId !== undefined && /^\d+$/.test(jobId) ? Number(jobId) : undefined;
      return numeric !== undefined && mark != null && numeric <= Number(mark);
    });
    return { covered, counter: Number(replies.at(-1) ?? 0) };
  }

  /** Marks every job numbered up to `counter` covered for these identities (runs that succeeded). */
  async function markCovered(identities: string[], counter: number): Promise<void> {
    if (identities.length === 0) return;
    await scripts.run('vkRaiseCovered', identities.map(coveredKey), [counter, COVERED_TTL_MS]);
  }

  return {
    checkMany,
    markCovered,
    /**
     * Runs one job's refresh unless a finished run already covers it; a run that succeeds covers
     * every job of `identity` queued before it started.
     */
    async runUnlessCovered(
      identity: string,
      jobId: string | undefined,
      run: () => Promise<RefreshOutcome>,
    ): Promise<RefreshOutcome | { status: 'covered' }> {
      const { covered, counter } = await checkMany([{ identity, jobId }]);
      if (covered[0]) return { status: 'covered' };
      const outcome = await run();
      if (outcome.status === 'done') await markCovered([identity], counter);
      return outcome;
    },
  };
}
