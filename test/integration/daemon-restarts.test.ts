import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../demo/seed.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createJobsDir, type DaemonProcess, REPO_JOBS, SRC_INDEX, startDaemon } from '../helpers/daemon.ts';
import { startThrowawayRedis, type ThrowawayRedis } from '../helpers/redis-server.ts';
import { actualContent, expectedContent, loadDemoViews } from '../helpers/views.ts';

// What a running daemon does when its servers go away and come back: Postgres connections are cut
// (what a restart or failover looks like from the daemon), and a Redis server is killed and started
// again. The shared servers are never stopped: Redis here is a throwaway redis-server of this file.

let ctx: TestContext;
const daemons: DaemonProcess[] = [];
let redis: ThrowawayRedis | undefined;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedDemo(ctx.db, { users: 200, postsPerUser: 2, votesPerPost: 2, seed: 3 });
});
afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  await redis?.kill();
  await ctx?.cleanup();
});

const refresh = (env: Record<string, string>) =>
  runCli(['refresh', 'user_stats', '--param', 'user_id=1', '--wait', '--timeout', '60'], env, 65_000);

describe('a running daemon across server restarts', () => {
  it('keeps refreshing after every Postgres connection it had was terminated', async () => {
    const daemon = startDaemon({ ...ctx.env, LOG_LEVEL: 'info' });
    daemons.push(daemon);
    await daemon.waitFor('daemon started');
    expect((await refresh(ctx.env)).code).toBe(0);

    const { rows } = await sql<{ killed: number }>`
      select count(pg_terminate_backend(pid))::int as killed from pg_stat_activity
      where datname = current_database() and application_name = 'viewkeeper-daemon'`.execute(ctx.db.db);
    expect(rows[0]!.killed).toBeGreaterThan(0);
    await sql`update posts set upvotes = upvotes + 1 where user_id = 1`.execute(ctx.db.db);

    const after = await refresh(ctx.env);
    expect(after.stderr).toBe('');
    expect(after.stdout).toMatch(/^refreshed user_stats \(partial\): 1 rows/);
    const { rows: expected } = await sql<{ total: string }>`
      select coalesce(sum(upvotes), 0)::text as total from posts where user_id = 1`.execute(ctx.db.db);
    expect(await ctx.redis.hget('user_stats:1', 'total_upvotes')).toBe(expected[0]!.total);
    expect(daemon.child.exitCode).toBeNull();
    await daemon.stop();
  });

  it('reconnects and keeps consuming after its Redis was killed and started again', async () => {
    redis = await startThrowawayRedis();
    const { port } = redis;
    const env = { ...ctx.env, REDIS_URL: `redis://127.0.0.1:${port}/0` };
    const daemon = startDaemon({ ...env, LOG_LEVEL: 'info' });
    daemons.push(daemon);
    await daemon.waitFor('daemon started');
    expect((await refresh(env)).code).toBe(0);

    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the daemon notices and retries
    redis = await startThrowawayRedis(port); // empty: no persistence, like a lost cache node

    const after = await refresh(env);
    expect(after.stderr).toBe('');
    expect(after.stdout).toMatch(/^refreshed user_stats \(partial\): 1 rows/);
    expect(daemon.child.exitCode).toBeNull();
    expect(await daemon.stop()).toBe(0);
  });
});

describe('eviction policies', () => {
  it('warns at start-up when the view Redis may evict view bookkeeping (allkeys-*), not with volatile-lru', async () => {
    const outputs: Record<string, string> = {};
    for (const policy of ['allkeys-lru', 'volatile-lru']) {
      const views = await startThrowawayRedis(undefined, ['--maxmemory-policy', policy]);
      try {
        const daemon = startDaemon({
          ...ctx.env,
          REDIS_URL: `${views.url}/0`,
          QUEUE_REDIS_URL: ctx.redisUrl,
          LOG_LEVEL: 'info',
        });
        daemons.push(daemon);
        await daemon.waitFor('daemon started');
        expect(await daemon.stop()).toBe(0);
        outputs[policy] = daemon.output();
      } finally {
        await views.kill();
      }
    }
    expect(outputs['allkeys-lru']).toContain(
      "views redis maxmemory-policy is allkeys-lru: it can evict viewkeeper's view metadata and key indexes",
    );
    expect(outputs['volatile-lru']).toContain('daemon started');
    expect(outputs['volatile-lru']).not.toContain('maxmemory-policy');
    expect(outputs['allkeys-lru']).not.toContain('queue redis maxmemory-policy');
  });
});

