import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { migrateDemo } from '../../demo/migrate.ts';
import type { Database } from '../../demo/schema.ts';
import { createWriter, type Writer } from '../../src/client/write.ts';
import { QUEUES, type WriteBehindJobData } from '../../src/contract.ts';
import { createDb, type DbHandle } from '../../src/db/create-db.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { sinksOf } from '../../src/queues/write-behind-payload.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { refreshBacklogKey } from '../../src/sinks/refresh-backlog.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { type DaemonProcess, REPO_JOBS, startDaemon } from '../helpers/daemon.ts';
import { type PrivatePostgres, startPrivatePostgres } from '../helpers/postgres-server.ts';
import { startThrowawayRedis, type ThrowawayRedis } from '../helpers/redis-server.ts';
import { actualContent, type DemoView, expectedContent, loadDemoViews, seedSmall } from '../helpers/views.ts';
import { until } from '../helpers/wait.ts';

// Guarantee 7 with real servers: a private Postgres cluster restarted (`pg_ctl restart -m fast`) and a
// private password-protected Redis killed and started again, three times each, while write-behind ops
// stream in and refreshes run. The daemon must never exit; afterwards the ledger holds every op exactly
// once, the votes table is the expected final state and every view equals its query.

const OPS = Number(process.env.VK_RESTART_OPS ?? 6000);
const PRODUCERS = 2;
const CHUNK = 50;
const PASSWORD = 'restart-secret-9f2';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Db = DbHandle<Database & import('../../src/db/schema.ts').ViewkeeperDatabase>;

/** Everything one scenario started, torn down after it whatever happened. */
const teardown: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()!().catch(() => undefined);
});
afterAll(async () => {
  while (teardown.length > 0) await teardown.pop()!().catch(() => undefined);
});

interface Stack {
  postgres: PrivatePostgres;
  redis: ThrowawayRedis;
  redisUrl: string;
  databaseUrl: string;
  db: Db;
  views: Redis;
  queueRedis: Redis;
  writeQueue: Queue<WriteBehindJobData>;
  refreshQueue: Queue;
  writer: Writer;
  env: Record<string, string>;
  /** Kills Redis (SIGKILL; it persists every write with appendfsync always) and starts it again. */
  restartRedis(): Promise<void>;
}

async function startStack(): Promise<Stack> {
  const postgres = await startPrivatePostgres({ settings: { max_connections: '60' } });
  teardown.push(() => postgres.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'vk-redis-'));
  teardown.push(async () => rmSync(dir, { recursive: true, force: true }));
  // A restart is not a data loss: the server persists every write before acknowledging it.
  const redisArgs = [
    '--requirepass',
    PASSWORD,
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
  ];
  let redis = await startThrowawayRedis(undefined, redisArgs);
  teardown.push(() => redis.kill());
  const redisUrl = `redis://:${PASSWORD}@127.0.0.1:${redis.port}/0`;
  const databaseUrl = postgres.url.replace(/\/postgres$/, '/viewkeeper');
  await migrateDemo(databaseUrl);
  const db: Db = createDb(databaseUrl, { max: 4 });
  teardown.push(() => db.close());
  await seedSmall(db);

  const views = createRedis(redisUrl, { role: 'views', name: 'test-views' });
  teardown.push(() => closeRedis(views));
  await connectRedis(views, redisUrl, 'REDIS_URL');
  const queueRedis = createRedis(redisUrl, { role: 'queue', name: 'test-producer' });
  teardown.push(() => closeRedis(queueRedis));
  await connectRedis(queueRedis, redisUrl, 'QUEUE_REDIS_URL');
  const writeQueue = createQueue(QUEUES.writeBehind, queueRedis, 'vkr') as Queue<WriteBehindJobData>;
  teardown.push(() => writeQueue.close());
  const refreshQueue = createQueue(QUEUES.refresh, queueRedis, 'vkr');
  teardown.push(() => refreshQueue.close());
  const registry = await loadRegistry(REPO_JOBS);
  const writer = createWriter({
    queue: writeQueue,
    sinks: [...sinksOf(registry.others.values()).values()],
    windowMs: 2,
  });
  teardown.push(() => writer.close());
  return {
    postgres,
    get redis() {
      return redis;
    },
    redisUrl,
    databaseUrl,
    db,
    views,
    queueRedis,
    writeQueue,
    refreshQueue,
    writer,
    env: {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      VK_PREFIX: 'vkr',
      VK_JOBS_DIR: REPO_JOBS,
      VK_JOB_LOCK_MS: '2000',
      LOG_LEVEL: 'info',
    },
    async restartRedis() {
      const { port } = redis;
      await redis.kill();
      await sleep(500); // the daemon notices and reconnects with backoff
      redis = await startThrowawayRedis(port, redisArgs);
    },
  };
}

/**
 * Streams `OPS` vote ops (explicit ids, each write retried until accepted) and refresh requests while
 * `disturb` restarts a server three times; then waits for everything to drain and checks guarantees
 * 2, 4 and 7.
 */
