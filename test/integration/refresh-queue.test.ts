import { fileURLToPath } from 'node:url';
import type { Job, Queue, QueueEvents } from 'bullmq';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../demo/seed.ts';
import { enqueueRefresh } from '../../src/client/refresh.ts';
import { QUEUES, type RefreshJobResult } from '../../src/contract.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { createQueue, createQueueEvents } from '../../src/queues/factories.ts';
import { createRefreshWorker, type RefreshWorker } from '../../src/queues/refresh-worker.ts';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  type RedisConnection,
} from '../../src/redis/connections.ts';
import { runKeys, viewKeys } from '../../src/redis/keys.ts';
import { defineView, type StreamableQuery, type ViewDefinition } from '../../src/views/define-view.ts';
import { refreshIdentity } from '../../src/views/params.ts';
import { createRefreshEngine, type RefreshEngine } from '../../src/views/refresh-engine.ts';
import { createRegistry, loadRegistry, type Registry } from '../../src/views/registry.ts';
import { RUN_SPACING_FLOOR_MS } from '../../src/views/run-spacing.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { actualContent, expectedContent, scanKeys } from '../helpers/views.ts';

// The refresh queue end to end with an in-process worker: bad input (guarantee 6), coalescing and
// never-overlapping runs (guarantee 3), retries of transient failures, graceful shutdown.

const JOBS_DIR = fileURLToPath(new URL('../../demo/jobs/', import.meta.url));
type Row = Record<string, unknown>;

/** Instruments a view's query: counts runs, concurrent runs, start/end times; can hold runs at a gate. */
interface Probe {
  starts: number[];
  ends: number[];
  active: number;
  maxActive: number;
  /** Resolves when the next run has started (reset by `close()`). */
  started: Promise<void>;
  /** Runs wait here until `open()`. */
  close(): void;
  open(): void;
  wait(): Promise<void>;
  onStart(): void;
}

function createProbe(): Probe {
  let release: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();
  let markStarted: () => void = () => {};
  const probe: Probe = {
    starts: [],
    ends: [],
    active: 0,
    maxActive: 0,
    started: Promise.resolve(),
    close() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
      probe.started = new Promise((resolve) => {
        markStarted = resolve;
      });
    },
    open: () => release(),
    wait: () => gate,
    onStart: () => markStarted(),
  };
  return probe;
}

function probed(inner: StreamableQuery<Row>, probe: Probe): StreamableQuery<Row> {
  return {
    async *stream(options) {
      probe.active += 1;
      probe.maxActive = Math.max(probe.maxActive, probe.active);
      probe.starts.push(performance.now());
      probe.onStart();
      try {
        await probe.wait();
        yield* inner.stream(options);
      } finally {
        probe.active -= 1;
        probe.ends.push(performance.now());
      }
    },
  };
}

/** A query whose stream throws `error` the first `times` runs, then behaves like `inner`. */
function failing(inner: () => StreamableQuery<Row>, errors: Error[]): StreamableQuery<Row> {
  return {
    async *stream(options) {
      const error = errors.shift();
      if (error) throw error;
      yield* inner().stream(options);
    },
  };
}

function codedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

let ctx: TestContext;
let connection: RedisConnection;
let queue: Queue;
let events: QueueEvents;
let registry: Registry;
let engine: RefreshEngine;
let worker: RefreshWorker;
const gated = createProbe();
const flakyErrors: Error[] = [];
const brokenErrors: Error[] = [];

function statsLike(
  name: string,
  query: (db: Parameters<ViewDefinition['query']>[0], params: Row | undefined) => StreamableQuery<Row>,
): ViewDefinition {
  return defineView()({
    name,
    shape: 'hash',
    key: `${name}:{user_id}`,
    params: { user_id: 'bigint' },
    coalesceMs: 0,
    query: (db, params) => query(db, params),
  });
}

