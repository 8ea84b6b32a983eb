import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../src/db/seed-demo.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { type DaemonProcess, startDaemon } from '../helpers/daemon.ts';

// What a running daemon does when its servers go away and come back: Postgres connections are cut
// (what a restart or failover looks like from the daemon), and a Redis server is killed and started
// again. The shared servers are never stopped: Redis here is a throwaway redis-server of this file.

let ctx: TestContext;
const daemons: DaemonProcess[] = [];
let redis: ChildProcess | undefined;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedDemo(ctx.db, { users: 200, postsPerUser: 2, votesPerPost: 2, seed: 3 });
});
afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  redis?.kill('SIGKILL');
  await ctx?.cleanup();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function startRedis(port: number, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
    {
      stdio: 'ignore',
    },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const result = await runCli(
      ['status', '--json'],
      { ...ctx.env, REDIS_URL: `redis://127.0.0.1:${port}/0` },
      10_000,
    );
    if (result.code === 0) return child;
    if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start: ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

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
    const port = await freePort();
    redis = await startRedis(port);
    const env = { ...ctx.env, REDIS_URL: `redis://127.0.0.1:${port}/0` };
    const daemon = startDaemon({ ...env, LOG_LEVEL: 'info' });
    daemons.push(daemon);
    await daemon.waitFor('daemon started');
    expect((await refresh(env)).code).toBe(0);

    redis.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the daemon notices and retries
    redis = await startRedis(port); // empty: no persistence, like a lost cache node

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
      const port = await freePort();
      const views = await startRedis(port, ['--maxmemory-policy', policy]);
      try {
        const daemon = startDaemon({
          ...ctx.env,
          REDIS_URL: `redis://127.0.0.1:${port}/0`,
          QUEUE_REDIS_URL: ctx.redisUrl,
          LOG_LEVEL: 'info',
        });
        daemons.push(daemon);
        await daemon.waitFor('daemon started');
        expect(await daemon.stop()).toBe(0);
        outputs[policy] = daemon.output();
      } finally {
        views.kill('SIGKILL');
      }
    }
    expect(outputs['allkeys-lru']).toContain(
      "views redis maxmemory-policy is allkeys-lru: it can evict viewkeeper's view sequences and key indexes",
    );
    expect(outputs['volatile-lru']).toContain('daemon started');
    expect(outputs['volatile-lru']).not.toContain('maxmemory-policy');
    expect(outputs['allkeys-lru']).not.toContain('queue redis maxmemory-policy');
  });
});
