import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHotKeys, HOT_KEYS_KEPT } from '../../src/client/hot-keys.ts';
import { clientKeys } from '../../src/redis/keys.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';

// Client-side hot-key sampling: bounded in the process and in Redis, counts scaled by the rate.

let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestContext();
});

afterAll(async () => {
  await ctx?.cleanup();
});

describe('hot-key sampling', () => {
  it('adds sampled reads scaled up by the rate, and counts nothing at rate 0', async () => {
    const key = clientKeys(`${ctx.prefix}a`).hotKeys;
    let coin = 0;
    // Every other read is sampled at rate 0.5: 10 reads of one key are estimated as 10.
    const sampler = createHotKeys(key, 0.5, () => (coin++ % 2 === 0 ? 0.1 : 0.9));
    for (let i = 0; i < 10; i++) sampler.record('user_stats:1');
    sampler.record('user_stats:2');
    await sampler.flush(ctx.redis as Redis);
    expect(await ctx.redis.zscore(key, 'user_stats:1')).toBe('10');

    const off = createHotKeys(clientKeys(`${ctx.prefix}b`).hotKeys, 0);
    for (let i = 0; i < 100; i++) off.record('user_stats:1');
    await off.flush(ctx.redis as Redis);
    expect(await ctx.redis.exists(clientKeys(`${ctx.prefix}b`).hotKeys)).toBe(0);
  });

  it('tracks at most 256 keys between flushes and keeps the shared set at its top 1,000', async () => {
    const key = clientKeys(`${ctx.prefix}c`).hotKeys;
    const sampler = createHotKeys(key, 1);
    for (let i = 0; i < 1000; i++) sampler.record(`k:${i}`);
    await sampler.flush(ctx.redis as Redis);
    expect(await ctx.redis.zcard(key)).toBe(256);

    for (let round = 0; round < 5; round++) {
      sampler.record('hot');
      sampler.record('hot');
      for (let i = 0; i < 256; i++) sampler.record(`r${round}:${i}`);
      await sampler.flush(ctx.redis as Redis);
    }
    expect(await ctx.redis.zcard(key)).toBe(HOT_KEYS_KEPT);
    expect(await ctx.redis.zrevrange(key, 0, 0)).toEqual(['hot']);
  });
});