async function buildRegistry(): Promise<Registry> {
  const demo = await loadRegistry(JOBS_DIR);
  const userStats = demo.view('user_stats')!;
  const userByName = defineView()({
    name: 'user_by_name',
    shape: 'hash',
    key: 'user_by_name:{name}',
    params: { name: 'text' },
    query: (db, params) => {
      // biome-ignore lint/suspicious/noExplicitAny: untyped database in a test view
      let query = (db as any).selectFrom('users').select(['name', 'email']);
      if (params) query = query.where('name', '=', params.name);
      return query;
    },
  });
  return createRegistry([
    ...demo.views.values(),
    userByName,
    statsLike('gated_stats', (db, params) => probed(userStats.query(db, params), gated)),
    statsLike('flaky_stats', (db, params) => failing(() => userStats.query(db, params), flakyErrors)),
    statsLike('broken_stats', (db, params) => failing(() => userStats.query(db, params), brokenErrors)),
    // A view with an explicit rate limit: its window is fixed, whatever the runs cost.
    { ...userStats, name: 'limited_stats', coalesceMs: 1500 },
  ]);
}

beforeAll(async () => {
  ctx = await createTestContext();
  await seedDemo(ctx.db, { users: 100, postsPerUser: 2, votesPerPost: 3, seed: 1 });
  registry = await buildRegistry();
  engine = createRefreshEngine({
    db: ctx.db.db,
    redis: ctx.redis,
    prefix: ctx.prefix,
    logger: silentLogger(),
  });
  connection = createRedisConnection(ctx.redisUrl, { role: 'queue', name: 't' });
  await connectRedis(connection, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.refresh, connection, ctx.prefix);
  events = createQueueEvents(QUEUES.refresh, connection, ctx.prefix);
  await events.waitUntilReady();
  worker = createRefreshWorker({
    connection,
    prefix: ctx.prefix,
    registry,
    engine,
    concurrency: 4,
    logger: silentLogger(),
  });
});

afterAll(async () => {
  gated.open();
  await worker?.close(5000);
  await queue?.close();
  await events?.close();
  if (connection) await closeRedis(connection);
  await ctx?.cleanup();
});

async function version(view: string): Promise<number> {
  return Number((await ctx.redis.hget(viewKeys(ctx.prefix, view).meta, 'version')) ?? 0);
}

