import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, type RedisConnection } from '../../src/redis/connections.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import type { RefreshEngine, RefreshOutcome } from '../../src/views/refresh-engine.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import {
  actualContent,
  createEngine,
  type DemoView,
  expectedContent,
  gatedView,
  loadDemoViews,
  seedSmall,
} from '../helpers/views.ts';

let ctx: TestContext;
let engine: RefreshEngine;
let views: Record<DemoView, ViewDefinition>;
const readers: RedisConnection[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  views = await loadDemoViews();
  // Small cursor chunks: a rebuild takes many round trips, so readers interleave with its writes.
  engine = createEngine(ctx, { chunkSize: 10 });
});
afterAll(async () => {
  await Promise.all(readers.map((reader) => closeRedis(reader)));
  await ctx?.cleanup();
});

const db = () => ctx.db.db;

async function full(view: ViewDefinition): Promise<RefreshOutcome> {
  const outcome = await engine.refresh(view);
  expect(outcome).toMatchObject({ status: 'done', kind: 'full' });
  return outcome;
}

async function expectConverged(view: ViewDefinition): Promise<void> {
  expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(await expectedContent(ctx.db, view));
}

/** Runs `read` in a tight loop on its own connection until `stop()`; collects what `read` reports. */
function readLoop(read: (redis: RedisConnection) => Promise<string[]>) {
  const reader = ctx.duplicateRedis();
  readers.push(reader);
  let running = true;
  let reads = 0;
  const problems: string[] = [];
  const done = (async () => {
    while (running) {
      problems.push(...(await read(reader)));
      reads += 1;
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      reader.disconnect();
      return { reads, problems };
    },
  };
}

async function statsOf(userId: string) {
  return ctx.redis.hgetall(`user_stats:${userId}`);
}

async function nonVoter(postId: string): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select id from users where id not in (select user_id from votes where post_id = ${postId})
    order by id limit 1`.execute(db());
  return rows[0]!.id;
}

/** A post with no vote in the last 24 h (so not in trending:24h), skipping `except`. */
async function coldPost(except: string[] = []): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select id from posts where id not in
      (select post_id from votes where created_at > now() - interval '24 hours')
      and not (id::text = any(${except}::text[]))
    order by id limit 1`.execute(db());
  return rows[0]!.id;
}

async function addRecentVote(postId: string): Promise<void> {
  await db()
    .insertInto('votes')
    .values({ post_id: postId, user_id: await nonVoter(postId), value: 1, created_at: new Date() })
    .execute();
}

let nextPostId = 800_000;
async function addPosts(userId: string, upvotes: number[]): Promise<void> {
  await db()
    .insertInto('posts')
    .values(upvotes.map((up) => ({ id: nextPostId++, user_id: userId, title: 'Added', upvotes: up })))
    .execute();
}

describe('no torn reads during full rebuilds (guarantee 1)', () => {
  it('a reader never sees trending:24h missing or short, nor trending_posts invalid or short', async () => {
    await full(views.trending);
    await full(views.trending_posts);
    const members = await ctx.redis.zcard('trending:24h');
    const entries = (JSON.parse((await ctx.redis.get('trending_posts'))!) as unknown[]).length;
    expect(members).toBeGreaterThan(50);
    expect(entries).toBe(100);

    const loop = readLoop(async (redis) => {
      const [card, exists, text] = await Promise.all([
        redis.zcard('trending:24h'),
        redis.exists('trending:24h'),
        redis.get('trending_posts'),
      ]);
      const problems: string[] = [];
      if (exists !== 1 || card !== members) problems.push(`trending:24h exists=${exists} zcard=${card}`);
      try {
        const parsed = JSON.parse(text ?? 'null') as unknown;
        if (!Array.isArray(parsed) || parsed.length !== entries)
          problems.push(`trending_posts: ${text?.slice(0, 40)}`);
      } catch {
        problems.push(`trending_posts is not JSON: ${text?.slice(-40)}`);
      }
      return problems;
    });
    for (let i = 0; i < 5; i++) await Promise.all([full(views.trending), full(views.trending_posts)]);
    const { reads, problems } = await loop.stop();
    expect(problems.slice(0, 5)).toEqual([]);
    expect(reads).toBeGreaterThan(20);
    await expectConverged(views.trending);
    await expectConverged(views.trending_posts);
  });

  it('a reader never sees a user_stats or user hash with a missing or partial set of fields', async () => {
    await full(views.user_stats);
    await full(views.user);
    const ids = ['1', '57', '123', '200'];
    const expected = await Promise.all(ids.map(statsOf));
    for (const fields of expected) expect(Object.keys(fields)).toHaveLength(3);

    const loop = readLoop(async (redis) => {
      const problems: string[] = [];
      const hashes = await Promise.all(
        ids.flatMap((id) => [redis.hgetall(`user_stats:${id}`), redis.hgetall(`user:${id}`)]),
      );
      hashes.forEach((hash, i) => {
        if (Object.keys(hash).length !== 3) problems.push(`${i}: ${JSON.stringify(hash)}`);
      });
      return problems;
    });
    for (let i = 0; i < 5; i++) await Promise.all([full(views.user_stats), full(views.user)]);
    const { reads, problems } = await loop.stop();
    expect(problems.slice(0, 5)).toEqual([]);
    expect(reads).toBeGreaterThan(20);
    expect(await Promise.all(ids.map(statsOf))).toEqual(expected);
  });
});

