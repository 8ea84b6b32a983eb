import type { Redis } from 'ioredis';
import { QUEUES } from '../contract.ts';

// A refresh request is satisfied by any successful run whose snapshot was taken after the request
// was enqueued. BullMQ numbers jobs from one Redis counter ({prefix}:refresh:id, incremented by every
// add, deduplicated or not), so "enqueued before" needs no clocks: read the counter before a run
// starts; when the run succeeds, every job numbered up to that reading is covered by it.
//
// This catches what deduplication alone lets through: a request that arrives while a job is briefly
// active only to be sent back to wait out its coalescing window is stored as BullMQ's "next" job,
// and would otherwise cause one redundant run after the window.

const COVERED_TTL_MS = 60_000;

// Raise the covered mark, never lower it (runs of one identity finish in any order).
const RAISE = `local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1`;

export function createCoverage(redis: Redis, prefix: string) {
  const counterKey = `${prefix}:${QUEUES.refresh}:id`;
  const coveredKey = (identity: string) => `${prefix}:covered:${identity}`;
  return {
    /**
     * Whether job `jobId` is already covered by a finished run of `identity`; and the counter
     * reading to pass to `markCovered` if this job runs now.
     */
    async check(identity: string, jobId: string | undefined): Promise<{ covered: boolean; counter: number }> {
      const [covered, counter] = await redis.mget(coveredKey(identity), counterKey);
      const numeric = jobId !== undefined && /^\d+$/.test(jobId) ? Number(jobId) : undefined;
      return {
        covered: numeric !== undefined && covered !== null && numeric <= Number(covered),
        counter: Number(counter ?? 0),
      };
    },
    async markCovered(identity: string, counter: number): Promise<void> {
      await redis.eval(RAISE, 1, coveredKey(identity), counter, COVERED_TTL_MS);
    },
  };
}