/** Waits until the refresh queue has nothing waiting, delayed, prioritized or active. */
async function drained(timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized', 'active');
    if (Object.values(counts).every((count) => count === 0)) return;
    if (Date.now() > deadline) throw new Error(`queue not drained: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function stored(job: Job): Promise<Job> {
  const found = await queue.getJob(job.id!);
  if (!found) throw new Error(`job ${job.id} is gone`);
  return found;
}

let nextUserId = 1;
/** A valid refresh (a key not refreshed before, so no coalescing window delays it) still completes. */
async function expectWorkerStillWorks(): Promise<void> {
  const id = nextUserId++;
  const job = await enqueueRefresh(queue, 'user', { id });
  const result = (await job.waitUntilFinished(events, 10_000)) as RefreshJobResult;
  expect(result).toMatchObject({ view: 'user', kind: 'partial', rows: 1, keys: 1 });
  expect(await ctx.redis.hget(`user:${id}`, 'email')).toBe(`user${id}@example.com`);
}

/** Adds a job the raw way (as a non-Node producer would) and checks it is rejected once, for good. */
async function expectRejected(name: string, data: unknown, mentions: string[]): Promise<string> {
  const job = await queue.add(name, data);
  await expect(job.waitUntilFinished(events, 10_000)).rejects.toThrow();
  const failed = await stored(job);
  expect(await failed.getState()).toBe('failed');
  expect(failed.attemptsMade).toBe(1);
  expect(failed.attemptsStarted).toBe(1);
  const reason = failed.failedReason;
  expect(reason.split('\n')).toEqual([reason]);
  expect(reason.length).toBeLessThan(400);
  for (const text of mentions) expect(reason).toContain(text);
  await expectWorkerStillWorks();
  return reason;
}

describe('refresh queue: bad input fails once with a one-line reason and the worker keeps working', () => {
  it('an unknown view name is rejected naming the view and the known views', async () => {
    const reason = await expectRejected('no_such_view', {}, ['unknown view', '"no_such_view"', 'user_stats']);
    expect(reason).toContain('trending_posts');
  });

  it('an unknown view name with a newline still gives a one-line reason', async () => {
    await expectRejected('bad\nview', {}, ['unknown view', '"bad\\nview"']);
  });

  it('params for a view without partial refresh (trending_posts) are rejected', async () => {
    await expectRejected('trending_posts', { params: { post_id: 1 } }, [
      'trending_posts',
      'no partial refresh',
      '{"post_id":1}',
    ]);
  });

  it('a missing param ({}) is rejected naming the param', async () => {
    await expectRejected('user_stats', { params: {} }, ['missing param', '"user_id"', 'user_stats']);
  });

  it('an extra param is rejected naming it', async () => {
    await expectRejected('user_stats', { params: { user_id: 1, org_id: 2 } }, ['unknown param', '"org_id"']);
  });

  it.each([
    ['"abc"', 'abc'],
    ['null', null],
    ['[1]', [1]],
    ['{}', {}],
    ['1e+30', 1e30],
    ['1.5', 1.5],
    ['"99999999999999999999"', '99999999999999999999'],
    ['true', true],
  ])('user_stats.user_id = %s is rejected naming the param and the value', async (shown, value) => {
    await expectRejected('user_stats', { params: { user_id: value } }, ['"user_id"', `is ${shown}:`]);
  });

  it('a SQL-looking string for a bigint param is rejected, never run', async () => {
    await expectRejected('user_stats', { params: { user_id: '1; drop table users' } }, [
      '"user_id"',
      '"1; drop table users"',
    ]);
  });

  it.each([
    ['a string', 'refresh please', '"refresh please"'],
    ['an array', [{ params: { user_id: 1 } }], '[{"params":{"user_id":1}}]'],
    ['null', null, 'got null'],
    ['a number', 42, 'got 42'],
  ])('job data that is %s is rejected', async (_what, data, shown) => {
    await expectRejected('user_stats', data, ['job data must be an object', shown]);
  });

  it('params that are not an object are rejected', async () => {
    await expectRejected('user_stats', { params: 'user_id=1' }, ['must be an object', '"user_id=1"']);
  });

  it('an unknown field in job data (a typo of params) is rejected naming it', async () => {
    await expectRejected('user_stats', { parms: { user_id: 1 } }, ['unknown field', '"parms"']);
  });

  it('a reason that is not a short string is rejected', async () => {
    await expectRejected('user_stats', { reason: 'x'.repeat(201) }, ['reason must be a string']);
    await expectRejected('user_stats', { reason: { why: 1 } }, ['reason must be a string', '{"why":1}']);
  });

  it('a payload over 64 KB (big reason) is rejected naming its size', async () => {
    const data = { reason: 'r'.repeat(70_000) };
    const size = Buffer.byteLength(JSON.stringify(data));
    await expectRejected('user_stats', data, [`${size} bytes`, '65536']);
  });

  it('a payload over 64 KB (big param string) is rejected, even for an unknown view', async () => {
    const data = { params: { user_id: '1'.repeat(66_000) } };
    const size = Buffer.byteLength(JSON.stringify(data));
    await expectRejected('user_stats', data, [`${size} bytes`]);
    await expectRejected('no_such_view', data, [`${size} bytes`]);
  });

  it('enqueueRefresh refuses an oversized request before it reaches Redis', async () => {
    const before = await queue.getJobCounts('waiting', 'failed', 'completed', 'delayed', 'active');
    await expect(enqueueRefresh(queue, 'user_by_name', { name: 'n'.repeat(70_000) })).rejects.toThrow(
      /over the 65536-byte limit/,
    );
    expect(await queue.getJobCounts('waiting', 'failed', 'completed', 'delayed', 'active')).toEqual(before);
  });

  it('a SQL-looking text param runs as a bound value: no error, no table dropped, no key written', async () => {
    const hostile = "x'; drop table users; --";
    const job = await queue.add('user_by_name', { params: { name: hostile } });
    const result = (await job.waitUntilFinished(events, 10_000)) as RefreshJobResult;
    expect(result).toMatchObject({ view: 'user_by_name', kind: 'partial', rows: 0 });
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from users`.execute(ctx.db.db);
    expect(rows[0]!.n).toBe(100);
    expect(await scanKeys(ctx.redis, 'user_by_name:*')).toEqual([]);
    // The same view does find a real name, so the empty result above is the filter working.
    const real = await queue.add('user_by_name', { params: { name: 'User 42' } });
    expect(await real.waitUntilFinished(events, 10_000)).toMatchObject({ rows: 1 });
    expect(await ctx.redis.hgetall('user_by_name:User 42')).toEqual({
      email: 'user42@example.com',
    });
    expect(await scanKeys(ctx.redis, 'user_by_name:*')).toEqual(['user_by_name:User 42']);
  });
});