describe('partial refresh during a full rebuild is not lost (guarantee 2)', () => {
  it('user_stats: a newer partial made while the rebuild is paused survives the rebuild', async () => {
    const view = views.user_stats;
    await full(view);
    const before = await statsOf('5');
    const { view: slow, gate } = gatedView(view);
    const rebuild = engine.refresh(slow);
    await gate.paused; // the rebuild's snapshot is taken: it has the old stats of user 5

    await addPosts('5', [40, 2]);
    expect(await engine.refresh(view, { user_id: '5' })).toMatchObject({
      status: 'done',
      keys: ['user_stats:5'],
    });
    const after = await statsOf('5');
    expect(after).not.toEqual(before);

    gate.release();
    expect(await rebuild).toMatchObject({ status: 'done', kind: 'full' });
    expect(await statsOf('5')).toEqual(after);
    await expectConverged(view);
  });

  it('trending: members added and removed by newer partials survive the swap', async () => {
    const view = views.trending;
    await full(view);
    const cold = await coldPost();
    const hot = (await ctx.redis.zrange('trending:24h', '0', '0'))[0]!;
    const { view: slow, gate } = gatedView(view);
    const rebuild = engine.refresh(slow);
    await gate.paused;

    await addRecentVote(cold);
    await sql`delete from votes where post_id = ${hot} and created_at > now() - interval '24 hours'`.execute(
      db(),
    );
    for (const post_id of [cold, hot]) {
      expect(await engine.refresh(view, { post_id })).toMatchObject({
        status: 'done',
        keys: ['trending:24h'],
      });
    }
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    expect(await ctx.redis.zscore('trending:24h', hot)).toBeNull();

    gate.release();
    expect(await rebuild).toMatchObject({ status: 'done', kind: 'full' });
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    expect(await ctx.redis.zscore('trending:24h', hot)).toBeNull();
    await expectConverged(view);
  });
});

