import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { type ClientRedisContext, createClientRedisContext, sleep } from '../helpers/client-context.ts';

let ctx: ClientRedisContext;
let client: ViewkeeperClient;

beforeAll(async () => {
  ctx = await createClientRedisContext();
  client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix, cache: { jitter: 0 } });
});
afterAll(async () => {
  await client?.close();
  await ctx?.cleanup();
});

interface SteadyRun {
  loads: number;
  misses: number;
  staleServed: number;
  reads: number;
}

/**
 * 8 readers read `key` back to back for `durationMs` (several TTLs) after a warm-up load, and the loader
 * takes 40 ms. Counts what happened during the steady phase only.
 */
async function steadyReads(
  key: string,
  earlyRefresh: boolean | number,
  durationMs: number,
): Promise<SteadyRun> {
  let loads = 0;
  const loader = async () => {
    loads += 1;
    await sleep(40);
    return loads;
  };
  const options = { ttl: 500, earlyRefresh };
  await client.cached(key, loader, options);
  const before = client.stats();
  const loadsBefore = loads;
  let reads = 0;
  const until = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (Date.now() < until) {
        await client.cached(key, loader, options);
        reads += 1;
        await sleep(2);
      }
    }),
  );
  const after = client.stats();
  return {
    loads: loads - loadsBefore,
    misses: after.misses - before.misses,
    staleServed: after.staleServed - before.staleServed,
    reads,
  };
}

describe('XFetch early refresh', () => {
  it('under steady reads a hot key is recomputed before it expires: no misses at expiry', async () => {
    // β = 2 (default 1) reaches twice as far ahead: no near-miss even when other test runs starve
    // this process of reads on a shared 2-core machine.
    const early = await steadyReads('hot:early', 2, 2000);
    // ~4 TTLs went by, each one renewed in the background before the value expired.
    expect(early.loads).toBeGreaterThanOrEqual(3);
    expect(early.misses).toBe(0);
    expect(early.staleServed).toBe(0);
    expect(early.reads).toBeGreaterThan(100);
  });

  it('without early refresh the same reads miss in a burst at every expiry (the baseline the test above beats)', async () => {
    const plain = await steadyReads('hot:plain', false, 2000);
    expect(plain.loads).toBeGreaterThanOrEqual(3);
    // Every reader waiting at each expiry counts a miss (single-flight still loads once per expiry).
    expect(plain.misses).toBeGreaterThanOrEqual(3 * 4);
    expect(plain.loads).toBeLessThan(plain.misses);
  });
});