describe('refresh queue: coalescing and runs that never overlap', () => {
  it('10,000 requests for one key within about a second make at most 15 runs, and the key ends equal to the query', async () => {
    await drained();
    const before = await version('user_stats');
    const jobsBefore = (await queue.getJobCounts('completed')).completed ?? 0;
    const started = performance.now();
    const total = 10_000;
    const chunk = 2500;
    for (let sent = 0; sent < total; sent += chunk) {
      await Promise.all(
        Array.from({ length: chunk }, () =>
          enqueueRefresh(queue, 'user_stats', { user_id: 5 }, { reason: 'burst' }),
        ),
      );
      // The data changes mid-burst: the runs after it must pick the change up.
      if (sent === chunk)
        await sql`update posts set upvotes = upvotes + 3 where user_id = 5`.execute(ctx.db.db);
    }
    const burstMs = performance.now() - started;
    await drained();
    const runs = (await version('user_stats')) - before;
    expect(runs).toBeGreaterThanOrEqual(1);
    // Each run is followed by at least the spacing floor (100 ms): about ten runs a second, and one
    // more for what arrived during the last. A burst slowed down by a loaded machine may make more.
    const allowed = Math.max(15, 2 + Math.ceil(burstMs / RUN_SPACING_FLOOR_MS));
    expect(runs, `${total} requests sent in ${Math.round(burstMs)} ms`).toBeLessThanOrEqual(allowed);
    // Through a Redis Cluster client each add costs more (no auto-pipelining of BullMQ's scripts):
    // the allowance above grows with the burst's length either way.
    expect(burstMs, 'the burst is too slow to say anything about coalescing').toBeLessThan(
      ctx.cluster ? 6000 : 3000,
    );
    // Coalesced in the queue too: a handful of jobs, not 10,000; each one either ran or was covered by
    // a run that started after it was enqueued.
    const finished = (await queue.getJobs(['completed'], 0, -1)).filter((job) => job.data.reason === 'burst');
    expect(finished.length).toBe(((await queue.getJobCounts('completed')).completed ?? 0) - jobsBefore);
    expect(finished.length).toBeLessThanOrEqual(runs + 1);
    expect(finished.filter((job) => !(job.returnvalue as RefreshJobResult).covered)).toHaveLength(runs);
    const { rows } = await sql<{ post_count: string; total_upvotes: string }>`
      select count(*)::text as post_count, coalesce(sum(upvotes), 0)::text as total_upvotes
      from posts where user_id = 5`.execute(ctx.db.db);
    expect(await ctx.redis.hgetall('user_stats:5')).toMatchObject(rows[0]!);
  });

  it('requests arriving while a run is active cause exactly one more run, after the first', async () => {
    await drained();
    gated.starts.length = 0;
    gated.ends.length = 0;
    gated.close();
    const before = await version('gated_stats');
    const first = await enqueueRefresh(queue, 'gated_stats', { user_id: 7 });
    await gated.started;
    for (let i = 0; i < 5; i++) await enqueueRefresh(queue, 'gated_stats', { user_id: 7 });
    expect(gated.starts).toHaveLength(1);
    gated.open();
    await first.waitUntilFinished(events, 10_000);
    await drained();
    expect((await version('gated_stats')) - before).toBe(2);
    expect(gated.starts).toHaveLength(2);
    expect(gated.ends).toHaveLength(2);
    expect(gated.starts[1]!).toBeGreaterThanOrEqual(gated.ends[0]!);
    expect(gated.maxActive).toBe(1);
  });

  it('20 raw jobs (no deduplication) for one (view, params) never run concurrently, and all complete', async () => {
    await drained();
    gated.starts.length = 0;
    gated.ends.length = 0;
    gated.maxActive = 0;
    gated.close();
    const before = await version('gated_stats');
    const jobs = await Promise.all(
      Array.from({ length: 20 }, () => queue.add('gated_stats', { params: { user_id: '8' } })),
    );
    await gated.started;
    // The other three worker slots took jobs too and were turned away while the first run holds the lock.
    await until(async () => ((await queue.getJobCounts('delayed')).delayed ?? 0) >= 3, '3 jobs turned away');
    expect(gated.active).toBe(1);
    gated.open();
    const results = (await Promise.all(
      jobs.map((job) => job.waitUntilFinished(events, 20_000)),
    )) as RefreshJobResult[];
    // Each job either ran, or was covered by a run that started after it was enqueued.
    expect(
      results.every(
        (result) => result.view === 'gated_stats' && (result.covered === true || result.rows === 1),
      ),
    ).toBe(true);
    const ran = results.filter((result) => !result.covered).length;
    expect(ran).toBeGreaterThanOrEqual(1);
    for (const job of jobs) expect(await (await stored(job)).getState()).toBe('completed');
    expect(gated.maxActive).toBe(1);
    expect((await version('gated_stats')) - before).toBe(gated.starts.length);
    expect(gated.starts.length).toBe(ran);
  });
});