describe('an older partial refresh never overwrites a newer full rebuild (guarantee 2, reverse)', () => {
  it('user_stats: a partial that started before the rebuild and writes after it is dropped', async () => {
    const view = views.user_stats;
    await full(view);
    const { view: slowPartial, gate } = gatedView(view);
    const stale = engine.refresh(slowPartial, { user_id: '6' });
    await gate.paused; // its snapshot has the old stats of user 6

    await addPosts('6', [30]);
    await full(view);
    const fresh = await statsOf('6');
    gate.release();
    expect(await stale).toMatchObject({ status: 'done', superseded: true, keys: [] });
    expect(await statsOf('6')).toEqual(fresh);
    await expectConverged(view);
  });

  it('user_stats: a partial that started before the rebuild and writes during it is overwritten', async () => {
    const view = views.user_stats;
    await full(view);
    const partialRun = gatedView(view);
    const stale = engine.refresh(partialRun.view, { user_id: '7' });
    await partialRun.gate.paused;
    const before = await statsOf('7');

    await addPosts('7', [25]);
    const fullRun = gatedView(view);
    const rebuild = engine.refresh(fullRun.view);
    await fullRun.gate.paused; // the rebuild's snapshot has the new stats of user 7
    partialRun.gate.release();
    expect(await stale).toMatchObject({ status: 'done' });
    expect(await statsOf('7')).toEqual(before); // the old value, written while the rebuild runs
    fullRun.gate.release();
    expect(await rebuild).toMatchObject({ status: 'done' });
    expect(await statsOf('7')).not.toEqual(before);
    await expectConverged(view);
  });

  it('trending: a partial that started before the rebuild and writes after it is dropped', async () => {
    const view = views.trending;
    await full(view);
    const cold = await coldPost();
    const { view: slowPartial, gate } = gatedView(view);
    const stale = engine.refresh(slowPartial, { post_id: cold });
    await gate.paused; // its snapshot: no recent votes for the post (it would remove the member)

    await addRecentVote(cold);
    await full(view);
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    gate.release();
    expect(await stale).toMatchObject({ status: 'done', superseded: true, keys: [] });
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    await expectConverged(view);
  });

  it('trending: a partial that started before the rebuild and writes during it is not carried over', async () => {
    const view = views.trending;
    await full(view);
    const cold = await coldPost();
    const partialRun = gatedView(view);
    const stale = engine.refresh(partialRun.view, { post_id: cold });
    await partialRun.gate.paused;

    await addRecentVote(cold);
    const fullRun = gatedView(view);
    const rebuild = engine.refresh(fullRun.view);
    await fullRun.gate.paused;
    partialRun.gate.release();
    expect(await stale).toMatchObject({ status: 'done' });
    fullRun.gate.release();
    expect(await rebuild).toMatchObject({ status: 'done' });
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    await expectConverged(view);
  });
});

describe('locking and coalescing (guarantee 3)', () => {
  it('two concurrent runs of the same (view, params): one is done, the other is refused as locked', async () => {
    const view = views.post_votes;
    const outcomes = await Promise.all([engine.refresh(view), engine.refresh(view)]);
    expect(outcomes.map((outcome) => outcome.status).sort()).toEqual(['busy', 'done']);
    const busy = outcomes.find((outcome) => outcome.status === 'busy');
    expect(busy).toMatchObject({ status: 'busy', reason: 'locked' });
    expect(busy!.retryInMs).toBeGreaterThan(0);

    const same = await Promise.all([
      engine.refresh(view, { post_id: '3' }),
      engine.refresh(view, { post_id: 3 }),
    ]);
    expect(same.map((outcome) => outcome.status).sort()).toEqual(['busy', 'done']);
  });

  it('a run in progress locks only its own (view, params) and releases the lock when done', async () => {
    const view = views.user_stats;
    const { view: slow, gate } = gatedView(view);
    const running = engine.refresh(slow);
    await gate.paused;
    expect(await engine.refresh(view)).toMatchObject({ status: 'busy', reason: 'locked' });
    expect(await engine.refresh(view, { user_id: '8' })).toMatchObject({ status: 'done' });
    gate.release();
    expect(await running).toMatchObject({ status: 'done' });
    expect(await engine.refresh(view)).toMatchObject({ status: 'done' });
  });

  it('after a run, a request inside the coalescing window is busy "coalescing" with retryInMs <= coalesceMs', async () => {
    const view = { ...views.user_stats, coalesceMs: 400 };
    expect(await engine.refresh(view, { user_id: '9' })).toMatchObject({ status: 'done' });
    const refused = await engine.refresh(view, { user_id: '9' });
    expect(refused).toMatchObject({ status: 'busy', reason: 'coalescing' });
    if (refused.status !== 'busy') throw new Error('unreachable');
    expect(refused.retryInMs).toBeGreaterThan(0);
    expect(refused.retryInMs).toBeLessThanOrEqual(400);
    // Other params have their own window.
    expect(await engine.refresh(view, { user_id: '10' })).toMatchObject({ status: 'done' });
    await sleep(refused.retryInMs + 20);
    expect(await engine.refresh(view, { user_id: '9' })).toMatchObject({ status: 'done' });
  });
});
