import type { Queue } from 'bullmq';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/create-client.ts';
import { QUEUES, type WriteBehindJobData } from '../../src/contract.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { createQueue, createQueueEvents } from '../../src/queues/factories.ts';
import { createWriteBehindWorker } from '../../src/queues/write-behind-worker.ts';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  duplicateConnection,
  type RedisConnection,
} from '../../src/redis/connections.ts';
import { viewKeys } from '../../src/redis/keys.ts';
import { defineSink } from '../../src/sinks/define-sink.ts';
import { defineView, type ViewDefinition } from '../../src/views/define-view.ts';
import type { Done, RefreshEngine } from '../../src/views/refresh-engine.ts';
import { createRegistry, loadRegistry } from '../../src/views/registry.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { actualContent, createEngine, JOBS_DIR, seedSmall } from '../helpers/views.ts';

// list and set views, compared key by key with oracles written here in plain SQL (not the views'
// own queries): full rebuilds, partial refreshes after direct database changes, vanished groups,
// atomic replacement under concurrent readers, appends (from the engine and from a sink's refresh
// declaration) and a full rebuild racing appends (guarantee 2).

let ctx: TestContext;
let engine: RefreshEngine;
let recentVotes: ViewDefinition;
let votersToday: ViewDefinition;
type Groups = Record<string, string[]>;

function push(groups: Groups, key: string, element: string): void {
  const elements = groups[key] ?? [];
  elements.push(element);
  groups[key] = elements;
}

/** A vote as user_recent_votes stores it: the JSON of its non-key columns, keys sorted. */
function voteElement(row: { created_at: Date; post_id: string; value: number }): string {
  return JSON.stringify({ created_at: row.created_at, post_id: row.post_id, value: row.value });
}

/** The oracle of user_recent_votes: each user's 20 newest votes (ties by post id), newest first. */
async function recentVotesOracle(): Promise<Groups> {
  const { rows } = await sql<{ user_id: string; post_id: string; value: number; created_at: Date }>`
    select user_id::text, post_id::text, value, created_at from (
      select v.*, row_number() over (partition by user_id order by created_at desc, post_id desc) as n
      from votes v) ranked
    where n <= 20 order by user_id, n`.execute(ctx.db.db);
  const groups: Groups = {};
  for (const row of rows) push(groups, `user_recent_votes:${row.user_id}`, voteElement(row));
  return groups;
}

/** The oracle of post_voters_today: per post, the users with a vote on it in the last 24 h. */
async function votersTodayOracle(): Promise<Groups> {
  const { rows } = await sql<{ post_id: string; users: string[] }>`
    select post_id::text, array_agg(user_id::text order by user_id::text) as users from votes
    where created_at > now() - interval '24 hours' group by post_id`.execute(ctx.db.db);
  return Object.fromEntries(rows.map((row) => [`post_voters_today:${row.post_id}`, row.users.sort()]));
}

async function stored(view: ViewDefinition): Promise<Groups> {
  const content = await actualContent(ctx.redis, ctx.prefix, view);
  return (content as { keys: Groups }).keys;
}

async function full(view: ViewDefinition): Promise<Done> {
  const outcome = await engine.refresh(view);
  expect(outcome).toMatchObject({ status: 'done', kind: 'full' });
  return outcome as Done;
}

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  const demo = await loadRegistry(JOBS_DIR);
  recentVotes = { ...demo.view('user_recent_votes')!, coalesceMs: 0 };
  votersToday = { ...demo.view('post_voters_today')!, coalesceMs: 0 };
  engine = createEngine(ctx);
});
afterAll(() => ctx?.cleanup());

const db = () => ctx.db.db;