describe('refresh queue: spacing between runs of one (view, params)', () => {
  /** Collects the ids of jobs that go through the delayed set while `work` runs. */
  async function delayedDuring(work: () => Promise<void>): Promise<string[]> {
    const delayed: string[] = [];
    const onDelayed = ({ jobId }: { jobId: string }) => delayed.push(jobId);
    events.on('delayed', onDelayed);
    try {
      await work();
    } finally {
      events.off('delayed', onDelayed);
    }
    return delayed;
  }

  it('a request arriving after the spacing has passed runs at once: its job never enters the delayed set', async () => {
    await drained();
    const params = { user_id: 21 };
    const window = runKeys(ctx.prefix, refreshIdentity('user_stats', params)).window;
    const first = await enqueueRefresh(queue, 'user_stats', params);
    await first.waitUntilFinished(events, 10_000);
    // The spacing a run leaves is the longer of the floor and its own duration, not a fixed second.
    const runMs = Number(await ctx.redis.hget(viewKeys(ctx.prefix, 'user_stats').meta, 'duration_ms'));
    expect(await ctx.redis.pttl(window)).toBeLessThanOrEqual(Math.max(RUN_SPACING_FLOOR_MS, runMs));
    await until(async () => (await ctx.redis.exists(window)) === 0, 'the spacing to pass');

    const before = await version('user_stats');
    let second: Job | undefined;
    const delayed = await delayedDuring(async () => {
      second = await enqueueRefresh(queue, 'user_stats', params);
      const result = (await second.waitUntilFinished(events, 10_000)) as RefreshJobResult;
      expect(result.covered).toBeUndefined();
    });
    expect(await version('user_stats')).toBe(before + 1);
    expect(delayed).not.toContain(second!.id);
    const done = await stored(second!);
    expect(done.delay).toBe(0);
    expect(done.attemptsStarted).toBe(1);
  });

  it('a view with coalesceMs keeps its fixed window: a request inside it waits in the delayed set', async () => {
    await drained();
    const params = { user_id: 22 };
    const first = await enqueueRefresh(queue, 'limited_stats', params);
    await first.waitUntilFinished(events, 10_000);
    const window = runKeys(ctx.prefix, refreshIdentity('limited_stats', params)).window;
    expect(await ctx.redis.pttl(window)).toBeGreaterThan(RUN_SPACING_FLOOR_MS);
    let second: Job | undefined;
    const delayed = await delayedDuring(async () => {
      second = await enqueueRefresh(queue, 'limited_stats', params);
      await second.waitUntilFinished(events, 10_000);
    });
    expect(delayed).toContain(second!.id);
  });
});

