import type { ClientRedis } from './connection.ts';

/** What `client.stats()` returns: totals since the client was created. */
export interface ClientStats {
  /** Reads answered from a cache (L1 or Redis), fresh. Includes `l1Hits`. */
  hits: number;
  /** Reads that found nothing usable (absent, expired or invalidated). */
  misses: number;
  /** Stale values returned: stale-while-revalidate, or L1 copies served while Redis was down. */
  staleServed: number;
  /** Hits answered by the in-process L1 without touching Redis. */
  l1Hits: number;
  /** Times a `cached()` loader ran in this process. */
  loaderCalls: number;
  /** Redis calls that failed or timed out (each one counts against the circuit breaker). */
  errors: number;
}

/** Field names in the `{prefix}:client:stats` hash. */
export const STATS_FIELDS: Record<keyof ClientStats, string> = {
  hits: 'hits',
  misses: 'misses',
  staleServed: 'stale_served',
  l1Hits: 'l1_hits',
  loaderCalls: 'loader_calls',
  errors: 'errors',
};

const NAMES = Object.keys(STATS_FIELDS) as (keyof ClientStats)[];

function zero(): ClientStats {
  return { hits: 0, misses: 0, staleServed: 0, l1Hits: 0, loaderCalls: 0, errors: 0 };
}

export interface StatsRecorder {
  add(name: keyof ClientStats, n?: number): void;
  snapshot(): ClientStats;
  /**
   * Adds what was counted since the last flush to the Redis hash (one pipelined HINCRBY per changed
   * counter). On failure the counts are kept for the next flush: nothing is lost, nothing counted twice
   * unless Redis applied the pipeline and the reply was lost.
   */
  flush(redis: ClientRedis): Promise<void>;
}

export function createStats(key: string): StatsRecorder {
  const totals = zero();
  let pending = zero();

  return {
    add(name, n = 1) {
      totals[name] += n;
      pending[name] += n;
    },
    snapshot: () => ({ ...totals }),
    async flush(redis) {
      const batch = pending;
      if (NAMES.every((name) => batch[name] === 0)) return;
      pending = zero();
      try {
        const pipeline = redis.pipeline();
        for (const name of NAMES) if (batch[name] > 0) pipeline.hincrby(key, STATS_FIELDS[name], batch[name]);
        const results = await pipeline.exec();
        const failed = results?.find(([error]) => error);
        if (failed) throw failed[0];
      } catch (error) {
        for (const name of NAMES) pending[name] += batch[name];
        throw error;
      }
    },
  };
}