async function streamThrough(stack: Stack, disturb: () => Promise<void>): Promise<void> {
  const { db, writer } = stack;
  const daemon: DaemonProcess = startDaemon(stack.env);
  teardown.push(() => daemon.stop('SIGKILL'));
  await daemon.waitFor('daemon started', 30_000);

  const { rows: posts } = await sql<{ id: string }>`select id from posts order by id`.execute(db.db);
  const { rows: users } = await sql<{ id: string }>`select id from users order by id limit 100`.execute(
    db.db,
  );
  const expected = new Map<string, number>();
  const { rows: seeded } = await sql<{ post_id: string; user_id: string; value: number }>`
    select post_id, user_id, value from votes`.execute(db.db);
  for (const vote of seeded) expected.set(`${vote.post_id}:${vote.user_id}`, vote.value);

  let produced = 0;
  let stop = false;
  let disturbed = false;
  const opIds: string[] = [];
  async function produce(index: number): Promise<void> {
    let n = 0;
    // At least OPS in all, and on until the last restart is over, so every restart lands mid-stream.
    for (let done = 0; done < OPS / PRODUCERS || !disturbed; done += CHUNK) {
      const ops = [];
      for (let k = 0; k < CHUNK; k++) {
        n++;
        // Producer `index` owns the users ≡ index (mod PRODUCERS), so each pair's ops have one order.
        const user = users[((n * 7) % (users.length / PRODUCERS)) * PRODUCERS + index]!.id;
        const post = posts[(n * 13 + index) % posts.length]!.id;
        ops.push({ id: `p${index}-${n}`, post_id: post, user_id: user, value: n % 3 === 0 ? -1 : 1 });
      }
      // A write that fails while Redis is away is sent again with the same ids (the ledger dedups).
      for (;;) {
        try {
          await writer.write('votes', ops);
          break;
        } catch {
          await sleep(200);
        }
      }
      for (const op of ops) expected.set(`${op.post_id}:${op.user_id}`, op.value);
      opIds.push(...ops.map((op) => op.id));
      produced += ops.length;
      await sleep(20);
    }
  }
  async function requestRefreshes(): Promise<void> {
    for (let i = 0; !stop; i++) {
      const view = (['user_stats', 'trending', 'trending_posts', 'post_votes'] as const)[i % 4]!;
      await stack.refreshQueue
        .add(view, i % 8 < 4 ? {} : { params: { user_id: users[i % users.length]!.id } })
        .catch(() => undefined);
      await sleep(150);
    }
  }

  const refreshing = requestRefreshes();
  const producing = Promise.all(Array.from({ length: PRODUCERS }, (_, index) => produce(index)));
  const restarts: number[] = [];
  for (const fraction of [0.2, 0.45, 0.7]) {
    await until(async () => produced >= OPS * fraction, 'production progress', 120_000);
    await disturb();
    restarts.push(produced);
    expect(daemon.child.exitCode, daemon.output().slice(-3000)).toBeNull();
  }
  disturbed = true;
  await producing;
  expect(restarts).toHaveLength(3);
  stop = true;
  await refreshing;

  let pending = {};
  await until(
    async () => {
      const writes = await stack.writeQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      const refreshes = await stack.refreshQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      const owed = await stack.queueRedis.zcard(refreshBacklogKey('vkr'));
      const stuck = await stack.refreshQueue.getJobs(['active', 'delayed']);
      pending = {
        writes,
        refreshes,
        owed,
        jobs: stuck.map((job) => ({
          id: job.id,
          name: job.name,
          data: job.data,
          started: job.attemptsStarted,
          at: job.processedOn,
          delay: job.delay,
          reason: job.failedReason,
          stack: job.stacktrace?.slice(-1),
        })),
      };
      return [...Object.values(writes), ...Object.values(refreshes), owed].every((n) => n === 0);
    },
    'queues drained',
    {
      timeoutMs: 120_000,
      everyMs: 100,
      detail: () => `${JSON.stringify(pending)}\n${daemon.output().slice(-4000)}`,
    },
  );
  // One last full rebuild of each view: refreshes requested during a restart may have failed for good.
  const views = await loadDemoViews();
  for (const name of ['post_votes', 'trending', 'trending_posts', 'user_stats'] as DemoView[]) {
    await stack.refreshQueue.add(name, {});
  }
  await until(
    async () =>
      Object.values(await stack.refreshQueue.getJobCounts('waiting', 'active', 'delayed')).every(
        (n) => n === 0,
      ),
    'final rebuilds',
    60_000,
  );

  expect(daemon.child.exitCode, daemon.output().slice(-3000)).toBeNull();
  expect(daemon.output()).not.toMatch(/Unhandled|uncaught/i);
  expect(await stack.writeQueue.getFailedCount()).toBe(0);

  const { rows: ledger } = await sql<{ total: number; distinct_ops: number }>`
    select count(*)::int as total, count(distinct op_id)::int as distinct_ops
    from viewkeeper.write_ledger where sink = 'votes'`.execute(db.db);
  expect(ledger[0]).toEqual({ total: opIds.length, distinct_ops: opIds.length });
  expect(opIds.length).toBeGreaterThanOrEqual(OPS);

  const { rows: votes } = await sql<{ post_id: string; user_id: string; value: number }>`
    select post_id, user_id, value from votes`.execute(db.db);
  const actual = new Map(votes.map((vote) => [`${vote.post_id}:${vote.user_id}`, vote.value]));
  expect(actual.size).toBe(expected.size);
  expect([...expected].filter(([pair, value]) => actual.get(pair) !== value).slice(0, 5)).toEqual([]);
  for (const name of ['post_votes', 'trending', 'trending_posts', 'user_stats'] as DemoView[]) {
    expect(await actualContent(stack.views, 'vkr', views[name]), name).toEqual(
      await expectedContent(db, views[name]),
    );
  }
  expect(await daemon.stop()).toBe(0);
}

describe('the daemon across server restarts while ops stream in', () => {
  it('Postgres restarted three times (pg_ctl restart -m fast): the daemon never exits, no op lost or doubled, views equal the queries', async () => {
    const stack = await startStack();
    await streamThrough(stack, async () => {
      await stack.postgres.restart();
      await sleep(300);
    });
  }, 300_000);

  it('Redis with a password killed and restarted three times: the daemon never exits, no op lost or doubled, views equal the queries', async () => {
    const stack = await startStack();
    await streamThrough(stack, () => stack.restartRedis());
  }, 300_000);
});
