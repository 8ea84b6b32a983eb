import type { Queue } from 'bullmq';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
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
import { refreshBacklogKey } from '../../src/sinks/refresh-backlog.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { type DaemonProcess, REPO_JOBS, startDaemon } from '../helpers/daemon.ts';
import { random } from '../helpers/random.ts';
import {
  actualContent,
  createEngine,
  type DemoView,
  expectedContent,
  loadDemoViews,
  seedSmall,
} from '../helpers/views.ts';
import { expectVotesAppliedOnce } from '../helpers/vote-ledger.ts';

// Guarantee 4 with real processes: vote ops are produced while the daemon (`viewkeeper start`, a child
// process) is killed with SIGKILL three times and restarted. Once everything drains, the votes table is
// exactly the expected final state (the last op per pair), posts.upvotes equals the vote sums, the
// views in Redis equal their queries, and the ledger holds every op exactly once.
//
// 100,000 ops, the size (about 15 s here); 20,000 in the cluster project, where each op
// costs more and test/cluster/failover.test.ts adds a node failure; VK_FAULT_OPS overrides both.
const OPS = Number(process.env.VK_FAULT_OPS ?? (inject('testClusterUrl') ? 20_000 : 100_000));
const PRODUCERS = 4;
const CHUNK = 100;
/** Ops per second the producers aim at, so the kills land while the daemon is busy. */
const RATE = Math.max(2000, OPS / 10);

let ctx: TestContext;
let queueRedis: RedisConnection;
let queue: Queue<WriteBehindJobData>;
let writer: Writer;
let daemon: DaemonProcess | undefined;
/** Every daemon started, so none outlives the file whatever happens. */
const started: DaemonProcess[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  queueRedis = createRedisConnection(ctx.redisUrl, { role: 'queue', name: 'fault-producer' });
  await connectRedis(queueRedis, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix) as Queue<WriteBehindJobData>;
  const registry = await loadRegistry(REPO_JOBS);
  writer = createWriter({ queue, sinks: [...sinksOf(registry.others.values()).values()], windowMs: 2 });
});

afterAll(async () => {
  await Promise.all(started.map((process) => process.stop('SIGKILL')));
  await writer?.close();
  await queue?.close();
  if (queueRedis) await closeRedis(queueRedis);
  await ctx?.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(100);
  }
}

describe('write-behind under kill -9', () => {
  it(
    `${OPS} vote ops while the daemon is SIGKILLed three times: nothing lost, nothing applied twice, views converge`,
    async () => {
      const views = await loadDemoViews();
      const engine = createEngine(ctx);
      for (const name of ['post_votes', 'trending', 'trending_posts', 'user_stats'] as DemoView[]) {
        expect((await engine.refresh(views[name])).status).toBe('done');
      }
      const { rows: posts } = await sql<{ id: string }>`select id from posts order by id`.execute(ctx.db.db);
      const { rows: users } = await sql<{ id: string }>`select id from users order by id limit 100`.execute(
        ctx.db.db,
      );
      const expected = new Map<string, number>();
      const { rows: seeded } = await sql<{ post_id: string; user_id: string; value: number }>`
        select post_id, user_id, value from votes`.execute(ctx.db.db);
      for (const vote of seeded) expected.set(`${vote.post_id}:${vote.user_id}`, vote.value);

      const env = { ...ctx.env, VK_JOBS_DIR: REPO_JOBS, VK_JOB_LOCK_MS: '2000', LOG_LEVEL: 'info' };
      const start = async () => {
        const process = startDaemon(env);
        started.push(process);
        await process.waitFor(/daemon started/, 20_000);
        return process;
      };
      daemon = await start();

      let produced = 0;
      /** Kills done so far: producers wait at `killAt + 0.2` of the ops until that kill has landed. */
      let killsDone = 0;
      const KILL_AT = [0.25, 0.5, 0.75];
      const opIds: string[] = [];
      const begun = performance.now();
      async function produce(index: number): Promise<void> {
        const next = random(index + 1);
        const share = Math.ceil(OPS / PRODUCERS);
        for (let done = 0; done < share; done += CHUNK) {
          const ops = [];
          for (let k = 0; k < Math.min(CHUNK, share - done); k++) {
            // Producer `index` owns the users ≡ index (mod PRODUCERS): every pair has one producer, whose
            // awaited calls give its ops a well-defined order.
            const user = users[Math.floor(next() * (users.length / PRODUCERS)) * PRODUCERS + index]!.id;
            const post = posts[Math.floor(next() * posts.length)]!.id;
            const value = next() < 0.6 ? 1 : -1;
            ops.push({ post_id: post, user_id: user, value });
          }
          // On a loaded machine a restarted daemon can take seconds to come up; without this gate the
          // producers could finish before the next kill, which then would not land mid-stream.
          await until(
            'the kill due before this point',
            async () => killsDone >= KILL_AT.filter((at) => produced >= OPS * (at + 0.2)).length,
            120_000,
          );
          const ids = await writer.write('votes', ops);
          for (const op of ops) expected.set(`${op.post_id}:${op.user_id}`, op.value);
          opIds.push(...ids);
          produced += ops.length;
          const ahead = (produced / RATE) * 1000 - (performance.now() - begun);
          if (ahead > 0) await sleep(ahead);
        }
      }

      const kills: number[] = [];
      async function kill(): Promise<void> {
        for (const fraction of KILL_AT) {
          await until('production progress', async () => produced >= OPS * fraction, 60_000);
          // Kill only once this daemon has committed something: it is in the middle of its work.
          await until(
            'a committed batch',
            async () => /write-behind batch committed/.test(daemon!.output()),
            20_000,
          );
          daemon!.child.kill('SIGKILL');
          await daemon!.stop('SIGKILL');
          kills.push(produced);
          killsDone++;
          await sleep(300);
          daemon = await start();
        }
      }
      await Promise.all([...Array.from({ length: PRODUCERS }, (_, index) => produce(index)), kill()]);
      expect(kills).toHaveLength(3);
      // Every kill landed while ops were still being produced.
      expect(kills.every((at) => at < OPS)).toBe(true);
      expect(opIds).toHaveLength(OPS);

      // Drain: every job finished, every owed refresh run, the daemon's refresh jobs done.
      const refreshQueue = createQueue(QUEUES.refresh, queueRedis, ctx.prefix);
      try {
        await until(
          'queues drained',
          async () => {
            const writes = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
            const refreshes = await refreshQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
            const owed = await queueRedis.zcard(refreshBacklogKey(ctx.prefix));
            return (
              Object.values(writes).every((n) => n === 0) &&
              Object.values(refreshes).every((n) => n === 0) &&
              owed === 0
            );
          },
          60_000,
        );
      } finally {
        await refreshQueue.close();
      }
      expect(await queue.getFailedCount()).toBe(0);

      // Ledger: every op exactly once; votes = the expected final state; posts.upvotes = vote sums.
      await expectVotesAppliedOnce(ctx.db, opIds, expected);

      // The views in Redis = their queries.
      for (const name of ['post_votes', 'trending', 'user_stats', 'trending_posts'] as DemoView[]) {
        expect(await actualContent(ctx.redis, ctx.prefix, views[name]), name).toEqual(
          await expectedContent(ctx.db, views[name]),
        );
      }
    },
    Math.max(120_000, OPS * 3),
  );
});