describe('refresh queue: batched partial refreshes', () => {
  it('100 partial requests queued together run as a few runs, and every key equals the query', async () => {
    const view = registry.view('user_stats')!;
    await engine.refresh(view);
    await sql`update posts set upvotes = upvotes + 5`.execute(ctx.db.db);
    const before = await version('user_stats');
    const ids = Array.from({ length: 100 }, (_, i) => String(i + 1));
    await queue.addBulk(ids.map((user_id) => ({ name: 'user_stats', data: { params: { user_id } } })));
    await drained();

    const runs = (await version('user_stats')) - before;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThan(50); // one run per key would be 100
    // Every request is marked covered (one script call per batch), so a deduplicated "next" job
    // queued during its batch completes without another run.
    const marks = await connection.mget(
      ids.map((user_id) => `${ctx.prefix}:covered:${refreshIdentity('user_stats', { user_id })}`),
    );
    expect(marks.filter((mark) => mark === null)).toEqual([]);
    const expected = await expectedContent(ctx.db, view);
    expect(expected.shape === 'hash' && Object.keys(expected.keys)).toHaveLength(100);
    expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(expected);
  });
});

describe('refresh queue: bulk partial requests', () => {
  async function statsOf(userId: number): Promise<Record<string, string>> {
    const { rows } = await sql<Record<string, string>>`
      select count(*)::text as post_count, coalesce(sum(upvotes), 0)::text as total_upvotes
      from posts where user_id = ${userId}`.execute(ctx.db.db);
    return rows[0]!;
  }

  it('good and bad elements: the good keys refresh in one batched run, each bad one fails alone, the job completes', async () => {
    await drained();
    await sql`update posts set upvotes = upvotes + 7 where user_id in (31, 32, 33)`.execute(ctx.db.db);
    const before = await version('user_stats');
    const job = await queue.add('user_stats', {
      params: [
        { user_id: 31 },
        { user_id: 'abc' },
        { user_id: '32' },
        {},
        { user_id: 33, org_id: 1 },
        'user_id=34',
        { user_id: 33 },
      ],
    });
    const result = (await job.waitUntilFinished(events, 10_000)) as RefreshJobResult;
    expect(await (await stored(job)).getState()).toBe('completed');
    expect(result.entries).toHaveLength(7);
    expect(result.entries!.map((entry) => entry.status)).toEqual([
      'done',
      'failed',
      'done',
      'failed',
      'failed',
      'failed',
      'done',
    ]);
    const reasons = result.entries!.flatMap((entry) => (entry.status === 'failed' ? [entry.reason] : []));
    expect(reasons[0]).toMatch(/^params\[1\]: param "user_id" of view "user_stats" is "abc"/);
    expect(reasons[1]).toMatch(/^params\[3\]: missing param "user_id"/);
    expect(reasons[2]).toMatch(/^params\[4\]: unknown param "org_id"/);
    expect(reasons[3]).toMatch(
      /^params\[5\]: params for view "user_stats" must be an object, got "user_id=34"/,
    );
    expect(result).toMatchObject({ view: 'user_stats', kind: 'partial', rows: 3, keys: 3, failed: 4 });
    // batchPartials: the three good keys (33 asked twice) were one run.
    expect((await version('user_stats')) - before).toBe(1);
    for (const id of [31, 32, 33]) {
      expect(await ctx.redis.hgetall(`user_stats:${id}`)).toMatchObject(await statsOf(id));
    }
  });

  it('a view without batchPartials runs one refresh per good element and reports each', async () => {
    await drained();
    const before = await version('user_by_name');
    const job = await queue.add('user_by_name', {
      params: [{ name: 'User 3' }, { name: 42 }, { name: 'User 4' }, { name: 'nobody' }],
    });
    const result = (await job.waitUntilFinished(events, 10_000)) as RefreshJobResult;
    expect(result.entries).toEqual([
      { status: 'done', rows: 1 },
      { status: 'failed', reason: expect.stringContaining('params[1]: param "name"') },
      { status: 'done', rows: 1 },
      { status: 'done', rows: 0 },
    ]);
    expect((await version('user_by_name')) - before).toBe(3);
    expect(await ctx.redis.hgetall('user_by_name:User 4')).toEqual({ email: 'user4@example.com' });
  });

  it('10,000 keys in one job: every key equals the query, keys without a row report 0 rows', async () => {
    await drained();
    const view = registry.view('user_stats')!;
    await sql`update posts set upvotes = upvotes + 1`.execute(ctx.db.db);
    const ids = Array.from({ length: 10_000 }, (_, i) => i + 1);
    const job = await enqueueRefresh(
      queue,
      'user_stats',
      ids.map((user_id) => ({ user_id })),
    );
    expect(job.opts.deduplication).toBeUndefined();
    const result = (await job.waitUntilFinished(events, 60_000)) as RefreshJobResult;
    expect(result.failed).toBe(0);
    expect(result.entries).toHaveLength(10_000);
    expect(result.rows).toBe(100); // the seed has 100 users
    expect(result.entries!.slice(98, 102)).toEqual([
      { status: 'done', rows: 1 },
      { status: 'done', rows: 1 },
      { status: 'done', rows: 0 },
      { status: 'done', rows: 0 },
    ]);
    expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(await expectedContent(ctx.db, view));
  });

  it('an element whose key another run holds waits for that run, then completes with the rest', async () => {
    await drained();
    gated.starts.length = 0;
    gated.ends.length = 0;
    gated.close();
    const single = await enqueueRefresh(queue, 'gated_stats', { user_id: 41 });
    await gated.started;
    const bulk = await queue.add('gated_stats', { params: [{ user_id: 41 }, { user_id: 42 }] });
    await until(async () => gated.starts.length >= 2, 'the free element to start');
    gated.open();
    await single.waitUntilFinished(events, 10_000);
    const result = (await bulk.waitUntilFinished(events, 10_000)) as RefreshJobResult;
    expect(result.entries).toEqual([
      { status: 'done', rows: 1 },
      { status: 'done', rows: 1 },
    ]);
    // Runs: 41 (the single job, held), 42 (the bulk's free element, at once), then the bulk's 41,
    // only after the held run ended.
    expect(gated.starts).toHaveLength(3);
    expect(gated.starts[2]!).toBeGreaterThanOrEqual(Math.min(...gated.ends.slice(0, 2)));
  });

  it('an empty list, more than 10,000 elements, or a list for a view without params fail the whole job', async () => {
    await expectRejected('user_stats', { params: [] }, ['bulk refresh takes 1 to 10000', 'got 0']);
    const tooMany = Array.from({ length: 10_001 }, (_, i) => ({ user_id: i }));
    await expectRejected('user_stats', { params: tooMany }, ['got 10001']);
    await expectRejected('trending_posts', { params: [{ post_id: 1 }] }, ['no partial refresh']);
  });
});

