import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
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
import { type DaemonProcess, REPO_JOBS, startDaemon } from '../helpers/daemon.ts';
import { loadDemoViews, seedSmall } from '../helpers/views.ts';

// Capture when daemons die, share the outbox, or lose their LISTEN connection: no change is lost,
// and every demo view ends equal to its query.

let ctx: TestContext;
let views: Awaited<ReturnType<typeof loadDemoViews>>;
let env: Record<string, string>;
const processes: DaemonProcess[] = [];
const inProcess: Daemon[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  views = await loadDemoViews();
  await seedSmall(ctx.db);
  await installCapture(ctx, Object.values(views));
  await rebuildAll(ctx, Object.values(views));
  // A dead daemon's claimed refreshes are taken over after the job lock (2 s here).
  env = { ...ctx.env, VK_JOBS_DIR: REPO_JOBS, VK_JOB_LOCK_MS: '2000', LOG_LEVEL: 'info' };
}, 120_000);
beforeEach(async () => {
  await Promise.all(processes.splice(0).map((daemon) => daemon.stop('SIGKILL')));
  await Promise.all(inProcess.splice(0).map((daemon) => daemon.stop()));
});
afterAll(async () => {
  await Promise.all(processes.map((daemon) => daemon.stop('SIGKILL')));
  await Promise.all(inProcess.map((daemon) => daemon.stop()));
  await ctx?.cleanup();
});

function daemon(): DaemonProcess {
  const started = startDaemon(env);
  processes.push(started);
  return started;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it('a daemon killed with SIGKILL mid-drain loses no change: the next one drains the rest', async () => {
  // 20,000 new posts with one vote each, in 200 statements: 200 outbox rows of 100 changed rows
  // each, drained in several batches.
  await ctx.db.pool.query(`
    insert into posts (id, user_id, title) select 200000 + g, (select min(id) from users) + g % 150, 'bulk ' || g
    from generate_series(1, 20000) g`);
  for (let from = 1; from <= 20_000; from += 100) {
    await ctx.db.pool.query(
      `insert into votes (post_id, user_id, value, created_at)
       select 200000 + g, (select min(id) from users) + g % 7, 1, now() from generate_series($1::int, $1::int + 99) g`,
      [from],
    );
  }
  const total = await outboxDepth(ctx);
  expect(total).toBe(201);

  const first = daemon();
  let depth = total;
  while (depth === total) {
    await sleep(10);
    depth = await outboxDepth(ctx);
  }
  first.child.kill('SIGKILL');
  await first.exited;
  const left = await outboxDepth(ctx);
  expect(left).toBeGreaterThan(0);
  expect(left).toBeLessThan(total);

  daemon();
  await drained(ctx, 120_000);
  await expectViewsRight(ctx, Object.values(views));
}, 300_000);

it('three daemons draining one outbox apply every change', async () => {
  await Promise.all(
    [daemon(), daemon(), daemon()].map((started) => started.waitFor('daemon started', 120_000)),
  );
  const apps = await Promise.all([otherApp(ctx), otherApp(ctx), otherApp(ctx)]);
  try {
    await Promise.all(
      apps.map(async (app, worker) => {
        for (let i = 0; i < 60; i++) {
          const post = 200001 + worker * 1000 + i;
          await app.query('begin');
          await app.query('update votes set value = -value where post_id = $1', [post]);
          await app.query(
            'update posts set upvotes = upvotes + 1, user_id = (select max(id) from users) where id = $1',
            [post + 1],
          );
          await app.query("update users set name = name || '+' where id = (select min(id) from users) + $1", [
            i,
          ]);
          await app.query('commit');
          if (i % 20 === 0) await app.query('delete from votes where post_id = $1', [post + 500]);
        }
      }),
    );
  } finally {
    await Promise.all(apps.map((app) => app.end()));
  }
  await drained(ctx, 120_000);
  await expectViewsRight(ctx, Object.values(views));
}, 300_000);

it('the LISTEN connection killed: the daemon reconnects and drains what arrived meanwhile', async () => {
  // No polling to fall back on: only notifications and the reconnection drain.
  inProcess.push(await startInProcess(ctx, { VK_CAPTURE_POLL_MS: '600000' }));
  const listeners = async () =>
    (
      await ctx.db.pool.query<{ pid: number }>(
        "select pid from pg_stat_activity where application_name = 'viewkeeper-listen' and datname = current_database()",
      )
    ).rows.map((row) => row.pid);
  const [before] = await listeners();
  expect(before).toBeDefined();
  await ctx.db.pool.query('select pg_terminate_backend($1)', [before]);
  // Written while the connection is down: its notification reaches nobody.
  await ctx.db.pool.query("update users set name = 'while away' where id = (select min(id) from users)");

  const deadline = Date.now() + 30_000;
  for (let now = await listeners(); now.length !== 1 || now[0] === before; now = await listeners()) {
    if (Date.now() > deadline) throw new Error('the LISTEN connection did not come back');
    await sleep(50);
  }
  await drained(ctx, 30_000);
  await expectViewsRight(ctx, Object.values(views));

  // And the new connection hears the next change.
  await ctx.db.pool.query("update users set name = 'heard' where id = (select min(id) from users)");
  await drained(ctx, 30_000);
  const { rows } = await ctx.db.pool.query('select min(id) as id from users');
  expect(await ctx.redis.hget(`user:${rows[0].id}`, 'name')).toBe('heard');
}, 300_000);
