import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import trendingView from '../../demo/jobs/trending.ts';
import userStatsView from '../../demo/jobs/user-stats.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { REPO_JOBS, startDaemon } from '../helpers/daemon.ts';
import { createEngine, DEMO_VIEWS, type DemoView, loadDemoViews, seedSmall } from '../helpers/views.ts';

let ctx: TestContext;
let demo: Record<DemoView, ViewDefinition>;
let client: ViewkeeperClient<Record<DemoView, ViewDefinition>>;
let userId: string;
let postId: string;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  demo = await loadDemoViews();
  const engine = createEngine(ctx);
  for (const name of DEMO_VIEWS) await engine.refresh(demo[name]);
  userId = (await sql<{ id: string }>`select user_id::text as id from posts limit 1`.execute(ctx.db.db))
    .rows[0]!.id;
  postId = (await sql<{ id: string }>`select post_id::text as id from votes limit 1`.execute(ctx.db.db))
    .rows[0]!.id;
  // The view definitions from jobs/ are the descriptors: no key template is repeated here.
  client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix, views: demo, onMiss: 'null' });
});
afterAll(async () => {
  await client?.close();
  await ctx?.cleanup();
});

const code = (error: unknown) => (isViewkeeperError(error) ? error.code : String(error));

describe('typed view reads', () => {
  it('hash, value, json, zset and rank return what the daemon wrote', async () => {
    expect(await client.hash('user_stats', { user_id: userId })).toEqual(
      await ctx.redis.hgetall(`user_stats:${userId}`),
    );
    expect(await client.value('post_votes', { post_id: postId })).toBe(
      await ctx.redis.get(`post_votes:${postId}`),
    );
    expect(await client.json('trending_posts')).toEqual(JSON.parse((await ctx.redis.get('trending_posts'))!));

    const flat = await ctx.redis.zrange('trending:24h', '0', '4', 'REV', 'WITHSCORES');
    const members = flat.filter((_, i) => i % 2 === 0);
    expect(members.length).toBe(5);
    expect(await client.zset('trending', { top: 5 })).toEqual(members);
    expect(await client.zset('trending', { top: 5, withScores: true })).toEqual(
      members.map((member, i) => ({ member, score: Number(flat[2 * i + 1]) })),
    );
    expect(await client.rank('trending', members[0]!)).toBe(0);
    expect(await client.rank('trending', members[3]!)).toBe(3);
    expect(await client.rank('trending', 'no-such-post')).toBeNull();
  });

  it('plain { shape, key } descriptors work too, and view names are checked per shape by the compiler', async () => {
    const typed = createClient({
      redisUrl: ctx.redisUrl,
      prefix: ctx.prefix,
      views: {
        stats: { shape: 'hash', key: 'user_stats:{user_id}' },
        top: { shape: 'zset', key: 'trending:24h' },
      },
    });
    try {
      expect(await typed.hash('stats', { user_id: userId })).toEqual(
        await ctx.redis.hgetall(`user_stats:${userId}`),
      );
      expect((await typed.zset('top', { top: 3 })).length).toBe(3);
      // @ts-expect-error a zset view is not a hash view
      await expect(typed.hash('top', { user_id: userId })).rejects.toMatchObject({ code: 'E_BAD_PARAMS' });
      // A typed client goes wherever a plain one is expected (checked by npm run typecheck).
      const plain: ViewkeeperClient = typed;
      expect(await plain.hash('stats', { user_id: userId })).not.toBeNull();
    } finally {
      await typed.close();
    }
  });

  it('with view definitions as descriptors, view names are checked per shape by the compiler too', async () => {
    const typed = createClient({
      redisUrl: ctx.redisUrl,
      prefix: ctx.prefix,
      views: { user_stats: userStatsView, trending: trendingView },
      onMiss: 'null',
    });
    try {
      expect((await typed.zset('trending', { top: 2 })).length).toBe(2);
      // @ts-expect-error user_stats is a hash view, not a zset view
      await expect(typed.zset('user_stats', { top: 1 })).rejects.toMatchObject({ code: 'E_BAD_PARAMS' });
      // @ts-expect-error trending is a zset view, not a hash view
      await expect(typed.hash('trending', { post_id: 1 })).rejects.toMatchObject({ code: 'E_BAD_PARAMS' });
    } finally {
      await typed.close();
    }
  });

  it('onMiss null: a missing key reads as null; an unknown view or a missing key param is a typed error', async () => {
    expect(await client.hash('user_stats', { user_id: '999999999' })).toBeNull();
    expect(await client.value('post_votes', { post_id: '999999999' })).toBeNull();
    await expect(client.hash('nope' as 'user', { id: 1 }).catch(code)).resolves.toBe('E_VIEW_UNKNOWN');
    await expect(client.hash('user_stats', { id: 1 }).catch(code)).resolves.toBe('E_BAD_PARAMS');
    await expect(client.zset('trending', { top: 0 })).rejects.toMatchObject({ code: 'E_BAD_PARAMS' });
  });

  it('onMiss refresh with params the view does not accept fails at once, naming the param', async () => {
    const started = Date.now();
    const error = await client
      .hash('user_stats', { user_id: 'abc' }, { onMiss: 'refresh', timeoutMs: 10_000 })
      .catch((caught: unknown) => caught);
    expect(code(error)).toBe('E_BAD_PARAMS');
    expect(String(error)).toContain('user_id');
    expect(Date.now() - started).toBeLessThan(5000); // not the 10 s wait for an event that never comes
  });

  it('onMiss refresh without a daemon: E_TIMEOUT after the bounded wait', async () => {
    await ctx.redis.del(`user:${userId}`);
    await expect(
      client.hash('user', { id: userId }, { onMiss: 'refresh', timeoutMs: 300 }).catch(code),
    ).resolves.toBe('E_TIMEOUT');
  });
});