describe('list view: user_recent_votes', () => {
  it('a full rebuild equals the oracle, key by key, capped at 20 and newest first', async () => {
    // Some users with more than 20 votes, so the cap matters.
    await sql`insert into votes (post_id, user_id, value, created_at)
      select p.id, u.id, 1, now() - (p.id || ' seconds')::interval
      from (select id from users order by id limit 3) u cross join (select id from posts order by id limit 30) p
      on conflict do nothing`.execute(db());
    await full(recentVotes);
    const oracle = await recentVotesOracle();
    expect(Object.values(oracle).some((elements) => elements.length === 20)).toBe(true);
    expect(await stored(recentVotes)).toEqual(oracle);
  });

  it('a partial refresh follows an insert, an update and deletes; a user left without votes loses the key', async () => {
    const { rows } = await sql<{ user_id: string; post_id: string }>`
      select user_id::text, min(post_id)::text as post_id from votes group by user_id order by user_id limit 2`.execute(
      db(),
    );
    const [a, b] = rows as [{ user_id: string; post_id: string }, { user_id: string; post_id: string }];
    const newPost = (await sql<{ id: string }>`select max(id)::text as id from posts`.execute(db())).rows[0]!
      .id;
    await sql`insert into votes (post_id, user_id, value, created_at) values (${newPost}, ${a.user_id}, -1, now())
      on conflict (post_id, user_id) do update set value = -1, created_at = now()`.execute(db());
    await sql`update votes set value = -value, created_at = now() - interval '1 minute'
      where user_id = ${a.user_id} and post_id = ${a.post_id}`.execute(db());
    await sql`delete from votes where user_id = ${b.user_id}`.execute(db());
    const before = await stored(recentVotes);
    const oracle = await recentVotesOracle();
    expect(before[`user_recent_votes:${a.user_id}`]).not.toEqual(oracle[`user_recent_votes:${a.user_id}`]);
    expect(before[`user_recent_votes:${b.user_id}`]).toBeDefined();

    expect(await engine.refresh(recentVotes, { user_id: a.user_id })).toMatchObject({
      status: 'done',
      keys: [`user_recent_votes:${a.user_id}`],
    });
    expect(await engine.refresh(recentVotes, { user_id: b.user_id })).toMatchObject({
      status: 'done',
      keys: [`user_recent_votes:${b.user_id}`],
    });
    expect(await ctx.redis.exists(`user_recent_votes:${b.user_id}`)).toBe(0);
    expect(await stored(recentVotes)).toEqual(oracle);
  });

  it('a full rebuild removes the lists of users whose votes were deleted', async () => {
    const { rows } = await sql<{ user_id: string }>`
      select distinct user_id::text from votes order by user_id desc limit 3`.execute(db());
    const gone = rows.map((row) => row.user_id);
    await sql`delete from votes where user_id = any(${gone}::bigint[])`.execute(db());
    for (const user of gone) expect(await ctx.redis.exists(`user_recent_votes:${user}`)).toBe(1);
    await full(recentVotes);
    for (const user of gone) expect(await ctx.redis.exists(`user_recent_votes:${user}`)).toBe(0);
    expect(await stored(recentVotes)).toEqual(await recentVotesOracle());
  });

  it('a concurrent reader sees each list whole, before or after the rebuild, never in between', async () => {
    await full(recentVotes);
    const before = await recentVotesOracle();
    // Every user's newest vote goes: every list changes.
    await sql`delete from votes v using (
        select distinct on (user_id) user_id, post_id from votes order by user_id, created_at desc, post_id desc) n
      where v.user_id = n.user_id and v.post_id = n.post_id`.execute(db());
    const after = await recentVotesOracle();
    const keys = Object.keys(before);
    expect(keys.filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key])).length).toBe(
      keys.length,
    );
    const reader = createRedisConnection(ctx.redisUrl, { role: 'views', name: 'reader' });
    await connectRedis(reader, ctx.redisUrl, 'REDIS_URL');
    try {
      let done = false;
      let reads = 0;
      const torn: string[] = [];
      const reading = (async () => {
        while (!done) {
          const key = keys[reads % keys.length]!;
          const seen = await reader.lrange(key, 0, -1);
          const text = JSON.stringify(seen);
          if (text !== JSON.stringify(before[key]) && text !== JSON.stringify(after[key] ?? []))
            torn.push(key);
          reads += 1;
        }
      })();
      await full(recentVotes);
      done = true;
      await reading;
      expect(reads).toBeGreaterThan(0);
      expect(torn).toEqual([]);
    } finally {
      await closeRedis(reader);
    }
    expect(await stored(recentVotes)).toEqual(after);
  });
});

