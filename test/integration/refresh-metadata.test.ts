import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '../../src/redis/connections.ts';
import { eventsKey, runKeys, viewKeys } from '../../src/redis/keys.ts';
import { placementOf } from '../../src/redis/placement.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import { refreshIdentity } from '../../src/views/params.ts';
import type { RefreshEngine } from '../../src/views/refresh-engine.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import {
  createEngine,
  type DemoView,
  gatedView,
  loadDemoViews,
  queryRows,
  scanKeys,
  seedSmall,
} from '../helpers/views.ts';

let ctx: TestContext;
let engine: RefreshEngine;
let views: Record<DemoView, ViewDefinition>;
let subscriber: RedisConnection;
const messages: string[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  views = await loadDemoViews();
  engine = createEngine(ctx);
  subscriber = ctx.duplicateRedis();
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === eventsKey(ctx.prefix)) messages.push(message);
  });
  await subscriber.subscribe(eventsKey(ctx.prefix));
});
afterAll(async () => {
  subscriber?.disconnect();
  await ctx?.cleanup();
});

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function meta(view: string): Promise<Record<string, string>> {
  return ctx.redis.hgetall(viewKeys(ctx.prefix, view).meta);
}

/** The next message on the events channel after `count` were already seen. */
async function nextMessage(count: number): Promise<unknown> {
  for (let waited = 0; messages.length <= count && waited < 2000; waited += 10) await sleep(10);
  expect(messages.length).toBeGreaterThan(count);
  return JSON.parse(messages[count]!);
}

async function lastStreamEvent(): Promise<unknown> {
  const entries = await ctx.redis.xrevrange(eventsKey(ctx.prefix), '+', '-', 'COUNT', 1);
  expect(entries).toHaveLength(1);
  const [, fields] = entries[0]!;
  expect(fields[0]).toBe('event');
  return JSON.parse(fields[1]!);
}

