import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import type { RedisConnection } from '../../src/redis/connections.ts';
import { eventsKey } from '../../src/redis/keys.ts';
import {
  drained,
  expectViewsRight,
  installCapture,
  otherApp,
  outboxDepth,
  rebuildAll,
  startInProcess,
} from '../helpers/capture.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { loadDemoViews, seedSmall } from '../helpers/views.ts';

// Change capture end to end: "another app" (a plain pg client, no viewkeeper code) writes the demo
// tables; the triggers record the changed keys, the daemon drains the outbox into refreshes, and
// every demo view ends up equal to its query. Each write is checked against all five views, so a
// view whose mapping misses a table, an op or the old row of an UPDATE shows up here.

let ctx: TestContext;
let daemon: Daemon;
let app: pg.Client;
let views: Awaited<ReturnType<typeof loadDemoViews>>;
let subscriber: RedisConnection;
const events: { view: string; keys: string[] | null }[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  views = await loadDemoViews();
  await seedSmall(ctx.db);
  await installCapture(ctx, Object.values(views));
  await rebuildAll(ctx, Object.values(views));
  daemon = await startInProcess(ctx);
  app = await otherApp(ctx);
  subscriber = ctx.duplicateRedis();
  subscriber.on('message', (_channel: string, message: string) => events.push(JSON.parse(message)));
  await subscriber.subscribe(eventsKey(ctx.prefix));
});
afterAll(async () => {
  subscriber?.disconnect();
  await app?.end();
  await daemon?.stop();
  await ctx?.cleanup();
});

/** Runs `statements` as one transaction of the other app, then waits and compares every view. */
async function write(...statements: string[]): Promise<void> {
  await app.query('begin');
  for (const statement of statements) await app.query(statement);
  await app.query('commit');
  await drained(ctx);
  await expectViewsRight(ctx, Object.values(views));
}

async function one<T>(query: string): Promise<T> {
  const { rows } = await app.query(query);
  return rows[0] as T;
}

describe('users (user, user_stats)', () => {
  it('INSERT adds the user to user and user_stats', async () => {
    await write(`insert into users (id, name, email) values (90001, 'New', 'new@example.com')`);
    expect(await ctx.redis.hget('user:90001', 'name')).toBe('New');
    expect(await ctx.redis.hget('user_stats:90001', 'post_count')).toBe('0');
  });

  it('UPDATE of a field rewrites the hash', async () => {
    await write(`update users set name = 'Renamed', org_id = 7 where id = 90001`);
    expect(await ctx.redis.hget('user:90001', 'name')).toBe('Renamed');
  });

  it('UPDATE of the key removes the old key and writes the new one', async () => {
    await write(`update users set id = 90002 where id = 90001`);
    expect(await ctx.redis.exists('user:90001', 'user_stats:90001')).toBe(0);
    expect(await ctx.redis.hget('user:90002', 'name')).toBe('Renamed');
  });

  it('DELETE of a user with posts and votes (cascading) removes its keys and fixes every view', async () => {
    const { id } = await one<{ id: string }>(
      'select posts.user_id as id from posts join votes on votes.post_id = posts.id limit 1',
    );
    await write(`delete from users where id = ${id}`);
    expect(await ctx.redis.exists(`user:${id}`, `user_stats:${id}`)).toBe(0);
  });
});

describe('posts (user_stats, trending_posts)', () => {
  it('INSERT counts the post for its author', async () => {
    const { id } = await one<{ id: string }>('select id from users order by id limit 1');
    await write(`insert into posts (id, user_id, title, upvotes) values (90001, ${id}, 'fresh', 4)`);
  });

  it('UPDATE of upvotes and title changes user_stats and the trending list', async () => {
    const { id } = await one<{ id: string }>(
      "select post_id as id from votes where created_at > now() - interval '23 hours' group by post_id order by sum(value) desc limit 1",
    );
    await write(`update posts set upvotes = upvotes + 10, title = 'retitled' where id = ${id}`);
    expect(JSON.stringify(JSON.parse((await ctx.redis.get('trending_posts'))!))).toContain('retitled');
  });

  it('UPDATE moving posts to another author refreshes the old and the new author', async () => {
    const { from, to } = await one<{ from: string; to: string }>(
      'select min(user_id) as from, max(user_id) as to from posts',
    );
    await write(`update posts set user_id = ${to} where user_id = ${from}`);
    expect(await ctx.redis.hget(`user_stats:${from}`, 'post_count')).toBe('0');
  });

  it('DELETE of voted posts removes them from every view (votes cascade)', async () => {
    await write('delete from posts where id in (select post_id from votes order by post_id limit 3)');
  });
});