describe('set view: post_voters_today', () => {
  it('a full rebuild equals the oracle, key by key', async () => {
    await full(votersToday);
    const oracle = await votersTodayOracle();
    expect(Object.keys(oracle).length).toBeGreaterThan(10);
    expect(await stored(votersToday)).toEqual(oracle);
  });

  it('a partial refresh follows an insert, a vote leaving the window and deletes', async () => {
    const { rows } = await sql<{ post_id: string }>`
      select post_id::text from votes where created_at > now() - interval '24 hours'
      group by post_id having count(*) >= 2 order by post_id limit 2`.execute(db());
    const [a, b] = rows.map((row) => row.post_id) as [string, string];
    const stranger = (
      await sql<{ id: string }>`select id::text from users u where not exists
        (select 1 from votes v where v.user_id = u.id and v.post_id = ${a}) limit 1`.execute(db())
    ).rows[0]!.id;
    await sql`insert into votes (post_id, user_id, value, created_at) values (${a}, ${stranger}, 1, now())`.execute(
      db(),
    );
    await sql`update votes set created_at = now() - interval '2 days'
      where post_id = ${a} and user_id = (select min(user_id) from votes where post_id = ${a} and user_id <> ${stranger})`.execute(
      db(),
    );
    await sql`delete from votes where post_id = ${b}`.execute(db());
    const oracle = await votersTodayOracle();
    expect((await stored(votersToday))[`post_voters_today:${a}`]).not.toEqual(
      oracle[`post_voters_today:${a}`],
    );

    await engine.refresh(votersToday, { post_id: a });
    await engine.refresh(votersToday, { post_id: b });
    expect(await ctx.redis.exists(`post_voters_today:${b}`)).toBe(0);
    expect(await stored(votersToday)).toEqual(oracle);
  });

  it('a full rebuild removes the sets of posts without votes today, and readers see each set whole', async () => {
    const before = await votersTodayOracle();
    const { rows } = await sql<{ post_id: string }>`
      select distinct post_id::text from votes where created_at > now() - interval '24 hours' limit 3`.execute(
      db(),
    );
    await sql`delete from votes where post_id = any(${rows.map((row) => row.post_id)}::bigint[])`.execute(
      db(),
    );
    // Every other set loses one voter.
    await sql`delete from votes v using (
        select post_id, min(user_id) as user_id from votes where created_at > now() - interval '24 hours'
        group by post_id having count(*) > 1) m
      where v.post_id = m.post_id and v.user_id = m.user_id`.execute(db());
    const after = await votersTodayOracle();
    const keys = Object.keys(before);
    let done = false;
    const torn: string[] = [];
    let reads = 0;
    const reader = createRedisConnection(ctx.redisUrl, { role: 'views', name: 'reader' });
    await connectRedis(reader, ctx.redisUrl, 'REDIS_URL');
    try {
      const reading = (async () => {
        while (!done) {
          const key = keys[reads % keys.length]!;
          const seen = JSON.stringify((await reader.smembers(key)).sort());
          if (seen !== JSON.stringify(before[key]) && seen !== JSON.stringify(after[key] ?? []))
            torn.push(key);
          reads += 1;
        }
      })();
      await full(votersToday);
      done = true;
      await reading;
    } finally {
      await closeRedis(reader);
    }
    expect(reads).toBeGreaterThan(0);
    expect(torn).toEqual([]);
    for (const row of rows) expect(await ctx.redis.exists(`post_voters_today:${row.post_id}`)).toBe(0);
    expect(await stored(votersToday)).toEqual(after);
  });
});

// An insert-only table, the case appends are for: a user's activity feed (not in the demo schema).
interface ActivityDatabase {
  activity: { user_id: string; id: string; kind: string; at: Date };
}
let gateSeconds = 0;
const activity = defineView<ActivityDatabase>()({
  name: 'user_activity',
  shape: 'list',
  key: 'user_activity:{user_id}',
  element: '{id}:{kind}',
  orderBy: ['at', 'id'],
  maxLength: 5,
  params: { user_id: 'bigint' },
  batchPartials: true,
  coalesceMs: 0,
  query: (db: Kysely<ActivityDatabase>, params) => {
    let query = db.selectFrom('activity').select(['user_id', 'id', 'kind', 'at']);
    // A full rebuild made slow after its snapshot: the query sleeps before it returns any row.
    if (!params && gateSeconds > 0) {
      query = query.innerJoin(sql`(select pg_sleep(${gateSeconds}))`.as('gate'), (join) => join.onTrue());
    }
    if (params) query = query.where('user_id', '=', params.user_id);
    return query;
  },
});

