import { describe, expect, it } from 'vitest';
import { createBreaker } from '../../src/client/breaker.ts';
import { jitteredTtl, shouldRefreshEarly } from '../../src/client/cached.ts';
import { parseEvent } from '../../src/client/events.ts';
import { resolveClientOptions } from '../../src/client/options.ts';
import { resolveViews } from '../../src/client/view-descriptors.ts';
import type { CacheEnvelope } from '../../src/redis/cache-codec.ts';

describe('circuit breaker', () => {
  it('opens after N consecutive failures, lets one probe through after the cool-down, closes on its success', () => {
    let now = 0;
    const breaker = createBreaker({ failureThreshold: 3, cooldownMs: 100, now: () => now });
    breaker.failure();
    breaker.failure();
    breaker.success(); // not consecutive
    breaker.failure();
    breaker.failure();
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state()).toBe('open');
    expect(breaker.allow()).toBe(false);
    now = 100;
    expect(breaker.state()).toBe('half-open');
    expect(breaker.allow()).toBe(true); // the probe
    expect(breaker.allow()).toBe(false); // everyone else still fails fast
    breaker.success();
    expect(breaker.state()).toBe('closed');
    expect(breaker.allow()).toBe(true);
  });

  it('a failed probe re-opens it for another cool-down', () => {
    let now = 0;
    const breaker = createBreaker({ failureThreshold: 1, cooldownMs: 100, now: () => now });
    breaker.failure();
    now = 150;
    expect(breaker.allow()).toBe(true);
    breaker.failure();
    expect(breaker.state()).toBe('open');
    now = 200;
    expect(breaker.allow()).toBe(false);
    now = 250;
    expect(breaker.allow()).toBe(true);
  });
});

describe('XFetch and jitter', () => {
  const envelope = (x: number, d: number): CacheEnvelope => ({ v: 1, t: 0, d, x, s: x, i: 'i' });

  it('refreshes early with a probability that grows as expiry nears and with the recompute time', () => {
    // now − δ·β·ln(r) ≥ x  ⇔  r ≤ exp(−(x − now)/(δβ))
    const e = envelope(1000, 100);
    expect(shouldRefreshEarly(e, 1, 900, Math.exp(-1) - 1e-9)).toBe(true);
    expect(shouldRefreshEarly(e, 1, 900, Math.exp(-1) + 1e-9)).toBe(false);
    expect(shouldRefreshEarly(e, 2, 800, Math.exp(-1) - 1e-9)).toBe(true); // β = 2 reaches twice as far
    expect(shouldRefreshEarly(e, 0, 999, 1e-12)).toBe(false); // β = 0: off
    let hits = 0;
    for (let i = 0; i < 10_000; i++) if (shouldRefreshEarly(e, 1, 700)) hits += 1;
    expect(hits / 10_000).toBeCloseTo(Math.exp(-3), 1);
  });

  it('jitter only shortens the TTL, by at most the fraction', () => {
    expect(jitteredTtl(1000, 0.2, 0)).toBe(1000);
    expect(jitteredTtl(1000, 0.2, 0.999999)).toBe(800);
    expect(jitteredTtl(1000, 0, 0.5)).toBe(1000);
  });
});

describe('view descriptors', () => {
  it('fill key templates from params and name what is missing', () => {
    const views = resolveViews({
      user_stats: { shape: 'hash', key: 'user_stats:{user_id}' },
      pair: { shape: 'value', key: { source: 'pair:{a}:{b}' } },
    });
    expect(views.get('user_stats')!.keyFor({ user_id: 42n })).toBe('user_stats:42');
    expect(views.get('pair')!.keyFor({ a: 1, b: 'x' })).toBe('pair:1:x');
    expect(() => views.get('pair')!.keyFor({ a: 1 })).toThrow(/needs param "b"/);
  });

  it('accept a list of named definitions and reject shapes that do not fit their key', () => {
    expect([...resolveViews([{ name: 'trending', shape: 'zset', key: 'trending:24h' }]).keys()]).toEqual([
      'trending',
    ]);
    expect(() => resolveViews({ x: { shape: 'hash', key: 'fixed' } })).toThrow(/needs a key template/);
    expect(() => resolveViews({ x: { shape: 'bitmap' as 'hash', key: 'a:{b}' } })).toThrow(/shape/);
  });
});

describe('options', () => {
  it('applies one set of defaults and validates at construction', () => {
    const resolved = resolveClientOptions({});
    expect(resolved).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      queueRedisUrl: 'redis://127.0.0.1:6379',
      prefix: 'vk',
      onMiss: 'refresh',
      l1: undefined,
      cache: { ttl: 60_000, beta: 1, jitter: 0.1, compressAbove: 1024 },
    });
    expect(resolveClientOptions({ l1: true }).l1).toEqual({
      maxEntries: 10_000,
      maxBytes: 64 * 1024 * 1024,
      ttlMs: 60_000,
    });
    expect(resolveClientOptions({ cache: { earlyRefresh: false } }).cache.beta).toBe(0);
    expect(() => resolveClientOptions({ onMiss: 'wait' as 'null' })).toThrow(/onMiss/);
    expect(() => resolveClientOptions({ prefix: 'has space' })).toThrow(/prefix/);
    expect(() => resolveClientOptions({ redisUrl: 'redis://:secret@[bad' })).toThrow(/redisUrl="\*\*\*"/);
  });
});

describe('events', () => {
  it('parses view, tag and cache-key events and ignores anything else', () => {
    expect(parseEvent('{"view":"v","keys":null,"version":3,"at":"t"}')).toEqual({
      view: 'v',
      keys: null,
      version: 3,
      at: 't',
    });
    expect(parseEvent('{"tag":"user:1","version":9,"at":"t"}')).toMatchObject({ tag: 'user:1' });
    expect(parseEvent('{"cacheKey":"k","id":"x","at":"t"}')).toMatchObject({ cacheKey: 'k', id: 'x' });
    expect(parseEvent('not json')).toBeUndefined();
    expect(parseEvent('42')).toBeUndefined();
    expect(parseEvent('{"view":"v"}')).toBeUndefined();
  });
});