describe('metadata and events', () => {
  it('a full rebuild records version, refreshed_at, duration_ms, rows, last_error and publishes keys: null', async () => {
    const view = views.user_stats;
    const seen = messages.length;
    const started = Date.now();
    const outcome = await engine.refresh(view);
    expect(outcome).toMatchObject({ status: 'done', version: 1 });

    const recorded = await meta('user_stats');
    expect(recorded).toMatchObject({
      version: '1',
      rows: String((await queryRows(ctx.db, view)).length),
      last_error: '',
    });
    expect(recorded.rows).toBe('200');
    expect(recorded.refreshed_at).toMatch(ISO);
    expect(Date.parse(recorded.refreshed_at!)).toBeGreaterThanOrEqual(started - 5);
    expect(Number(recorded.duration_ms)).toBeGreaterThanOrEqual(0);
    expect(Number.isInteger(Number(recorded.duration_ms))).toBe(true);

    const event = { view: 'user_stats', keys: null, version: 1, at: recorded.refreshed_at };
    expect(await nextMessage(seen)).toEqual(event);
    expect(await lastStreamEvent()).toEqual(event);
  });

  it('a partial refresh bumps the version, keeps rows, and publishes the changed keys', async () => {
    const seen = messages.length;
    const outcome = await engine.refresh(views.user_stats, { user_id: '5' });
    expect(outcome).toMatchObject({ status: 'done', version: 2, keys: ['user_stats:5'] });
    const recorded = await meta('user_stats');
    expect(recorded).toMatchObject({ version: '2', rows: '200', last_error: '' });
    const event = { view: 'user_stats', keys: ['user_stats:5'], version: 2, at: recorded.refreshed_at };
    expect(await nextMessage(seen)).toEqual(event);
    expect(await lastStreamEvent()).toEqual(event);
    expect(await ctx.redis.xlen(eventsKey(ctx.prefix))).toBe(2);
  });

  it('each view has its own version and a full rebuild of a zset view publishes keys: null', async () => {
    const seen = messages.length;
    expect(await engine.refresh(views.trending)).toMatchObject({ status: 'done', version: 1 });
    expect(await nextMessage(seen)).toMatchObject({ view: 'trending', keys: null, version: 1 });
    expect(await meta('user_stats')).toMatchObject({ version: '2' });
  });

  it.each([
    {
      how: 'throws',
      query: () => {
        throw new Error('boom\n  at line two');
      },
      reason: /^boom at line two$/,
    },
    {
      how: 'selects from a missing table',
      // biome-ignore lint/suspicious/noExplicitAny: deliberately not a table of the schema
      query: (db: any) => db.selectFrom('no_such_table').select(['id as user_id', 'id as post_count']),
      reason: /no_such_table.*does not exist/,
    },
  ])(
    'a query that $how records a one-line last_error, publishes nothing and releases the lock',
    async ({ query, reason }) => {
      const good = views.user_stats;
      const bad: ViewDefinition = { ...good, query: query as ViewDefinition['query'] };
      const before = await meta('user_stats');
      const seen = messages.length;

      await expect(engine.refresh(bad)).rejects.toThrow();
      const recorded = await meta('user_stats');
      expect(recorded.last_error).toMatch(reason);
      expect(recorded.last_error).not.toMatch(/\n/);
      expect(recorded.version).toBe(before.version);
      expect(await ctx.redis.exists(runKeys(ctx.prefix, refreshIdentity('user_stats', undefined)).lock)).toBe(
        0,
      );
      // Not 'locked': the next run starts (and fails the same way).
      await expect(engine.refresh(bad)).rejects.toThrow();
      await sleep(50);
      expect(messages.length).toBe(seen);
      expect(await ctx.redis.exists('user_stats:1')).toBe(1); // the view's data stays

      const outcome = await engine.refresh(good);
      expect(outcome).toMatchObject({ status: 'done', version: Number(before.version) + 1 });
      expect(await meta('user_stats')).toMatchObject({ last_error: '' });
    },
  );

  it('a query failing mid-stream drops the temporary key of a zset rebuild and releases the lock', async () => {
    const good = views.trending;
    const { view: gated, gate } = gatedView(good);
    const failing: ViewDefinition = {
      ...gated,
      query: (db, params) => {
        const inner = gated.query(db, params);
        return {
          async *stream(options) {
            for await (const row of inner.stream(options)) {
              yield row;
              throw new Error('connection lost');
            }
          },
        };
      },
    };
    const live = await ctx.redis.zrange('trending:24h', '0', '-1', 'WITHSCORES');
    const running = engine.refresh(failing);
    await gate.paused;
    gate.release();
    await expect(running).rejects.toThrow('connection lost');
    expect(await meta('trending')).toMatchObject({ last_error: 'connection lost' });
    // Every master; on a cluster the temporary key carries a slot tag before or after its name.
    expect(await scanKeys(ctx.redis, `*${viewKeys(ctx.prefix, 'trending').meta}:tmp:*`)).toEqual([]);
    expect(await ctx.redis.zrange('trending:24h', '0', '-1', 'WITHSCORES')).toEqual(live);
    expect(await engine.refresh(good)).toMatchObject({ status: 'done' });
  });
});

describe('redis errors while building aside', () => {
  it('a failed first write to the temporary zset fails the run and leaves the live key untouched', async () => {
    const view = views.trending;
    expect(await engine.refresh(view)).toMatchObject({ status: 'done' });
    const live = await ctx.redis.zrange('trending:24h', '0', '-1', 'WITHSCORES');
    const keys = viewKeys(ctx.prefix, 'trending');
    const nextSeq = Number(await ctx.redis.hget(keys.meta, 'seq')) + 1;
    // The rebuild's first ZADD gets WRONGTYPE (on a cluster the temporary key is in the live key's slot).
    const placement = placementOf(ctx.redis);
    await ctx.redis.set(placement.inSlot(keys.temp(nextSeq), placement.slotOf('trending:24h')), 'not a zset');

    await expect(engine.refresh(view)).rejects.toThrow(/WRONGTYPE/);
    expect(await ctx.redis.type('trending:24h')).toBe('zset');
    expect(await ctx.redis.zrange('trending:24h', '0', '-1', 'WITHSCORES')).toEqual(live);
    expect((await meta('trending')).last_error).toMatch(/WRONGTYPE/);
  });
});