describe('with a daemon running', () => {
  it('a miss enqueues a refresh and waits for the view event, then reads; refresh({ wait }) returns the run', async () => {
    const daemon = startDaemon({ ...ctx.env, VK_JOBS_DIR: REPO_JOBS, LOG_LEVEL: 'info' });
    try {
      await daemon.waitFor(/daemon started/);
      const expected = await ctx.redis.hgetall(`user_stats:${userId}`);
      // One DEL per key: on a cluster the three live in different slots.
      for (const key of [`user_stats:${userId}`, `user:${userId}`, 'trending_posts'])
        await ctx.redis.del(key);
      const reads = await Promise.all([
        ...Array.from({ length: 10 }, () =>
          client.hash('user_stats', { user_id: userId }, { onMiss: 'refresh', timeoutMs: 15_000 }),
        ),
        client.hash('user', { id: userId }, { onMiss: 'refresh', timeoutMs: 15_000 }),
        client.json<unknown[]>('trending_posts', { onMiss: 'refresh', timeoutMs: 15_000 }),
      ]);
      for (const row of reads.slice(0, 10)) expect(row).toEqual(expected);
      expect(reads[10]).toMatchObject({ name: expect.any(String), email: expect.any(String) });
      expect((reads[11] as unknown[]).length).toBeGreaterThan(0);

      const { jobId, result } = await client.refresh(
        'post_votes',
        { post_id: postId },
        { wait: true, timeoutMs: 15_000 },
      );
      expect(jobId).toBeTruthy();
      expect(result).toMatchObject({ view: 'post_votes', kind: 'partial', version: expect.any(Number) });
      await expect(
        client.refresh('no_such_view', undefined, { wait: true, timeoutMs: 15_000 }).catch(code),
      ).resolves.toBe('E_JOB_FAILED');

      // A client that knows only the key template enqueues; the daemon rejects the params and the
      // read fails with its reason, long before the wait for an event would end.
      const plain = createClient({
        redisUrl: ctx.redisUrl,
        prefix: ctx.prefix,
        views: { user_stats: { shape: 'hash', key: 'user_stats:{user_id}' } },
      });
      try {
        const started = Date.now();
        const error = await plain
          .hash('user_stats', { user_id: 'abc' }, { onMiss: 'refresh', timeoutMs: 30_000 })
          .catch((caught: unknown) => caught);
        expect(code(error)).toBe('E_JOB_FAILED');
        expect(String(error)).toMatch(/user_stats:abc .*refresh failed: .*user_id/);
        expect(Date.now() - started).toBeLessThan(15_000);
      } finally {
        await plain.close();
      }
    } finally {
      await daemon.stop();
    }
  });
});
