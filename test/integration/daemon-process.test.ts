import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../demo/seed.ts';
import { QUEUES } from '../../src/contract.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { viewKeys } from '../../src/redis/keys.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { type DaemonProcess, startDaemon as launchDaemon } from '../helpers/daemon.ts';
import { demoViewNames } from '../helpers/views.ts';

// The daemon and the CLI as real processes: refresh through the queue, status, graceful and forced
// shutdown on signals, and start-up refusing a broken view file.

const JOBS_DIR = fileURLToPath(new URL('../../demo/jobs/', import.meta.url));
const LIBRARY = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

const running: DaemonProcess[] = [];

function startDaemon(env: Record<string, string>): DaemonProcess {
  const daemon = launchDaemon(env);
  running.push(daemon);
  return daemon;
}

/** A view file for VK_JOBS_DIR whose full rebuild takes `seconds` inside Postgres. */
function sleepyView(name: string, seconds: number): string {
  return `import { defineView } from ${JSON.stringify(LIBRARY)};

export default defineView()({
  name: ${JSON.stringify(name)},
  shape: 'value',
  key: '${name}:{id}',
  value: 'v',
  coalesceMs: 0,
  query: (db) =>
    db.selectNoFrom((eb) => [
      eb.fn('pg_sleep', [eb.lit(${seconds})]).as('slept'),
      eb.lit(1).as('id'),
      eb.val('done').as('v'),
    ]),
});
`;
}

let ctx: TestContext;
let connection: Redis;
let queue: Queue;
const tempDirs: string[] = [];

async function jobsDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'vk-jobs-'));
  tempDirs.push(dir);
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(dir, file), text);
  return dir;
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function state(job: Job): Promise<string> {
  return (await queue.getJob(job.id!))?.getState() ?? 'missing';
}

beforeAll(async () => {
  ctx = await createTestContext();
  await seedDemo(ctx.db, { users: 100, postsPerUser: 2, votesPerPost: 3, seed: 1 });
  connection = createRedis(ctx.redisUrl, { role: 'queue', name: 't' });
  await connectRedis(connection, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.refresh, connection, ctx.prefix);
});

afterAll(async () => {
  for (const daemon of running) {
    if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
    await daemon.exited;
  }
  await queue?.close();
  if (connection) await closeRedis(connection);
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
  await ctx?.cleanup();
});

