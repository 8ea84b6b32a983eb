import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { CODEC_MARKER, decodeEnvelope } from '../../src/redis/cache-codec.ts';
import { createRedisConnection } from '../../src/redis/connections.ts';
import { clientKeys } from '../../src/redis/keys.ts';
import {
  type ClientRedisContext,
  createClientRedisContext,
  eventually,
  sleep,
} from '../helpers/client-context.ts';

let ctx: ClientRedisContext;
let client: ViewkeeperClient;
let keys: ReturnType<typeof clientKeys>;

beforeAll(async () => {
  ctx = await createClientRedisContext();
  keys = clientKeys(ctx.prefix);
  client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix, cache: { earlyRefresh: false } });
});
afterAll(async () => {
  await client?.close();
  await ctx?.cleanup();
});

function counting<T>(make: (n: number) => T, ms = 0) {
  const loader = async () => {
    loader.calls += 1;
    if (ms > 0) await sleep(ms);
    return make(loader.calls);
  };
  loader.calls = 0;
  return loader;
}

describe('cached()', () => {
  it('a miss runs the loader once and stores the value; later calls are hits with the same JSON value', async () => {
    const loader = counting((n) => ({ n, at: new Date(0) }));
    const first = await client.cached('basic', loader);
    const second = await client.cached('basic', loader);
    expect(loader.calls).toBe(1);
    // The miss returns what readers will get (JSON): the Date is a string on both paths.
    expect(first).toEqual({ n: 1, at: '1970-01-01T00:00:00.000Z' });
    expect(second).toEqual(first);
  });

  it('concurrent callers in one process share one load; a loader error reaches all of them and frees the lock', async () => {
    let fail = true;
    const loader = counting((n) => {
      if (fail) throw new Error('database is down');
      return n;
    }, 50);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () => client.cached('flaky', loader)),
    );
    expect(loader.calls).toBe(1);
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true);
    expect(await ctx.redis.exists(keys.lock('flaky'))).toBe(0);
    fail = false;
    const started = Date.now();
    expect(await client.cached('flaky', loader, { lockTtlMs: 10_000 })).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000); // did not wait for a lock to expire
  });

  it('stale-while-revalidate: after ttl, the stale value is served at once and one background load replaces it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    const loader = async () => {
      calls += 1;
      if (calls > 1) await gate; // the background reload cannot finish until the test says so
      return calls;
    };
    const options = { ttl: 100, staleWhileRevalidate: 10_000, jitter: 0 };
    expect(await client.cached('swr', loader, options)).toBe(1);
    await sleep(150);
    const before = client.stats().staleServed;
    // These resolve while the reload is still blocked: nobody waits for it.
    const stale = await Promise.all(Array.from({ length: 5 }, () => client.cached('swr', loader, options)));
    expect(stale).toEqual([1, 1, 1, 1, 1]);
    expect(client.stats().staleServed - before).toBe(5);
    expect(await eventually(() => calls === 2)).toBe(true); // one reload started, in the background
    release();
    expect(await eventually(async () => (await client.cached('swr', loader, options)) === 2)).toBe(true);
    expect(calls).toBe(2);
  });

  it('entries live ttl + staleWhileRevalidate in Redis, shortened by at most the jitter fraction', async () => {
    const pttls: number[] = [];
    for (let i = 0; i < 20; i++) {
      await client.cached(`jitter:${i}`, () => i, { ttl: 10_000, jitter: 0.5, staleWhileRevalidate: 5000 });
      pttls.push(await ctx.redis.pttl(keys.entry(`jitter:${i}`)));
    }
    for (const pttl of pttls) {
      expect(pttl).toBeGreaterThan(5000 + 5000 - 100);
      expect(pttl).toBeLessThanOrEqual(15_000);
    }
    expect(new Set(pttls.map((pttl) => Math.round(pttl / 100))).size).toBeGreaterThan(5); // spread, not one value
  });

  it('values over 1 KB are stored deflated behind a marker byte; small ones as plain JSON', async () => {
    const big = { text: 'viewkeeper '.repeat(500) };
    expect(await client.cached('big', () => big)).toEqual(big);
    expect(await client.cached('small', () => 'tiny')).toBe('tiny');
    const bigRaw = (await ctx.redis.getBuffer(keys.entry('big')))!;
    const smallRaw = (await ctx.redis.getBuffer(keys.entry('small')))!;
    expect(bigRaw[0]).toBe(CODEC_MARKER.deflate);
    expect(bigRaw.length).toBeLessThan(JSON.stringify(big).length / 4);
    expect(smallRaw[0]).toBe(CODEC_MARKER.json);
    expect(decodeEnvelope(bigRaw)?.envelope.v).toEqual(big);
    // Another client (a fresh process would be the same) reads the compressed entry back.
    const other = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
    try {
      expect(await other.cached('big', () => ({ text: 'reloaded' }))).toEqual(big);
    } finally {
      await other.close();
    }
  });

  it('invalidate(key) deletes the entry and publishes a key event', async () => {
    const loader = counting((n) => n);
    await client.cached('gone', loader);
    const events = await listen();
    try {
      expect(await client.invalidate('gone')).toBe(true);
      expect(await eventually(() => events.messages.some((m) => m.cacheKey === 'gone' && !('id' in m)))).toBe(
        true,
      );
    } finally {
      await events.close();
    }
    expect(await ctx.redis.exists(keys.entry('gone'))).toBe(0);
    expect(await client.cached('gone', loader)).toBe(2);
    expect(await client.invalidate('never-there')).toBe(false);
  });
});

