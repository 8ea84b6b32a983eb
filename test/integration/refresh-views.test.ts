import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKeys } from '../../src/redis/keys.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import { refreshIdentity } from '../../src/views/params.ts';
import type { RefreshEngine } from '../../src/views/refresh-engine.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import {
  actualContent,
  createEngine,
  DEMO_VIEWS,
  type DemoView,
  dataKeys,
  expectedContent,
  indexedKeys,
  keyPattern,
  loadDemoViews,
  queryRows,
  scanKeys,
  seedSmall,
} from '../helpers/views.ts';

let ctx: TestContext;
let engine: RefreshEngine;
let views: Record<DemoView, ViewDefinition>;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  views = await loadDemoViews();
  engine = createEngine(ctx);
});
afterAll(() => ctx?.cleanup());

const db = () => ctx.db.db;

async function full(view: ViewDefinition) {
  const outcome = await engine.refresh(view);
  expect(outcome).toMatchObject({ status: 'done', kind: 'full', keys: null, superseded: false });
  return outcome;
}

async function partial(view: ViewDefinition, params: Record<string, unknown>, keys: string[]) {
  const outcome = await engine.refresh(view, params);
  expect(outcome).toMatchObject({ status: 'done', kind: 'partial', keys, superseded: false });
}

async function expectConverged(view: ViewDefinition): Promise<void> {
  expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(await expectedContent(ctx.db, view));
}

/** Guards against vacuous passes: the database change must have made Redis differ from the query. */
async function expectStale(view: ViewDefinition): Promise<void> {
  expect(await actualContent(ctx.redis, ctx.prefix, view)).not.toEqual(await expectedContent(ctx.db, view));
}

async function trendingMembers(): Promise<Set<string>> {
  return new Set(await ctx.redis.zrange('trending:24h', '0', '-1'));
}

