import type { RedisConnection } from '../redis/connections.ts';
import type { Registry } from '../views/registry.ts';
import { indexKeysOf, sampleIndex } from '../views/writers/view-slots.ts';

/** A view's estimated Redis memory. */
export interface MemoryEstimate {
  bytes: number;
  /** Keys the view has (its key index), or 1 for a view at one fixed key. */
  keys: number;
  /** Keys whose MEMORY USAGE was measured. */
  sampled: number;
}

export interface MemorySamplerOptions {
  definitions: Registry;
  views: RedisConnection;
  prefix: string;
  /** Keys measured per view. @defaultValue 20 */
  sampleKeys?: number;
  /** @defaultValue 15000 */
  intervalMs?: number;
}

export interface MemorySampler {
  estimates(): ReadonlyMap<string, MemoryEstimate>;
  /** Bytes per view, for the metrics. */
  bytes(): ReadonlyMap<string, number>;
  start(): void;
  stop(): void;
}

/**
 * Memory per view without walking the keyspace: per-row views pick `sampleKeys` random members of
 * their key index (ZRANDMEMBER), measure them with MEMORY USAGE and extrapolate by the index size;
 * a view at one fixed key is measured directly. An estimate, and labelled as one: rows differ in
 * size, and MEMORY USAGE itself samples large aggregates.
 */
export function createMemorySampler(options: MemorySamplerOptions): MemorySampler {
  const sampleKeys = options.sampleKeys ?? 20;
  const { views, prefix } = options;
  let estimates = new Map<string, MemoryEstimate>();
  let timer: NodeJS.Timeout | undefined;
  let early: NodeJS.Timeout | undefined;
  let sampling = false;

  async function usage(key: string): Promise<number> {
    return Number((await views.call('MEMORY', 'USAGE', key)) ?? 0);
  }

  async function estimate(name: string): Promise<MemoryEstimate | undefined> {
    const view = options.definitions.view(name)!;
    // One index on one server; one per slot on a cluster (counted together, sampled across slots).
    const indexes = await indexKeysOf(views, prefix, name, 'keyIndex');
    const counts = await Promise.all(indexes.map((index) => views.zcard(index)));
    const count = counts.reduce((sum, one) => sum + one, 0);
    if (count > 0) {
      const members = await sampleIndex(views, prefix, name, 'keyIndex', Math.min(sampleKeys, count));
      let total = 0;
      for (const key of members) total += await usage(key);
      return {
        bytes: Math.round((total / Math.max(1, members.length)) * count),
        keys: count,
        sampled: members.length,
      };
    }
    if (view.key.columns.length === 0) {
      const bytes = await usage(view.key.fill({}));
      return bytes > 0 ? { bytes, keys: 1, sampled: 1 } : undefined;
    }
    return undefined;
  }

  async function sample(): Promise<void> {
    const next = new Map<string, MemoryEstimate>();
    for (const name of options.definitions.views.keys()) {
      const found = await estimate(name).catch(() => undefined);
      if (found) next.set(name, found);
    }
    estimates = next;
  }

  function tick(): void {
    if (sampling) return;
    sampling = true;
    sample()
      .catch(() => undefined)
      .finally(() => {
        sampling = false;
      });
  }

  return {
    estimates: () => estimates,
    bytes: () => new Map([...estimates].map(([name, found]) => [name, found.bytes])),
    start() {
      if (timer) return;
      tick();
      // Views are often empty at start and filled by the catch-up rebuilds a moment later.
      early = setTimeout(tick, 3000);
      early.unref();
      timer = setInterval(tick, options.intervalMs ?? 15_000);
      timer.unref();
    },
    stop() {
      clearTimeout(early);
      clearInterval(timer);
    },
  };
}