describe('refresh queue: failures', () => {
  it('a transient failure (ECONNRESET) retries until it succeeds, although the job has 1 attempt', async () => {
    flakyErrors.push(
      codedError('read ECONNRESET', 'ECONNRESET'),
      codedError('read ECONNRESET', 'ECONNRESET'),
    );
    const job = await enqueueRefresh(queue, 'flaky_stats');
    expect(job.opts.attempts ?? 0).toBeLessThanOrEqual(1);
    const result = (await job.waitUntilFinished(events, 15_000)) as RefreshJobResult;
    expect(result).toMatchObject({ view: 'flaky_stats', kind: 'full', rows: 100 });
    const done = await stored(job);
    expect(await done.getState()).toBe('completed');
    expect(done.attemptsStarted).toBeGreaterThanOrEqual(3);
    expect(flakyErrors).toEqual([]);
    expect(await ctx.redis.hget(viewKeys(ctx.prefix, 'flaky_stats').meta, 'last_error')).toBe('');
  });

  it('a non-transient failure (42P01) fails once with a one-line reason recorded as last_error', async () => {
    brokenErrors.push(codedError('relation "nope" does not exist\n  at the database', '42P01'));
    const job = await enqueueRefresh(queue, 'broken_stats', { user_id: 3 });
    await expect(job.waitUntilFinished(events, 10_000)).rejects.toThrow(/relation "nope" does not exist/);
    const failed = await stored(job);
    expect(await failed.getState()).toBe('failed');
    expect(failed.attemptsMade).toBe(1);
    expect(failed.attemptsStarted).toBe(1);
    expect(failed.failedReason).toBe('relation "nope" does not exist at the database');
    expect(await ctx.redis.hget(viewKeys(ctx.prefix, 'broken_stats').meta, 'last_error')).toBe(
      failed.failedReason,
    );
    await expectWorkerStillWorks();
  });

  it('a failed run covers no request: one enqueued before it still runs', async () => {
    brokenErrors.push(codedError('relation "nope" does not exist', '42P01'));
    // addBulk adds both atomically, so both are numbered before either run starts: had the failed
    // run marked them covered, the second would complete without running.
    const [first, second] = await queue.addBulk([
      { name: 'broken_stats', data: { params: { user_id: 4 } } },
      { name: 'broken_stats', data: { params: { user_id: 4 } } },
    ]);
    const outcomes = await Promise.allSettled([
      first!.waitUntilFinished(events, 15_000),
      second!.waitUntilFinished(events, 15_000),
    ]);
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(1);
    const ran = outcomes.find(
      (outcome) => outcome.status === 'fulfilled',
    ) as PromiseFulfilledResult<RefreshJobResult>;
    expect(ran.value.covered).toBeUndefined();
    expect(ran.value).toMatchObject({ view: 'broken_stats', kind: 'partial', rows: 1 });
  });
});

