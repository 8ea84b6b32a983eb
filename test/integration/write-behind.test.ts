import type { Job, Queue } from 'bullmq';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { QUEUES, type WriteBehindJobData } from '../../src/contract.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { createQueue } from '../../src/queues/factories.ts';
import {
  createWriteBehindWorker,
  type WriteBehindWorkerOptions,
} from '../../src/queues/write-behind-worker.ts';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  type RedisConnection,
} from '../../src/redis/connections.ts';
import { defineSink } from '../../src/sinks/define-sink.ts';
import { refreshBacklogKey } from '../../src/sinks/refresh-backlog.ts';
import { createRegistry, loadRegistry, type Registry } from '../../src/views/registry.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { actualContent, createEngine, expectedContent, JOBS_DIR, seedSmall } from '../helpers/views.ts';
import { until } from '../helpers/wait.ts';

// The write-behind worker in-process against real Postgres and Redis: batching into one transaction,
// the ledger, "later wins", poison ops, bad input (guarantee 6), refreshes after commit, shutdown flush.

let ctx: TestContext;
let queueRedis: RedisConnection;
let queue: Queue<WriteBehindJobData>;
let registry: Registry;
let stopWorker: (() => Promise<void>) | undefined;

// A test sink using the increment helper: adds `by` to posts.upvotes (no views refreshed).
const bumps = defineSink<unknown>()({
  name: 'bumps',
  fields: { post_id: 'bigint', by: 'integer' },
  apply: async (_trx, ops, { increment }) => {
    await increment({
      table: 'posts',
      key: 'id',
      keyType: 'bigint',
      column: 'upvotes',
      rows: ops.map((op) => ({ key: op.post_id, by: op.by })),
    });
  },
});

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  queueRedis = createRedisConnection(ctx.redisUrl, { role: 'queue', name: 'test-queue' });
  await connectRedis(queueRedis, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix) as Queue<WriteBehindJobData>;
  const demo = await loadRegistry(JOBS_DIR);
  // Coalescing windows off: tests refresh the same keys back to back.
  const views = [...demo.views.values()].map((view) => ({ ...view, coalesceMs: 0 }));
  registry = createRegistry([...views, ...demo.others.values(), bumps]);
});

afterEach(async () => {
  await stopWorker?.();
  stopWorker = undefined;
});

afterAll(async () => {
  await queue?.close();
  if (queueRedis) await closeRedis(queueRedis);
  await ctx?.cleanup();
});

function startWorker(overrides: Partial<WriteBehindWorkerOptions> = {}) {
  const worker = createWriteBehindWorker({
    connection: queueRedis,
    prefix: ctx.prefix,
    registry,
    db: ctx.db.db,
    engine: createEngine(ctx),
    logger: silentLogger(),
    ...overrides,
  });
  stopWorker = () => worker.close(10_000);
  return worker;
}

async function settled(job: Job, timeoutMs = 20_000): Promise<{ state: string; job: Job }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      return { state, job: (await queue.getJob(job.id!))! };
    }
    if (Date.now() > deadline) throw new Error(`job ${job.id} still ${state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

let opCounter = 0;
const opId = (tag = 'op') => `${tag}-${Date.now().toString(36)}-${++opCounter}`;

async function somePosts(count: number): Promise<{ id: string; user_id: string }[]> {
  const { rows } = await sql<{ id: string; user_id: string }>`
    select id, user_id from posts order by id limit ${count}`.execute(ctx.db.db);
  return rows;
}

async function vote(postId: string, userId: string): Promise<number | undefined> {
  const { rows } = await sql<{ value: number }>`
    select value from votes where post_id = ${postId} and user_id = ${userId}`.execute(ctx.db.db);
  return rows[0]?.value;
}

async function upvotesDrift(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from posts p
    where p.upvotes <> (select coalesce(sum(value), 0) from votes v where v.post_id = p.id)`.execute(
    ctx.db.db,
  );
  return rows[0]!.n;
}