describe('tags', () => {
  it('invalidateTag makes every entry with the tag miss (one version bump) and leaves other entries alone', async () => {
    const a = counting((n) => `a${n}`);
    const b = counting((n) => `b${n}`);
    const c = counting((n) => `c${n}`);
    await client.cached('tag:a', a, { tags: ['user:1'] });
    await client.cached('tag:b', b, { tags: ['user:1', 'org:9'] });
    await client.cached('tag:c', c, { tags: ['org:9'] });
    const versionBefore = Number(await ctx.redis.get(keys.tag('user:1')));
    const version = await client.invalidateTag('user:1');
    expect(version).toBeGreaterThan(versionBefore);
    expect(Number(await ctx.redis.get(keys.tag('user:1')))).toBe(version);
    // The entries are still in Redis (nothing was scanned or deleted) but no longer served.
    expect(await ctx.redis.exists(keys.entry('tag:a'), keys.entry('tag:b'))).toBe(2);
    expect(await client.cached('tag:a', a, { tags: ['user:1'] })).toBe('a2');
    expect(await client.cached('tag:b', b, { tags: ['user:1', 'org:9'] })).toBe('b2');
    expect(await client.cached('tag:c', c, { tags: ['org:9'] })).toBe('c1');
    // And the rebuilt entries are valid under the new version.
    expect(await client.cached('tag:a', a, { tags: ['user:1'] })).toBe('a2');
  });

  it('invalidateTag publishes { tag, version, at } on the events channel and the events stream', async () => {
    const events = await listen();
    try {
      const version = await client.invalidateTag('org:42');
      expect(
        await eventually(() => events.messages.some((m) => m.tag === 'org:42' && m.version === version)),
      ).toBe(true);
      const stream = await ctx.redis.xrevrange(`${ctx.prefix}:events`, '+', '-', 'COUNT', 1);
      const event = JSON.parse(stream[0]![1][1]!);
      expect(event).toEqual({ tag: 'org:42', version, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    } finally {
      await events.close();
    }
  });

  it('an evicted tag version never resurrects entries built under an older version', async () => {
    const loader = counting((n) => n);
    await client.cached('evict', loader, { tags: ['evicted'] });
    await client.invalidateTag('evicted');
    expect(await client.cached('evict', loader, { tags: ['evicted'] })).toBe(2);
    // Eviction of the tag key (allkeys-lru) reads as version 0: no entry was ever built under 0.
    await ctx.redis.del(keys.tag('evicted'));
    expect(await client.cached('evict', loader, { tags: ['evicted'] })).toBe(3);
    expect(await client.cached('evict', loader, { tags: ['evicted'] })).toBe(3);
  });
});

describe('metrics', () => {
  it('stats() counts hits, misses and loader calls, and close() adds them to {prefix}:client:stats', async () => {
    const own = createClient({ redisUrl: ctx.redisUrl, prefix: `${ctx.prefix}m`, statsFlushMs: 0 });
    await own.cached('m', () => 1);
    await own.cached('m', () => 1);
    await own.cached('m', () => 1);
    expect(own.stats()).toEqual({ hits: 2, misses: 1, staleServed: 0, l1Hits: 0, loaderCalls: 1, errors: 0 });
    await own.close();
    expect(await ctx.redis.hgetall(`${ctx.prefix}m:client:stats`)).toEqual({
      hits: '2',
      misses: '1',
      loader_calls: '1',
    });
  });
});

async function listen() {
  const subscriber = createRedisConnection(ctx.redisUrl, {
    role: 'subscriber',
    name: `${ctx.prefix}:listen`,
  });
  const messages: Record<string, unknown>[] = [];
  subscriber.on('message', (_channel, text: string) => messages.push(JSON.parse(text)));
  await subscriber.subscribe(`${ctx.prefix}:events`);
  return { messages, close: () => subscriber.quit() };
}
