import type { Queue } from 'bullmq';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueRefresh } from '../../src/client/refresh.ts';
import { createWriter, type Writer } from '../../src/client/write.ts';
import { QUEUES, type WriteBehindJobData } from '../../src/contract.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { sinksOf } from '../../src/queues/write-behind-payload.ts';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  type RedisConnection,
} from '../../src/redis/connections.ts';
import { bullmqKeys } from '../../src/redis/keys.ts';
import { refreshBacklogKey } from '../../src/sinks/refresh-backlog.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { type DaemonProcess, REPO_JOBS, startDaemon } from '../helpers/daemon.ts';
import { startThrowawayCluster, type ThrowawayCluster } from '../helpers/redis-cluster.ts';
import {
  actualContent,
  createEngine,
  type DemoView,
  expectedContent,
  loadDemoViews,
  seedSmall,
} from '../helpers/views.ts';
import { expectVotesAppliedOnce } from '../helpers/vote-ledger.ts';
import { until } from '../helpers/wait.ts';

// Guarantee 7 on a Redis Cluster: write-behind ops and refresh requests flow through a daemon
// (`viewkeeper start`, a child process) whose views AND queues are on a private 3-master cluster;
// mid-stream the master serving the queues' slot (the hash-tagged prefix: every queue key, every
// view's metadata and lock) is SIGKILLed and its replica takes over. The daemon stays up, every op is
// applied exactly once (ledger), votes hold the last op per pair, and the views equal their queries.
// The file has a cluster of its own, so killing a node cannot disturb the other files' cluster.

const OPS = 12_000;
const CHUNK = 100;
const PRODUCERS = 2;
const VIEWS: DemoView[] = ['post_votes', 'trending', 'trending_posts', 'user_stats'];

let ctx: TestContext;
let cluster: ThrowawayCluster;
let clusterUrl: string;
let views: RedisConnection;
let queueRedis: RedisConnection;
let queue: Queue<WriteBehindJobData>;
let refreshQueue: Queue;
let writer: Writer;
let daemon: DaemonProcess | undefined;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  cluster = await startThrowawayCluster(3);
  clusterUrl = `redis+cluster://${cluster.ports.map((port) => `127.0.0.1:${port}`).join(',')}`;
  views = createRedisConnection(clusterUrl, { role: 'views', name: 'failover-views' });
  await connectRedis(views, clusterUrl, 'REDIS_URL');
  queueRedis = createRedisConnection(clusterUrl, { role: 'queue', name: 'failover-producer' });
  await connectRedis(queueRedis, clusterUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix) as Queue<WriteBehindJobData>;
  refreshQueue = createQueue(QUEUES.refresh, queueRedis, ctx.prefix);
  const registry = await loadRegistry(REPO_JOBS);
  writer = createWriter({ queue, sinks: [...sinksOf(registry.others.values()).values()], windowMs: 2 });
}, 120_000);