describe('votes (post_votes, trending, trending_posts)', () => {
  it('INSERT of votes, several posts in one statement', async () => {
    const { post, user } = await one<{ post: string; user: string }>(
      'select p.id as post, u.id as user from posts p, users u where not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id) limit 1',
    );
    await write(
      `insert into votes (post_id, user_id, value, created_at) values (${post}, ${user}, 1, now())`,
      `insert into votes (post_id, user_id, value, created_at) select id, ${user}, -1, now() from posts where id not in (select post_id from votes where user_id = ${user}) and id <> ${post} order by id limit 5`,
    );
  });

  it('UPDATE of a value', async () => {
    await write(
      `update votes set value = -value where (post_id, user_id) in (select post_id, user_id from votes order by post_id limit 10)`,
    );
  });

  it('UPDATE moving a vote to another post refreshes both posts', async () => {
    const { post, user, to } = await one<{ post: string; user: string; to: string }>(
      `select v.post_id as post, v.user_id as user, p.id as to from votes v, posts p
       where p.id <> v.post_id and not exists (select 1 from votes w where w.post_id = p.id and w.user_id = v.user_id)
         and v.created_at > now() - interval '23 hours' limit 1`,
    );
    await write(`update votes set post_id = ${to} where post_id = ${post} and user_id = ${user}`);
  });

  it('DELETE of every vote of a post removes its value key and its trending member', async () => {
    const { id } = await one<{ id: string }>(
      "select post_id as id from votes where created_at > now() - interval '23 hours' limit 1",
    );
    await write(`delete from votes where post_id = ${id}`);
    expect(await ctx.redis.exists(`post_votes:${id}`)).toBe(0);
    expect(await ctx.redis.zscore('trending:24h', id)).toBeNull();
  });

  it('TRUNCATE rebuilds every view reading the table', async () => {
    await write('truncate votes');
    expect(await ctx.redis.zcard('trending:24h')).toBe(0);
  });
});

it('a statement that changes no rows records nothing', async () => {
  await app.query('update users set name = name where id = -1');
  expect(await outboxDepth(ctx)).toBe(0);
});

it('a write-behind op on captured tables refreshes each of its keys once, not once per path', async () => {
  const { post, user } = await one<{ post: string; user: string }>(
    'select p.id as post, u.id as user from posts p, users u where not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id) order by p.id limit 1',
  );
  const { author } = await one<{ author: string }>(`select user_id as author from posts where id = ${post}`);
  const client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
  try {
    events.length = 0;
    await client.write('votes', [{ id: 'capture-dedup-1', post_id: post, user_id: user, value: 1 }]);
    const deadline = Date.now() + 20_000;
    while (
      (
        await one<{ n: number }>(
          `select count(*)::int as n from votes where post_id = ${post} and user_id = ${user}`,
        )
      ).n === 0
    ) {
      if (Date.now() > deadline) throw new Error('the write-behind op was not committed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await drained(ctx);
    // Let a second run (the coalescing window is 1 s) show up if the two paths were not merged.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await drained(ctx);
    await expectViewsRight(ctx, Object.values(views));
    const touching = (view: string, key: string) =>
      events.filter((event) => event.view === view && (event.keys === null || event.keys.includes(key)))
        .length;
    expect(touching('post_votes', `post_votes:${post}`)).toBe(1);
    expect(touching('user_stats', `user_stats:${author}`)).toBe(1);
    expect(events.filter((event) => event.view === 'trending_posts')).toHaveLength(1);
  } finally {
    await client.close();
  }
});
