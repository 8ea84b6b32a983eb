import type { ClientRedis } from './connection.ts';

/** Keys one client tracks between flushes; reads of other keys are dropped until the next flush. */
const TRACKED = 256;
/** Members the shared sorted set keeps (the lowest are trimmed at every flush). */
export const HOT_KEYS_KEPT = 1000;

export interface HotKeys {
  /** Counts a read of `key` with the configured probability. Cheap: no I/O, no allocation when not sampled. */
  record(key: string): void;
  /** Adds the sampled counts (scaled up by 1 / rate) to the shared sorted set and trims it. */
  flush(redis: ClientRedis): Promise<void>;
}

/**
 * Client-side hot-key sampling: no MONITOR, no KEYS on the server. A sampled read adds to a small
 * in-process map (at most TRACKED keys); each flush moves the counts into `{prefix}:client:hot-keys`
 * with ZINCRBY and trims it to HOT_KEYS_KEPT members, so memory is bounded on both sides.
 */
export function createHotKeys(key: string, rate: number, random: () => number = Math.random): HotKeys {
  let counts = new Map<string, number>();
  return {
    record(read) {
      if (rate <= 0 || random() >= rate) return;
      const seen = counts.get(read);
      if (seen !== undefined) counts.set(read, seen + 1);
      else if (counts.size < TRACKED) counts.set(read, 1);
    },
    async flush(redis) {
      if (counts.size === 0) return;
      const batch = counts;
      counts = new Map();
      const pipeline = redis.pipeline();
      for (const [read, count] of batch) pipeline.zincrby(key, count / rate, read);
      pipeline.zremrangebyrank(key, 0, -(HOT_KEYS_KEPT + 1));
      const results = await pipeline.exec();
      const failed = results?.find(([error]) => error);
      if (failed) throw failed[0];
    },
  };
}