describe('a refresh job whose daemons die', () => {
  it('survives two daemons killed with SIGKILL while running it, and completes on the third', async () => {
    const { createQueue } = await import('../../src/queues/factories.ts');
    const { closeRedis, connectRedis, createRedis } = await import('../../src/redis/connections.ts');
    const jobs = createJobsDir({
      'slow.ts': `import { sql } from 'kysely';
import { defineView } from ${JSON.stringify(SRC_INDEX)};
export default defineView()({
  name: 'slow',
  shape: 'value',
  key: 'slow:{id}',
  value: 'v',
  query: (db) => db.selectNoFrom([sql\`1\`.as('id'), sql\`(select now() from pg_sleep(2.5))\`.as('v')]),
});
`,
    });
    const connection = createRedis(ctx.redisUrl, { role: 'queue', name: 'test-stall' });
    await connectRedis(connection, ctx.redisUrl, 'REDIS_URL');
    const queue = createQueue('refresh', connection, ctx.prefix);
    const env = { ...ctx.env, VK_JOBS_DIR: jobs.dir, VK_JOB_LOCK_MS: '2000', LOG_LEVEL: 'info' };
    try {
      const job = await queue.add('slow', {});
      const runningOn = async (daemon: DaemonProcess, starts: number) => {
        daemons.push(daemon);
        await daemon.waitFor('daemon started');
        const deadline = Date.now() + 20_000;
        for (;;) {
          const current = await queue.getJob(job.id!);
          if ((await current?.getState()) === 'active' && (current?.attemptsStarted ?? 0) >= starts) return;
          if (Date.now() > deadline)
            throw new Error(`job not active a ${starts}th time: ${await current?.getState()}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      for (const starts of [1, 2]) {
        const daemon = startDaemon(env);
        await runningOn(daemon, starts);
        await daemon.stop('SIGKILL');
      }
      const last = startDaemon(env);
      daemons.push(last);
      const deadline = Date.now() + 30_000;
      let state = await job.getState();
      while (state !== 'completed' && state !== 'failed' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        state = await job.getState();
      }
      const finished = await queue.getJob(job.id!);
      expect({ state, reason: finished?.failedReason }).toEqual({ state: 'completed', reason: undefined });
      expect(finished!.attemptsStarted).toBeGreaterThanOrEqual(3);
      expect(await ctx.redis.exists('slow:1')).toBe(1);
      expect(await last.stop()).toBe(0);
    } finally {
      await queue.close();
      await closeRedis(connection);
      jobs.remove();
    }
  });
});

describe('batched partial refreshes across daemons', () => {
  it('600 raw requests (each key 3 times) on 3 daemons, one SIGKILLed mid-way: none fails, every key equals the query', async () => {
    const { createQueue } = await import('../../src/queues/factories.ts');
    const { closeRedis, connectRedis, createRedis } = await import('../../src/redis/connections.ts');
    const connection = createRedis(ctx.redisUrl, { role: 'queue', name: 'test-fleet' });
    await connectRedis(connection, ctx.redisUrl, 'REDIS_URL');
    const queue = createQueue('refresh', connection, ctx.prefix);
    const env = { ...ctx.env, VK_JOBS_DIR: REPO_JOBS, VK_JOB_LOCK_MS: '2000', LOG_LEVEL: 'info' };
    try {
      const fleet = [startDaemon(env), startDaemon(env), startDaemon(env)];
      daemons.push(...fleet);
      await Promise.all(fleet.map((daemon) => daemon.waitFor('daemon started')));
      await sql`update posts set upvotes = upvotes + 3 where id % 2 = 0`.execute(ctx.db.db);
      const { rows: users } = await sql<{ id: string }>`select id::text from users order by id`.execute(
        ctx.db.db,
      );
      // Raw jobs, no deduplication: the same keys race across daemons and batches.
      const jobs = [1, 2, 3].flatMap(() =>
        users.map((user) => ({ name: 'user_stats', data: { params: { user_id: user.id } } })),
      );
      await queue.addBulk(jobs);
      const pending = (c: Record<string, number>) =>
        (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const beforeKill = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      await fleet[0]!.stop('SIGKILL');
      expect(pending(beforeKill)).toBeGreaterThan(0); // the kill lands mid-way (coalescing windows)

      const deadline = Date.now() + 60_000;
      let counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
      while (pending(counts) > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
      }
      expect(counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, failed: 0 });

      const view = (await loadDemoViews()).user_stats;
      const expected = await expectedContent(ctx.db, view);
      expect(expected.shape === 'hash' && Object.keys(expected.keys)).toHaveLength(users.length);
      expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(expected);
      for (const daemon of fleet.slice(1)) expect(await daemon.stop()).toBe(0);
    } finally {
      await queue.close();
      await closeRedis(connection);
    }
  });
});