describe('daemon and CLI as processes', () => {
  it('refresh --wait runs through a started daemon, bad params exit 2 naming the value, status lists the views', async () => {
    const env = { ...ctx.env, VK_JOBS_DIR: JOBS_DIR, LOG_LEVEL: 'info' };
    const daemon = startDaemon(env);
    await daemon.waitFor('daemon started');

    const refreshed = await runCli(['refresh', 'user_stats', '--wait'], env);
    expect(refreshed.stderr).toBe('');
    expect(refreshed.code).toBe(0);
    const match = /^refreshed user_stats \(full\): 100 rows in \d+ ms, version (\d+)\n$/.exec(
      refreshed.stdout,
    );
    expect(match, refreshed.stdout).not.toBeNull();
    const version = Number(match![1]);
    expect(version).toBeGreaterThanOrEqual(1);
    let cursor = '0';
    const keys = new Set<string>();
    do {
      const [next, found] = await ctx.redis.scan(cursor, 'MATCH', 'user_stats:*', 'COUNT', 1000);
      for (const key of found) keys.add(key);
      cursor = next;
    } while (cursor !== '0');
    expect(keys.size).toBe(100);
    expect(Object.keys(await ctx.redis.hgetall('user_stats:1')).sort()).toEqual([
      'avg_upvotes',
      'post_count',
      'total_upvotes',
    ]);

    // Checked against the definitions before anything is enqueued: a usage error.
    const bad = await runCli(['refresh', 'user_stats', '--param', 'user_id=abc', '--wait'], env);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    const lines = bad.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^viewkeeper refresh: /);
    expect(lines[0]).toContain('"user_id"');
    expect(lines[0]).toContain('"abc"');

    // --key per key: one bulk job; the bad key fails alone, listed on stderr, and the exit is 1.
    const bulk = await runCli(
      [
        'refresh',
        'user_stats',
        '--key',
        'user_id=2',
        '--key',
        'user_id=abc',
        '--key',
        '{"user_id":3}',
        '--wait',
      ],
      env,
    );
    expect(bulk.code).toBe(1);
    expect(bulk.stdout).toMatch(
      /^refreshed user_stats \(bulk\): 3 keys — 2 done, 0 covered, 1 failed; 2 rows in \d+ ms, version \d+\n$/,
    );
    expect(bulk.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^failed: params\[1\]: param "user_id" of view "user_stats" is "abc"/),
    ]);

    const status = await runCli(['status', '--json'], env);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as {
      views: { view: string; version: number }[];
      queues: Record<string, Record<string, number>>;
    };
    expect(report.views.map((view) => view.view)).toEqual(await demoViewNames());
    expect(report.views.find((view) => view.view === 'user_stats')!.version).toBeGreaterThanOrEqual(version);
    const counts = report.queues[QUEUES.refresh]!;
    for (const name of ['waiting', 'active', 'delayed', 'failed', 'completed']) {
      expect(typeof counts[name], name).toBe('number');
    }
    expect(counts.completed).toBeGreaterThanOrEqual(1);

    daemon.child.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    expect(daemon.output()).toContain('daemon stopped');
  });

  it('SIGTERM with a refresh in flight lets it complete, then exits 0', async () => {
    const dir = await jobsDir({ 'sleepy.mts': sleepyView('sleepy', 1.5) });
    const daemon = startDaemon({ ...ctx.env, VK_JOBS_DIR: dir, LOG_LEVEL: 'info' });
    await daemon.waitFor('daemon started');
    const job = await queue.add('sleepy', {});
    await until(async () => (await state(job)) === 'active', 'the sleepy job to start');
    await new Promise((resolve) => setTimeout(resolve, 200)); // inside pg_sleep
    const signalledAt = Date.now();
    daemon.child.kill('SIGTERM');
    const exit = await daemon.exited;
    expect(exit.code, daemon.output()).toBe(0);
    expect(exit.signal).toBeNull();
    const done = await queue.getJob(job.id!);
    expect(await done!.getState()).toBe('completed');
    expect(done!.returnvalue).toMatchObject({ view: 'sleepy', kind: 'full', rows: 1 });
    expect(done!.finishedOn!).toBeGreaterThanOrEqual(signalledAt);
    expect(done!.finishedOn!).toBeLessThanOrEqual(exit.at);
    expect(await ctx.redis.get('sleepy:1')).toBe('done');
    expect(Number(await ctx.redis.hget(viewKeys(ctx.prefix, 'sleepy').meta, 'version'))).toBe(1);
    const output = daemon.output();
    expect(output).toContain('daemon stopped');
    expect(output.indexOf('refreshed')).toBeLessThan(output.indexOf('daemon stopped'));
  });

  it('a second SIGTERM during a graceful stop exits at once, non-zero', async () => {
    const dir = await jobsDir({ 'sleepy_long.mts': sleepyView('sleepy_long', 5) });
    const daemon = startDaemon({ ...ctx.env, VK_JOBS_DIR: dir, LOG_LEVEL: 'info' });
    await daemon.waitFor('daemon started');
    const job = await queue.add('sleepy_long', {});
    await until(async () => (await state(job)) === 'active', 'the sleepy_long job to start');
    daemon.child.kill('SIGTERM');
    await daemon.waitFor('stopping gracefully');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(daemon.child.exitCode).toBeNull(); // still waiting for the job
    const secondAt = Date.now();
    daemon.child.kill('SIGTERM');
    const exit = await daemon.exited;
    expect(exit.at - secondAt).toBeLessThan(1500);
    expect(exit.code === 0 || exit.code === null).toBe(false);
    expect(daemon.output()).not.toContain('daemon stopped');
    expect(await state(job)).not.toBe('completed');
  });

  it.each([
    [
      'a syntax error',
      'broken.mts',
      `import { defineView } from ${JSON.stringify(LIBRARY)};\nexport default defineView()({\n  name: 'broken',\n`,
    ],
    ['no default export', 'nodefault.mts', 'export const view = { kind: "view", name: "nodefault" };\n'],
    ['a default export that is not a view', 'notaview.mts', 'export default 42;\n'],
  ])(
    'start refuses a view file with %s: non-zero exit, one line naming the file',
    async (_what, file, text) => {
      const dir = await jobsDir({ [file]: text });
      const result = await runCli(['start'], { ...ctx.env, VK_JOBS_DIR: dir });
      expect(result.code).not.toBe(0);
      expect(result.code).not.toBeNull();
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^viewkeeper start: /);
      expect(lines[0]).toContain(path.join(dir, file));
      expect(result.stdout).not.toContain('daemon started');
    },
  );
});