describe('refresh worker: graceful shutdown', () => {
  it('close() with a job in flight waits for it to complete', async () => {
    // A worker of its own (own queue prefix) so closing it leaves the shared one alone.
    const prefix = `${ctx.prefix}_sd`;
    const ownQueue = createQueue(QUEUES.refresh, connection, prefix);
    const ownEvents = createQueueEvents(QUEUES.refresh, connection, prefix);
    await ownEvents.waitUntilReady();
    const own = createRefreshWorker({
      connection,
      prefix,
      registry,
      engine,
      concurrency: 4,
      logger: silentLogger(),
    });
    try {
      gated.close();
      const before = await version('gated_stats');
      const job = await enqueueRefresh(ownQueue, 'gated_stats', { user_id: 9 });
      await gated.started;
      let closedAt = 0;
      const closing = own.close(10_000).then(() => {
        closedAt = Date.now();
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(closedAt, 'close() must wait for the running job').toBe(0);
      const releasedAt = Date.now();
      gated.open();
      await closing;
      expect(closedAt).toBeGreaterThanOrEqual(releasedAt);
      const done = await ownQueue.getJob(job.id!);
      expect(await done!.getState()).toBe('completed');
      expect(done!.finishedOn!).toBeLessThanOrEqual(closedAt);
      expect(done!.returnvalue).toMatchObject({ view: 'gated_stats', kind: 'partial', rows: 1 });
      expect(await version('gated_stats')).toBe(before + 1);
    } finally {
      gated.open();
      await own.close(1000);
      await ownEvents.close();
      await ownQueue.close();
    }
  });
});