afterAll(async () => {
  await daemon?.stop('SIGKILL');
  await writer?.close();
  await queue?.close();
  await refreshQueue?.close();
  if (queueRedis) await closeRedis(queueRedis);
  if (views) await closeRedis(views);
  await cluster?.stop();
  await ctx?.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a Redis Cluster master fails over mid-stream', () => {
  it('the daemon stays up, no write-behind op is lost or applied twice, and the views converge', async () => {
    const demo = await loadDemoViews();
    const engine = createEngine({ ...ctx, redis: views });
    for (const name of VIEWS) expect((await engine.refresh(demo[name])).status).toBe('done');
    const { rows: posts } = await sql<{ id: string }>`select id from posts order by id`.execute(ctx.db.db);
    const { rows: users } = await sql<{ id: string }>`select id from users order by id limit 100`.execute(
      ctx.db.db,
    );
    const expected = new Map<string, number>();
    const { rows: seeded } = await sql<{ post_id: string; user_id: string; value: number }>`
      select post_id, user_id, value from votes`.execute(ctx.db.db);
    for (const vote of seeded) expected.set(`${vote.post_id}:${vote.user_id}`, vote.value);

    daemon = startDaemon({
      ...ctx.env,
      REDIS_URL: clusterUrl,
      VK_JOBS_DIR: REPO_JOBS,
      VK_JOB_LOCK_MS: '2000',
      LOG_LEVEL: 'info',
    });
    await daemon.waitFor(/daemon started/, 30_000);

    let produced = 0;
    let killed = false;
    const opIds: string[] = [];
    async function produce(index: number): Promise<void> {
      const share = OPS / PRODUCERS;
      for (let done = 0; done < share; done += CHUNK) {
        const ops = [];
        for (let k = 0; k < CHUNK; k++) {
          // Producer `index` owns the users ≡ index (mod PRODUCERS): one producer per pair, in order.
          const user = users[Math.floor(Math.random() * (users.length / PRODUCERS)) * PRODUCERS + index]!.id;
          const post = posts[Math.floor(Math.random() * posts.length)]!.id;
          ops.push({ post_id: post, user_id: user, value: Math.random() < 0.6 ? 1 : -1 });
        }
        // Ops produced while the master is down wait in the client (BullMQ's connection retries):
        // an acknowledged op is one the new master has.
        const ids = await writer.write('votes', ops);
        for (const op of ops) expected.set(`${op.post_id}:${op.user_id}`, op.value);
        opIds.push(...ids);
        produced += ops.length;
        // Full rebuilds flow too: the kill lands while they run.
        if (done % 1000 === 0)
          await enqueueRefresh(refreshQueue, 'user_stats', undefined, { reason: 'flow' });
        await sleep(killed ? 5 : 20);
      }
    }
    async function failover(): Promise<void> {
      await until(async () => produced >= OPS * 0.3, 'production progress', 60_000);
      await until(
        async () => /write-behind batch committed/.test(daemon!.output()),
        'a committed batch',
        30_000,
      );
      const master = await cluster.masterOf(bullmqKeys(ctx.prefix, QUEUES.writeBehind).id);
      await cluster.kill(master);
      killed = true;
      await cluster.waitHealthy(60_000); // the replica has taken over every slot of the dead master
    }
    await Promise.all([...Array.from({ length: PRODUCERS }, (_, i) => produce(i)), failover()]);
    expect(killed).toBe(true);
    expect(opIds).toHaveLength(OPS);

    // What is left, kept for the failure message: a stall seen once in CI said only "timed out".
    let left = '';
    await until(
      async () => {
        const writes = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        const refreshes = await refreshQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        const owed = await queueRedis.zcard(refreshBacklogKey(ctx.prefix));
        left = JSON.stringify({ writes, refreshes, owed });
        return [...Object.values(writes), ...Object.values(refreshes), owed].every((n) => n === 0);
      },
      'queues drained',
      {
        timeoutMs: 90_000,
        everyMs: 200,
        detail: () => `left ${left}; daemon output (end): ${daemon!.output().slice(-3000)}`,
      },
    );
    expect(daemon.child.exitCode, daemon.output().slice(-2000)).toBeNull(); // still up

    // Every op exactly once, votes = the last op per pair, posts.upvotes = vote sums.
    await expectVotesAppliedOnce(ctx.db, opIds, expected);

    // Runs that failed while the master was away were retried (or superseded): the views converge.
    // One more full rebuild of each would hide a lost partial refresh, so none is made here.
    for (const name of VIEWS) {
      await until(
        async () =>
          JSON.stringify(await actualContent(views, ctx.prefix, demo[name])) ===
          JSON.stringify(await expectedContent(ctx.db, demo[name])),
        `${name} converged`,
        { timeoutMs: 30_000, everyMs: 500 },
      ).catch(() => undefined);
      expect(await actualContent(views, ctx.prefix, demo[name]), name).toEqual(
        await expectedContent(ctx.db, demo[name]),
      );
    }
  });
});