async function activityOracle(): Promise<Groups> {
  const { rows } = await sql<{ user_id: string; id: string; kind: string }>`
    select user_id::text, id::text, kind from (
      select a.*, row_number() over (partition by user_id order by at desc, id desc) as n from activity a) r
    where n <= 5 order by user_id, n`.execute(ctx.db.db);
  const groups: Groups = {};
  for (const row of rows) push(groups, `user_activity:${row.user_id}`, `${row.id}:${row.kind}`);
  return groups;
}

/** Inserts activity rows and returns them as the view's query returns them. */
async function insertActivity(entries: { user: number; id: number; kind: string; ago?: number }[]) {
  const { rows } = await sql<Record<string, unknown>>`
    insert into activity (user_id, id, kind, at)
    select * from unnest(${entries.map((e) => e.user)}::bigint[], ${entries.map((e) => e.id)}::bigint[],
      ${entries.map((e) => e.kind)}::text[],
      ${entries.map((e) => new Date(Date.now() - (e.ago ?? 0) * 1000))}::timestamptz[])
    returning user_id, id, kind, at`.execute(db());
  return rows;
}

describe('list appends', () => {
  let nextId = 1;
  const batch = (users: number[], kind: string, ago = 0) =>
    users.map((user) => ({ user, id: nextId++, kind, ago }));

  beforeAll(async () => {
    await sql`create table activity (user_id bigint not null, id bigint primary key, kind text not null,
      at timestamptz not null)`.execute(db());
    const users = Array.from({ length: 40 }, (_, i) => i + 1);
    for (let round = 0; round < 4; round++)
      await insertActivity(batch(users, `seed${round}`, 600 - round * 10));
    await full(activity);
    expect(await stored(activity)).toEqual(await activityOracle());
  });

  it('appends push, trim and keep the order, and a later full refresh agrees with them', async () => {
    for (let round = 0; round < 3; round++) {
      const rows = await insertActivity(batch([1, 2, 3, 41], `new${round}`));
      const outcome = await engine.append(activity, rows);
      // User 41 has no list yet: unknown, not empty, so its group is refreshed instead (as the
      // write-behind worker does with what an append refuses).
      expect(outcome).toEqual(
        round === 0
          ? { appended: 3, refresh: [{ user_id: '41' }], problems: [] }
          : { appended: 4, refresh: [], problems: [] },
      );
      await engine.refreshBatch(activity, outcome.refresh);
    }
    // Appending the same rows again (a redelivered batch) changes nothing.
    const again = await sql<Record<string, unknown>>`select user_id, id, kind, at from activity
      where kind = 'new2'`.execute(db());
    expect((await engine.append(activity, again.rows)).appended).toBe(0);
    const appended = await stored(activity);
    expect(appended['user_activity:1']).toHaveLength(5);
    expect(appended).toEqual(await activityOracle());
    await full(activity);
    expect(await stored(activity)).toEqual(appended);
  });

  it('an element older than the head is not appended: its group is named for a refresh instead', async () => {
    const rows = await insertActivity(batch([4], 'late', 3600));
    const outcome = await engine.append(activity, rows);
    expect(outcome.appended).toBe(0);
    expect(outcome.refresh).toEqual([{ user_id: '4' }]);
    // It belongs fifth: the refresh puts it there.
    await engine.refreshBatch(activity, outcome.refresh);
    const list = (await stored(activity))['user_activity:4']!;
    expect(list.at(-1)).toBe(`${rows[0]!.id}:late`);
    expect(await stored(activity)).toEqual(await activityOracle());
  });

  it('a full rebuild running while appends land loses none of them, and still fixes what drifted', async () => {
    // Drift the rebuild must fix: rows written behind viewkeeper's back for users 5..14.
    await insertActivity(batch([5, 6, 7, 8, 9, 10, 11, 12, 13, 14], 'direct', 1));
    gateSeconds = 2;
    const rebuild = full(activity);
    try {
      await expect
        .poll(
          async () =>
            (
              await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
                where query like '%pg_sleep%' and state = 'active' and pid <> pg_backend_pid()`.execute(db())
            ).rows[0]!.n,
          { timeout: 10_000, interval: 50 },
        )
        .toBe(1);
      // Now, after the rebuild's snapshot: appends to drifted users, untouched ones and a new user.
      const rows = await insertActivity(batch([5, 6, 7, 20, 21, 77], 'during'));
      const outcome = await engine.append(activity, rows);
      expect(outcome).toMatchObject({ appended: 5, refresh: [{ user_id: '77' }] });
      await engine.refreshBatch(activity, outcome.refresh);
    } finally {
      gateSeconds = 0;
    }
    await rebuild;
    expect(await stored(activity)).toEqual(await activityOracle());
  });

  it('a sink refresh declaration with { append } pushes its ops onto the lists after commit', async () => {
    const sink = defineSink<unknown>()({
      name: 'activity',
      fields: { user_id: 'bigint', entry: 'bigint', kind: 'text' },
      apply: async (trx, ops) => {
        await sql`insert into activity (user_id, id, kind, at)
          select * from unnest(${ops.map((op) => op.user_id)}::bigint[], ${ops.map((op) => op.entry)}::bigint[],
            ${ops.map((op) => op.kind)}::text[], ${ops.map((op) => op.at)}::timestamptz[])`.execute(trx);
      },
      refresh: {
        user_activity: { append: (op) => ({ user_id: op.user_id, id: op.entry, kind: op.kind, at: op.at }) },
      },
    });
    const queueRedis: RedisConnection = createRedisConnection(ctx.redisUrl, {
      role: 'queue',
      name: 'test-queue',
    });
    await connectRedis(queueRedis, ctx.redisUrl, 'REDIS_URL');
    const queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix) as Queue<WriteBehindJobData>;
    const events = createQueueEvents(QUEUES.writeBehind, duplicateConnection(queueRedis), ctx.prefix);
    const worker = createWriteBehindWorker({
      connection: queueRedis,
      prefix: ctx.prefix,
      registry: createRegistry([activity, sink]),
      db: ctx.db.db,
      engine,
      logger: silentLogger(),
    });
    const meta = viewKeys(ctx.prefix, 'user_activity').meta;
    try {
      await events.waitUntilReady();
      const lastRun = async () => ctx.redis.hmget(meta, 'version', 'last_run', 'full_refreshed_at');
      const [, , fullBefore] = await lastRun();
      const expected: string[] = [];
      for (let round = 0; round < 3; round++) {
        const ops = [30, 31, 32, 33].map((user) => ({
          id: `op-${nextId}`,
          user_id: user,
          entry: nextId++,
          kind: `op${round}`,
        }));
        expected.unshift(`${ops[3]!.entry}:op${round}`);
        const job = await queue.add('activity', { ops } as WriteBehindJobData);
        expect(await job.waitUntilFinished(events, 20_000)).toMatchObject({ applied: 4 });
      }
      // The lists changed without a run: appended, not refreshed (no full rebuild either).
      const [, run, fullAfter] = await lastRun();
      expect(run).toBe('partial');
      expect(fullAfter).toBe(fullBefore);
      const appended = await stored(activity);
      // The three ops on top of the two newest rows the list held, newest first.
      expect(appended['user_activity:33']!.slice(0, 3)).toEqual(expected);
      expect(appended).toEqual(await activityOracle());
      await full(activity);
      expect(await stored(activity)).toEqual(appended);
    } finally {
      await worker.close(10_000);
      await events.close();
      await queue.close();
      await closeRedis(queueRedis);
    }
  });
});

describe('bad input', () => {
  it('an element over 64 KB fails its group with a one-line reason naming the view and key; the rest completes', async () => {
    await insertActivity([{ user: 555, id: 900_000, kind: 'x'.repeat(70 * 1024) }]);
    await insertActivity(batch2([556]));
    const outcome = await full(activity);
    expect(outcome.failed).toEqual([
      expect.stringMatching(
        /^view user_activity: element of user_activity:555 is \d+ bytes, over the 65536-byte limit$/,
      ),
    ]);
    const oracle = await activityOracle();
    delete oracle['user_activity:555'];
    expect(await stored(activity)).toEqual(oracle);
    expect(await ctx.redis.hget(viewKeys(ctx.prefix, 'user_activity').meta, 'last_error')).toContain(
      'user_activity:555',
    );
    await sql`delete from activity where user_id = 555`.execute(db());
  });
});

function batch2(users: number[]) {
  return users.map((user) => ({ user, id: 800_000 + user, kind: 'fine' }));
}

describe('client reads', () => {
  it('list, set and isMember read what the daemon wrote, from the L1 until the group changes', async () => {
    await full(recentVotes);
    await full(votersToday);
    const client = createClient({
      redisUrl: ctx.redisUrl,
      prefix: ctx.prefix,
      views: { user_recent_votes: recentVotes, post_voters_today: votersToday },
      l1: { ttlMs: 60_000 },
      onMiss: 'null',
    });
    try {
      const votes = await recentVotesOracle();
      const voters = await votersTodayOracle();
      const [listKey, elements] = Object.entries(votes).find(([, list]) => list.length >= 3)!;
      const userId = listKey.split(':')[1]!;
      const [setKey, members] = Object.entries(voters)[0]!;
      const postId = setKey.split(':')[1]!;
      expect(await client.list('user_recent_votes', { user_id: userId })).toEqual(elements);
      expect(await client.list('user_recent_votes', { user_id: userId }, { start: 1, stop: 2 })).toEqual(
        elements.slice(1, 3),
      );
      expect(await client.set('post_voters_today', { post_id: postId })).toEqual(members);
      expect(await client.isMember('post_voters_today', { post_id: postId }, members[0]!)).toBe(true);
      expect(await client.isMember('post_voters_today', { post_id: postId }, 'nobody')).toBe(false);
      expect(await client.list('user_recent_votes', { user_id: '999999' })).toEqual([]);

      // While subscribed, reads come from the L1: a change behind the daemon's back is not seen...
      await expect.poll(() => client.health().subscribed).toBe(true);
      await client.list('user_recent_votes', { user_id: userId });
      await client.isMember('post_voters_today', { post_id: postId }, members[0]!);
      await ctx.redis.rpush(listKey, 'behind-the-back');
      await ctx.redis.srem(setKey, members[0]!);
      expect(await client.list('user_recent_votes', { user_id: userId })).toEqual(elements);
      expect(await client.isMember('post_voters_today', { post_id: postId }, members[0]!)).toBe(true);
      expect(client.stats().l1Hits).toBeGreaterThanOrEqual(2);
      // ...until a refresh of the group publishes its event.
      await sql`delete from votes where user_id = ${userId} and post_id = (select min(post_id) from votes where user_id = ${userId})`.execute(
        db(),
      );
      await engine.refresh(recentVotes, { user_id: userId });
      await engine.refresh(votersToday, { post_id: postId });
      const fresh = (await recentVotesOracle())[listKey];
      await expect.poll(() => client.list('user_recent_votes', { user_id: userId })).toEqual(fresh);
      const freshVoters = (await votersTodayOracle())[setKey] ?? [];
      await expect.poll(() => client.set('post_voters_today', { post_id: postId })).toEqual(freshVoters);
    } finally {
      await client.close();
    }
  });

  it('reads are typed by shape: a set view cannot be read as a list, nor a list as a set', async () => {
    const client = createClient({
      redisUrl: ctx.redisUrl,
      prefix: ctx.prefix,
      views: {
        recent: { shape: 'list', key: 'recent:{user_id}' },
        voters: { shape: 'set', key: 'voters:{post_id}' },
      },
    });
    // Never called: tsc checks these lines (and fails on an unused @ts-expect-error).
    const misuse = () => [
      // @ts-expect-error a set view is not a list
      client.list('voters', { post_id: 1 }),
      // @ts-expect-error a list view is not a set
      client.set('recent', { user_id: 1 }),
      // @ts-expect-error a list view has no members
      client.isMember('recent', { user_id: 1 }, 'x'),
    ];
    expect(misuse).toBeTypeOf('function');
    await expect(client.list('voters' as never, { post_id: 1 })).rejects.toThrow(
      'view voters is a set view; read it with client.set()',
    );
    await client.close();
  });
});