async function ledgerHas(ids: string[]): Promise<string[]> {
  const { rows } = await sql<{ op_id: string }>`
    select op_id from viewkeeper.write_ledger where op_id = any(${ids}::text[])`.execute(ctx.db.db);
  return rows.map((row) => row.op_id).sort();
}

describe('write-behind worker', () => {
  beforeEach(async () => {
    await queue.drain(true);
    // The bumps sink moves upvotes on purpose; every test starts from upvotes = vote sums.
    await sql`update posts p set upvotes = (select coalesce(sum(value), 0) from votes v where v.post_id = p.id)`.execute(
      ctx.db.db,
    );
  });

  it('commits the ops of many jobs in one transaction, records every op in the ledger, completes every job', async () => {
    const posts = await somePosts(40);
    const jobs: Job[] = [];
    const ids: string[] = [];
    for (const [index, post] of posts.entries()) {
      const ops = [1, 2, 3].map((k) => ({
        id: opId('batch'),
        post_id: post.id,
        user_id: String(k + index),
        value: 1,
      }));
      ids.push(...ops.map((op) => op.id));
      jobs.push(await queue.add('votes', { ops }));
    }
    // The jobs are all waiting before the worker starts, so one batch (window 200 ms) takes them all.
    startWorker({ batchWindowMs: 200 });
    const results = await Promise.all(jobs.map((job) => settled(job)));
    expect(results.map((result) => result.state)).toEqual(jobs.map(() => 'completed'));
    // The batch owes over 100 refreshes (40 posts): its receipt names the backlog mark, not the entries.
    expect(results[0]!.job.returnvalue).toEqual({
      applied: 3,
      duplicates: 0,
      rejected: [],
      refresh: { seq: expect.any(Number) },
    });
    expect(await ledgerHas(ids)).toEqual([...ids].sort());
    // Rows written by one transaction share its now().
    const { rows } = await sql<{ n: number }>`
      select count(distinct applied_at)::int as n from viewkeeper.write_ledger where op_id = any(${ids}::text[])`.execute(
      ctx.db.db,
    );
    expect(rows[0]!.n).toBe(1);
    expect(await upvotesDrift()).toBe(0);
  });

  it('later op on one key wins inside a batch (same job and across jobs), and posts.upvotes follows sign changes', async () => {
    const [post] = await somePosts(1);
    const user = '7';
    const first = await queue.add('votes', {
      ops: [
        { id: opId(), post_id: post!.id, user_id: user, value: 1 },
        { id: opId(), post_id: post!.id, user_id: user, value: -1 },
      ],
    });
    const second = await queue.add('votes', {
      ops: [
        { id: opId(), post_id: post!.id, user_id: '8', value: -1 },
        { id: opId(), post_id: post!.id, user_id: '8', value: 1 },
        { id: opId(), post_id: post!.id, user_id: user, value: 1 },
        { id: opId(), post_id: post!.id, user_id: user, value: -1 },
      ],
    });
    startWorker({ batchWindowMs: 200 });
    expect((await settled(first)).state).toBe('completed');
    expect((await settled(second)).state).toBe('completed');
    expect(await vote(post!.id, user)).toBe(-1);
    expect(await vote(post!.id, '8')).toBe(1);
    expect(await upvotesDrift()).toBe(0);
  });

  it('an older op delivered after a newer one committed (redelivery after a crash) does not overwrite it', async () => {
    const [post] = await somePosts(1);
    startWorker();
    const newer = await queue.add('votes', {
      ops: [{ id: opId(), post_id: post!.id, user_id: '9', value: -1 }],
    });
    expect((await settled(newer)).state).toBe('completed');
    // Same pair, enqueued "earlier" (a job that sat in a dead daemon's hands until its lock expired).
    const older = await queue.add(
      'votes',
      { ops: [{ id: opId(), post_id: post!.id, user_id: '9', value: 1 }] },
      { timestamp: Date.now() - 60_000 },
    );
    expect((await settled(older)).state).toBe('completed');
    expect(await vote(post!.id, '9')).toBe(-1);
    expect(await upvotesDrift()).toBe(0);
  });

  it('an op delivered again (same id) is skipped: applied once, counted as duplicate', async () => {
    const [post] = await somePosts(1);
    startWorker();
    const id = opId('again');
    const ops = [{ id, post_id: post!.id, by: 5 }];
    const before = await upvotesOf(post!.id);
    const a = await queue.add('bumps', { ops });
    expect((await settled(a)).job.returnvalue).toEqual({ applied: 1, duplicates: 0, rejected: [] });
    const b = await queue.add('bumps', { ops });
    expect((await settled(b)).job.returnvalue).toEqual({ applied: 0, duplicates: 1, rejected: [] });
    expect(await upvotesOf(post!.id)).toBe(before + 5);
  });

  it('increment coalesces many ops per key into one update and counts each once', async () => {
    const [p1, p2] = await somePosts(2);
    const before = [await upvotesOf(p1!.id), await upvotesOf(p2!.id)];
    const job = await queue.add('bumps', {
      ops: [
        { id: opId(), post_id: p1!.id, by: 2 },
        { id: opId(), post_id: p2!.id, by: -1 },
        { id: opId(), post_id: p1!.id, by: 3 },
      ],
    });
    startWorker();
    expect((await settled(job)).state).toBe('completed');
    expect([await upvotesOf(p1!.id), await upvotesOf(p2!.id)]).toEqual([before[0]! + 5, before[1]! - 1]);
  });

  it('a poison op (post that does not exist) is rejected with its reason; its job completes; every other op commits', async () => {
    const posts = await somePosts(3);
    const good1 = await queue.add('votes', {
      ops: [{ id: opId('ok'), post_id: posts[0]!.id, user_id: '11', value: 1 }],
    });
    const badId = opId('poison');
    const mixedOk = [opId('ok'), opId('ok')];
    const mixed = await queue.add('votes', {
      ops: [
        { id: mixedOk[0]!, post_id: posts[1]!.id, user_id: '12', value: 1 },
        { id: badId, post_id: '999999999', user_id: '12', value: 1 },
        { id: mixedOk[1]!, post_id: posts[2]!.id, user_id: '12', value: -1 },
      ],
    });
    const good2 = await queue.add('votes', {
      ops: [{ id: opId('ok'), post_id: posts[2]!.id, user_id: '13', value: -1 }],
    });
    startWorker({ batchWindowMs: 200 });
    expect((await settled(good1)).state).toBe('completed');
    expect((await settled(good2)).state).toBe('completed');
    const done = await settled(mixed);
    expect(done.state).toBe('completed');
    expect(done.job.attemptsMade).toBe(1);
    const { rejected, refresh, ...counts } = done.job.returnvalue;
    expect(counts).toEqual({ applied: 2, duplicates: 0 });
    // The receipt of the refreshes the batch owes (write until 'refreshed' waits on it).
    expect(refresh.seq).toBeGreaterThan(0);
    expect(refresh.owed).toContain('["trending_posts",null]');
    expect(rejected).toHaveLength(1);
    expect(rejected[0].id).toBe(badId);
    expect(rejected[0].reason).toMatch(
      new RegExp(
        `^op "${badId}": insert or update on table "votes" violates foreign key constraint .*\\(SQLSTATE 23503\\)$`,
      ),
    );
    expect(await ledgerHas([...mixedOk, badId])).toEqual([...mixedOk].sort());
    expect(await vote(posts[1]!.id, '12')).toBe(1);
    expect(await vote(posts[2]!.id, '12')).toBe(-1);
    expect(await upvotesDrift()).toBe(0);
  });

  const big = 'x'.repeat(1100 * 1024);
  it.each([
    [
      'unknown sink',
      'nope',
      { ops: [{ id: 'a', x: 1 }] },
      /^unknown sink "nope": known sinks are bumps, users, votes$/,
    ],
    ['no ops', 'votes', { ops: [] }, /^"ops" must be a non-empty array of ops, got \[\]$/],
    [
      'data not an object',
      'votes',
      [1, 2],
      /^job data must be an object like \{"ops": \[\.\.\.\]\}, got \[1,2\]$/,
    ],
    ['extra top-level field', 'votes', { ops: [], op: {} }, /^unknown field "op" in job data/],
    [
      'missing field',
      'votes',
      { ops: [{ id: 'a', post_id: 1, value: 1 }] },
      /^op 0 of sink "votes": missing field "user_id"$/,
    ],
    [
      'extra field',
      'votes',
      { ops: [{ id: 'a', post_id: 1, user_id: 1, value: 1, weight: 2 }] },
      /^op 0 of sink "votes": unknown field "weight": the sink takes post_id, user_id, value$/,
    ],
    [
      'wrongly typed field',
      'votes',
      { ops: [{ id: 'a', post_id: 'seven', user_id: 1, value: 1 }] },
      /^op 0 of sink "votes": field "post_id" is "seven": expected a whole number/,
    ],
    [
      'vote value 5',
      'votes',
      { ops: [{ id: 'a', post_id: 1, user_id: 1, value: 5 }] },
      /^op 0 of sink "votes": field "value" is 5: expected one of 1, -1$/,
    ],
    [
      'NUL character in an op id',
      'votes',
      { ops: [{ id: 'a\u0000b', post_id: 1, user_id: 1, value: 1 }] },
      /^op 0 of sink "votes": "id" "a\\u0000b" contains a NUL character \(\\u0000\), which Postgres text cannot store$/,
    ],
    [
      'NUL character in a text field',
      'users',
      { ops: [{ id: 'a', user_id: 1, name: 'Ann\u0000', email: 'a@b', org_id: null }] },
      /^op 0 of sink "users": field "name" "Ann\\u0000" contains a NUL character/,
    ],
    [
      'unpaired surrogate in a text field',
      'users',
      { ops: [{ id: 'a', user_id: 1, name: 'x\ud800', email: 'a@b', org_id: null }] },
      /^op 0 of sink "users": field "name" "x\\ud800" contains an unpaired UTF-16 surrogate/,
    ],
    [
      'missing op id',
      'votes',
      { ops: [{ post_id: 1, user_id: 1, value: 1 }] },
      /^op 0 of sink "votes": "id" must be a non-empty string/,
    ],
    [
      'duplicate op ids in one job',
      'votes',
      {
        ops: [
          { id: 'same', post_id: 1, user_id: 1, value: 1 },
          { id: 'same', post_id: 2, user_id: 1, value: 1 },
        ],
      },
      /^op 1 of sink "votes": id "same" appears twice in the job; every op needs its own id$/,
    ],
    [
      'job over 1 MB',
      'users',
      { ops: [{ id: 'a', user_id: 1, name: big, email: 'a@b', org_id: null }] },
      /^job data is \d+ bytes, over the 1048576-byte limit for write-behind jobs/,
    ],
  ])(
    '%s: the job fails once with a one-line reason, nothing else is lost',
    async (_name, sink, data, reason) => {
      const [post] = await somePosts(1);
      const goodId = opId('good');
      const good = await queue.add('votes', {
        ops: [{ id: goodId, post_id: post!.id, user_id: '21', value: 1 }],
      });
      const bad = await queue.add(sink, data as WriteBehindJobData);
      startWorker({ batchWindowMs: 100 });
      const failed = await settled(bad);
      expect(failed.state).toBe('failed');
      expect(failed.job.failedReason).toMatch(reason);
      expect(failed.job.failedReason).not.toContain('\n');
      expect(failed.job.attemptsMade).toBe(1);
      expect((await settled(good)).state).toBe('completed');
      expect(await ledgerHas([goodId])).toEqual([goodId]);
    },
  );

  it('after commit, the views the ops touched are refreshed: post_votes, trending, user_stats of the author', async () => {
    const posts = await somePosts(5);
    const jobs = [];
    for (const [index, post] of posts.entries()) {
      jobs.push(
        await queue.add('votes', {
          ops: [{ id: opId(), post_id: post.id, user_id: String(50 + index), value: 1 }],
        }),
      );
    }
    startWorker();
    for (const job of jobs) expect((await settled(job)).state).toBe('completed');
    await until(
      async () => (await queueRedis.zcard(refreshBacklogKey(ctx.prefix))) === 0,
      'the refresh backlog to drain',
    );
    for (const post of posts) {
      const { rows } = await sql<{
        sum: string;
      }>`select sum(value)::text as sum from votes where post_id = ${post.id}`.execute(ctx.db.db);
      expect(await ctx.redis.get(`post_votes:${post.id}`)).toBe(rows[0]!.sum);
      const stats = await ctx.redis.hgetall(`user_stats:${post.user_id}`);
      const { rows: expected } = await sql<{ total: string }>`
        select coalesce(sum(upvotes), 0)::text as total from posts where user_id = ${post.user_id}`.execute(
        ctx.db.db,
      );
      expect(stats.total_upvotes).toBe(expected[0]!.total);
    }
    const trending = registry.view('trending')!;
    const expected = await expectedContent(ctx.db, trending);
    const actual = await actualContent(ctx.redis, ctx.prefix, trending);
    if (actual.shape === 'zset' && expected.shape === 'zset') {
      for (const post of posts) expect(actual.members[post.id]).toBe(expected.members[post.id]);
    }
  });

  it('users sink upserts by id (latest wins) and refreshes the user view', async () => {
    startWorker();
    const job = await queue.add('users', {
      ops: [
        { id: opId(), user_id: 5000, name: 'First', email: 'a@example.com', org_id: null },
        { id: opId(), user_id: 5000, name: 'Second', email: 'b@example.com', org_id: 3 },
      ],
    });
    expect((await settled(job)).state).toBe('completed');
    const { rows } = await sql<{ name: string; email: string; org_id: string }>`
      select name, email, org_id from users where id = 5000`.execute(ctx.db.db);
    expect(rows).toEqual([{ name: 'Second', email: 'b@example.com', org_id: '3' }]);
    await until(
      async () => (await ctx.redis.hget('user:5000', 'name')) === 'Second',
      'user:5000 to be refreshed',
    );
    expect(await ctx.redis.hgetall('user:5000')).toEqual({
      name: 'Second',
      email: 'b@example.com',
      org_id: '3',
    });
  });

  it('close() commits the open batch and completes its jobs before returning', async () => {
    const posts = await somePosts(3);
    // A window far longer than the test: only the shutdown flush can commit these.
    const worker = startWorker({ batchWindowMs: 600_000 });
    const ids: string[] = [];
    const jobs = [];
    for (const post of posts) {
      const id = opId('flush');
      ids.push(id);
      jobs.push(await queue.add('votes', { ops: [{ id, post_id: post.id, user_id: '31', value: 1 }] }));
    }
    await until(async () => (await queue.getActiveCount()) === jobs.length, 'every job to be active');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await ledgerHas(ids)).toEqual([]);
    await worker.close(10_000);
    expect(await ledgerHas(ids)).toEqual([...ids].sort());
    for (const job of jobs) expect(await job.getState()).toBe('completed');
  });
});

async function upvotesOf(postId: string): Promise<number> {
  const { rows } = await sql<{ upvotes: number }>`select upvotes from posts where id = ${postId}`.execute(
    ctx.db.db,
  );
  return rows[0]!.upvotes;
}