/** A user who has not voted on `postId` (the votes primary key is (post_id, user_id)). */
async function nonVoter(postId: string): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    select id from users where id not in (select user_id from votes where post_id = ${postId})
    order by id limit 1`.execute(db());
  return rows[0]!.id;
}

describe('full rebuild', () => {
  it.each(DEMO_VIEWS)('makes Redis equal the query of %s, with no extra keys', async (name) => {
    const view = views[name];
    const expected = await expectedContent(ctx.db, view);
    const outcome = await full(view);
    expect(outcome).toMatchObject({ rows: (await queryRows(ctx.db, view)).length });
    expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(expected);
    if (expected.shape === 'hash' || expected.shape === 'value') {
      const keys = Object.keys(expected.keys).sort();
      expect(keys.length).toBeGreaterThan(100);
      expect(await scanKeys(ctx.redis, keyPattern(view))).toEqual(keys);
      expect((await indexedKeys(ctx.redis, ctx.prefix, view)).sort()).toEqual(keys);
    } else if (expected.shape === 'zset') {
      expect(Object.keys(expected.members).length).toBeGreaterThan(50);
    } else if (expected.shape === 'json') {
      expect(expected.value).toHaveLength(100);
    }
  });

  it('removes the keys of rows deleted from Postgres and shrinks the key index', async () => {
    for (const name of DEMO_VIEWS) await full(views[name]);
    const userIndexBefore = (await indexedKeys(ctx.redis, ctx.prefix, views.user)).length;
    const deletedUsers = ['10', '11', '12', '13', '14'];
    await db().deleteFrom('users').where('id', 'in', deletedUsers).execute(); // cascades to posts and votes
    const { rows: voteless } = await sql<{ id: string }>`
      select id from posts where id in (select post_id from votes) order by id limit 3`.execute(db());
    const deletedVotes = voteless.map((row) => row.id);
    await db().deleteFrom('votes').where('post_id', 'in', deletedVotes).execute();

    for (const name of DEMO_VIEWS) await full(views[name]);

    for (const id of deletedUsers) {
      // One key per EXISTS: on a cluster the two are in different slots.
      expect(await ctx.redis.exists(`user:${id}`)).toBe(0);
      expect(await ctx.redis.exists(`user_stats:${id}`)).toBe(0);
    }
    for (const id of deletedVotes) expect(await ctx.redis.exists(`post_votes:${id}`)).toBe(0);
    const trending = await trendingMembers();
    for (const id of deletedVotes) expect(trending.has(id)).toBe(false);
    expect(await indexedKeys(ctx.redis, ctx.prefix, views.user)).toHaveLength(
      userIndexBefore - deletedUsers.length,
    );
    for (const name of DEMO_VIEWS) await expectConverged(views[name]);
  });

  it('replaces whole hashes when the field list of the view changes, in full and partial refreshes', async () => {
    const wide = { ...views.user_stats, fields: ['post_count', 'total_upvotes', 'avg_upvotes'] };
    const narrow = { ...views.user_stats, fields: ['post_count'] };
    await full(wide);
    expect(Object.keys(await ctx.redis.hgetall('user_stats:1')).sort()).toEqual([
      'avg_upvotes',
      'post_count',
      'total_upvotes',
    ]);
    // A partial refresh with the new, narrower field list must not leave the old fields behind.
    await engine.refresh(narrow, { user_id: '1' });
    expect(Object.keys(await ctx.redis.hgetall('user_stats:1'))).toEqual(['post_count']);
    await full(narrow);
    expect(Object.keys(await ctx.redis.hgetall('user_stats:2'))).toEqual(['post_count']);
    // Back to the wide list: full rebuild, then a partial refresh of a key.
    await full(wide);
    expect(Object.keys(await ctx.redis.hgetall('user_stats:2')).sort()).toEqual([
      'avg_upvotes',
      'post_count',
      'total_upvotes',
    ]);
    await engine.refresh(narrow, { user_id: '3' });
    expect(Object.keys(await ctx.redis.hgetall('user_stats:3'))).toEqual(['post_count']);
    await full(views.user_stats);
    await expectConverged(views.user_stats);
  });
});

describe('partial refresh after direct database changes', () => {
  it('user: follows an update, an insert and deletes (key removed)', async () => {
    const view = views.user;
    await full(view);

    await db().updateTable('users').set({ name: 'Renamed 7', org_id: null }).where('id', '=', '7').execute();
    await expectStale(view);
    await partial(view, { id: '7' }, ['user:7']);
    await expectConverged(view);
    expect(await ctx.redis.hgetall('user:7')).toEqual({
      name: 'Renamed 7',
      email: 'user7@example.com',
      org_id: '',
    });

    await db()
      .insertInto('users')
      .values({ id: 5001, name: 'New', email: 'new@example.com', org_id: 3 })
      .execute();
    await expectStale(view);
    await partial(view, { id: '5001' }, ['user:5001']);
    await expectConverged(view);
    expect(await ctx.redis.hgetall('user:5001')).toEqual({
      name: 'New',
      email: 'new@example.com',
      org_id: '3',
    });

    for (const id of ['5001', '9']) {
      await db().deleteFrom('users').where('id', '=', id).execute();
      await expectStale(view);
      await partial(view, { id }, [`user:${id}`]);
      expect(await ctx.redis.exists(`user:${id}`)).toBe(0);
      await expectConverged(view);
    }
  });

  it('user_stats: follows a new post, and all posts of a user deleted (zeros, avg 0.00)', async () => {
    const view = views.user_stats;
    await full(view);

    await db().insertInto('posts').values({ id: 900001, user_id: 5, title: 'Fresh', upvotes: 7 }).execute();
    await expectStale(view);
    await partial(view, { user_id: '5' }, ['user_stats:5']);
    await expectConverged(view);

    const { rows } = await sql<{ user_id: string }>`
      select user_id from posts where user_id <> 5 group by user_id having count(*) >= 2 order by user_id limit 1`.execute(
      db(),
    );
    const author = rows[0]!.user_id;
    await db().deleteFrom('posts').where('user_id', '=', author).execute();
    await expectStale(view);
    await partial(view, { user_id: author }, [`user_stats:${author}`]);
    expect(await ctx.redis.hgetall(`user_stats:${author}`)).toEqual({
      post_count: '0',
      total_upvotes: '0',
      avg_upvotes: '0.00',
    });
    await expectConverged(view);
  });

  it('post_votes: follows inserted, updated and deleted votes; no votes left removes the key', async () => {
    const view = views.post_votes;
    await full(view);
    const post = '42';
    const key = `post_votes:${post}`;
    const voter = await nonVoter(post);

    const changes = [
      () => db().insertInto('votes').values({ post_id: post, user_id: voter, value: 1 }).execute(),
      () =>
        db()
          .updateTable('votes')
          .set({ value: -1 })
          .where('post_id', '=', post)
          .where('user_id', '=', voter)
          .execute(),
      () =>
        sql`delete from votes where post_id = ${post}
            and user_id = (select min(user_id) from votes where post_id = ${post} and value = 1)`.execute(
          db(),
        ),
    ];
    for (const change of changes) {
      await change();
      await expectStale(view);
      await partial(view, { post_id: post }, [key]);
      await expectConverged(view);
    }

    await db().deleteFrom('votes').where('post_id', '=', post).execute();
    await expectStale(view);
    await partial(view, { post_id: post }, [key]);
    expect(await ctx.redis.exists(key)).toBe(0);
    await expectConverged(view);
  });

  it('trending: a recent vote adds a member; deleting its recent votes removes one', async () => {
    const view = views.trending;
    await full(view);
    const members = await trendingMembers();

    const { rows } = await sql<{ id: string }>`
      select id from posts where id not in
        (select post_id from votes where created_at > now() - interval '24 hours') order by id limit 1`.execute(
      db(),
    );
    const cold = rows[0]!.id;
    expect(members.has(cold)).toBe(false);
    await db()
      .insertInto('votes')
      .values({ post_id: cold, user_id: await nonVoter(cold), value: 1, created_at: new Date() })
      .execute();
    await expectStale(view);
    await partial(view, { post_id: cold }, ['trending:24h']);
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    await expectConverged(view);

    const hot = [...members].sort()[0]!;
    await sql`delete from votes where post_id = ${hot} and created_at > now() - interval '24 hours'`.execute(
      db(),
    );
    await expectStale(view);
    await partial(view, { post_id: hot }, ['trending:24h']);
    expect(await ctx.redis.zscore('trending:24h', hot)).toBeNull();
    await expectConverged(view);
  });
});

describe('batched partial refreshes (batchPartials)', () => {
  /** Posts with votes, none touched by the other tests. */
  async function votedPosts(count: number): Promise<string[]> {
    const { rows } = await sql<{ post_id: string }>`
      select post_id from votes where post_id between 400 and 599 group by post_id
      having count(*) >= 2 order by post_id limit ${count}`.execute(db());
    expect(rows).toHaveLength(count);
    return rows.map((row) => row.post_id);
  }

  it('post_votes and trending: many changed posts in one run equal the query; outcomes follow the request order', async () => {
    await full(views.post_votes);
    await full(views.trending);
    const [gone, grown, flipped, untouched] = await votedPosts(4);
    await db().deleteFrom('votes').where('post_id', '=', gone!).execute();
    await db()
      .insertInto('votes')
      .values({ post_id: grown!, user_id: await nonVoter(grown!), value: 1, created_at: new Date() })
      .execute();
    await sql`update votes set value = -value, created_at = now()
      where post_id = ${flipped} and user_id = (select min(user_id) from votes where post_id = ${flipped})`.execute(
      db(),
    );
    await expectStale(views.post_votes);
    await expectStale(views.trending);

    const request = [gone, grown, flipped, untouched, grown].map((post_id) => ({ post_id }));
    const outcomes = await engine.refreshBatch(views.post_votes, request);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['done', 'done', 'done', 'done', 'done']);
    const done = outcomes as Extract<(typeof outcomes)[number], { status: 'done' }>[];
    expect(new Set(done.map((outcome) => outcome.version)).size).toBe(1); // one run, one version
    expect(done.map((outcome) => outcome.rows)).toEqual([0, 1, 1, 1, 1]);
    expect(done[0]!.keys).toEqual([`post_votes:${gone}`]);
    expect(done[1]!.keys).toEqual([`post_votes:${grown}`]);
    expect(await ctx.redis.exists(`post_votes:${gone}`)).toBe(0);
    await expectConverged(views.post_votes);

    const trending = await engine.refreshBatch(views.trending, request);
    expect(trending.every((outcome) => outcome.status === 'done')).toBe(true);
    await expectConverged(views.trending);
  });

  it('user_stats: one event names every changed key, with the run version', async () => {
    const view = views.user_stats;
    await full(view);
    const { rows } = await sql<{ user_id: string }>`
      select user_id from posts where user_id between 100 and 180 group by user_id
      having count(*) >= 2 order by user_id limit 3`.execute(db());
    const [emptied, grown, same] = rows.map((row) => row.user_id);
    await db().deleteFrom('posts').where('user_id', '=', emptied!).execute();
    await db()
      .insertInto('posts')
      .values({ id: 900101, user_id: grown!, title: 'More', upvotes: 3 })
      .execute();
    await expectStale(view);

    const outcomes = await engine.refreshBatch(view, [
      { user_id: emptied },
      { user_id: grown },
      { user_id: same },
    ]);
    await expectConverged(view);
    expect(await ctx.redis.hgetall(`user_stats:${emptied}`)).toMatchObject({ post_count: '0' });
    const [latest] = await ctx.redis.xrevrange(`${ctx.prefix}:events`, '+', '-', 'COUNT', 1);
    const event = JSON.parse(latest![1][1]!) as { view: string; keys: string[]; version: number };
    expect(event.view).toBe('user_stats');
    expect(event.version).toBe((outcomes[0] as { version: number }).version);
    expect(event.keys.sort()).toEqual([emptied, grown, same].map((id) => `user_stats:${id}`).sort());
  });

  it('releases the lock and opens the coalescing window of every (view, params) in the batch', async () => {
    const view = { ...views.user, coalesceMs: 5000 };
    const params = ['11', '12', '13'].map((id) => ({ id }));
    const first = await engine.refreshBatch(view, params);
    expect(first.map((outcome) => outcome.status)).toEqual(['done', 'done', 'done']);
    for (const one of params) {
      const run = runKeys(ctx.prefix, refreshIdentity('user', one));
      expect(await ctx.redis.exists(run.lock)).toBe(0);
      expect(await ctx.redis.pttl(run.window)).toBeGreaterThan(0);
    }
    // Inside the windows every one of them waits; a key outside them runs.
    const again = await engine.refreshBatch(view, [...params, { id: '14' }]);
    expect(again.map((outcome) => (outcome.status === 'busy' ? outcome.reason : outcome.status))).toEqual([
      'coalescing',
      'coalescing',
      'coalescing',
      'done',
    ]);
  });

  it('leaves out a (view, params) another run holds, reports it busy, and keeps that lock', async () => {
    const view = views.user;
    await full(view);
    const lock = `${ctx.prefix}:lock:${refreshIdentity('user', { id: '7' })}`;
    await ctx.redis.set(lock, 'someone-else', 'PX', 10_000);
    await db().updateTable('users').set({ name: 'renamed-7' }).where('id', '=', '7').execute();
    await db().updateTable('users').set({ name: 'renamed-8' }).where('id', '=', '8').execute();

    const [seven, eight] = await engine.refreshBatch(view, [{ id: '7' }, { id: '8' }]);
    expect(seven).toMatchObject({ status: 'busy', reason: 'locked' });
    expect(eight).toMatchObject({ status: 'done', keys: ['user:8'] });
    expect(await ctx.redis.hget('user:8', 'name')).toBe('renamed-8');
    expect(await ctx.redis.hget('user:7', 'name')).not.toBe('renamed-7');
    expect(await ctx.redis.get(lock)).toBe('someone-else');
    await ctx.redis.del(lock);
  });
});

describe('lost bookkeeping', () => {
  it('a view whose metadata hash was evicted keeps refreshing (full and partial), above its old sequences', async () => {
    const meta = `${ctx.prefix}:view:user_stats`;
    const view = views.user_stats;
    await full(view);
    await full(view);
    const seqBefore = Number(await ctx.redis.hget(meta, 'seq'));
    expect(seqBefore).toBeGreaterThan(1);
    await ctx.redis.del(meta); // what allkeys-lru eviction or a stray DEL does

    await db().insertInto('posts').values({ id: 900201, user_id: 150, title: 'After', upvotes: 9 }).execute();
    await expectStale(view);
    await full(view);
    expect(Number(await ctx.redis.hget(meta, 'seq'))).toBeGreaterThan(seqBefore);
    await expectConverged(view);

    await db().insertInto('posts').values({ id: 900202, user_id: 151, title: 'After', upvotes: 4 }).execute();
    await partial(view, { user_id: '151' }, ['user_stats:151']);
    await expectConverged(view);
  });

  it('a zset view whose metadata hash was evicted takes partial refreshes again', async () => {
    const meta = `${ctx.prefix}:view:trending`;
    const view = views.trending;
    await full(view);
    const { rows } = await sql<{ id: string }>`
      select id from posts where id not in
        (select post_id from votes where created_at > now() - interval '24 hours') order by id desc limit 1`.execute(
      db(),
    );
    const cold = rows[0]!.id;
    // A partial first (it removes the absent member), so the member index holds a sequence above 1.
    await partial(view, { post_id: cold }, ['trending:24h']);
    await ctx.redis.del(meta);
    await db()
      .insertInto('votes')
      .values({ post_id: cold, user_id: await nonVoter(cold), value: 1, created_at: new Date() })
      .execute();
    await expectStale(view);
    await partial(view, { post_id: cold }, ['trending:24h']);
    expect(await ctx.redis.zscore('trending:24h', cold)).toBe('1');
    await expectConverged(view);
  });
});

describe('ttl', () => {
  it('gives every key a view with ttl 60 writes a TTL in (0, 60], and a rebuild without ttl removes it', async () => {
    const expectTtls = async (view: ViewDefinition, check: (ttl: number) => boolean) => {
      const keys = await dataKeys(ctx.redis, view);
      expect(keys.length).toBeGreaterThan(0);
      const ttls = await Promise.all(keys.map((key) => ctx.redis.ttl(key)));
      expect(ttls.filter((ttl) => !check(ttl))).toEqual([]);
    };
    const inRange = (ttl: number) => ttl > 0 && ttl <= 60;
    const withTtl = Object.fromEntries(
      DEMO_VIEWS.map((name) => [name, { ...views[name], ttl: 60 }]),
    ) as Record<DemoView, ViewDefinition>;
    for (const name of DEMO_VIEWS) {
      await full(withTtl[name]);
      await expectTtls(withTtl[name], inRange);
    }
    // Partial refreshes write with the ttl too (a new key, and the zset after a member change).
    await db()
      .insertInto('users')
      .values({ id: 6001, name: 'T', email: 't@example.com', org_id: 1 })
      .execute();
    await partial(withTtl.user, { id: '6001' }, ['user:6001']);
    await partial(withTtl.user_stats, { user_id: '6001' }, ['user_stats:6001']);
    await db()
      .insertInto('votes')
      .values({ post_id: 1, user_id: 6001, value: 1, created_at: new Date() })
      .execute();
    await partial(withTtl.post_votes, { post_id: '1' }, ['post_votes:1']);
    await ctx.redis.persist('trending:24h');
    await partial(withTtl.trending, { post_id: '1' }, ['trending:24h']);
    for (const name of ['user', 'user_stats', 'post_votes', 'trending'] as const) {
      await expectTtls(withTtl[name], inRange);
    }

    for (const name of DEMO_VIEWS) {
      await full(views[name]);
      await expectTtls(views[name], (ttl) => ttl === -1);
      await expectConverged(views[name]);
    }
  });
});
