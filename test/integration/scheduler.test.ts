import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createJobsDir, type DaemonProcess, REPO_JOBS, SRC_INDEX, startDaemon } from '../helpers/daemon.ts';

let ctx: TestContext;
const daemons: DaemonProcess[] = [];
const dirs: { remove(): void }[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop('SIGKILL')));
  for (const dir of dirs) dir.remove();
  await ctx?.cleanup();
});

/** A tiny value view rebuilt every second: one row, so each run takes milliseconds. */
function everySecondView(name: string, options: string): string {
  return `import { defineView } from ${JSON.stringify(SRC_INDEX)};
export default defineView()({
  name: ${JSON.stringify(name)},
  shape: 'value',
  key: '${name}:{id}',
  value: 'v',
  schedule: '* * * * * *',
  coalesceMs: 0,
  ${options}
  query: (db) => db.selectNoFrom((eb) => [eb.lit(1).as('id'), eb.fn('now').as('v')]),
});
`;
}

function launch(count: number, jobsDir: string, extra: Record<string, string> = {}): DaemonProcess[] {
  const started = Array.from({ length: count }, () =>
    startDaemon({ ...ctx.env, VK_JOBS_DIR: jobsDir, LOG_LEVEL: 'info', ...extra }),
  );
  daemons.push(...started);
  return started;
}

interface Run {
  trigger: string;
  slot: Date | null;
  started_at: Date;
  finished_at: Date;
  worker: string;
}

async function runsOf(view: string): Promise<Run[]> {
  const { rows } = await sql<Run>`
    select trigger, slot, started_at, finished_at, worker from viewkeeper.refresh_runs
    where view = ${view} and kind = 'full' and status = 'done' order by started_at`.execute(ctx.db.db);
  return rows;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('cron rebuilds across daemons', () => {
  it('three daemons run a view scheduled every second exactly once per tick, never overlapping', async () => {
    const jobs = createJobsDir({ 'ticker.ts': everySecondView('ticker', 'catchUp: false,') });
    dirs.push(jobs);
    const fleet = launch(3, jobs.dir);
    await Promise.all(fleet.map((daemon) => daemon.waitFor(/scheduler started/)));
    await sleep(6500);
    await Promise.all(fleet.map((daemon) => daemon.stop()));

    const runs = await runsOf('ticker');
    const slots = runs.map((run) => run.slot!.getTime());
    expect(runs.every((run) => run.trigger === 'schedule')).toBe(true);
    expect(new Set(slots).size).toBe(slots.length); // one run per tick
    expect(slots.length).toBeGreaterThanOrEqual(5);
    // No tick between the first and the last was skipped.
    const sorted = [...slots].sort((a, b) => a - b);
    expect(sorted.at(-1)! - sorted[0]!).toBe((sorted.length - 1) * 1000);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.started_at.getTime()).toBeGreaterThanOrEqual(runs[i - 1]!.finished_at.getTime());
    }
    // The work really was shared by the fleet, not done by a single daemon.
    expect(new Set(runs.map((run) => run.worker)).size).toBeGreaterThan(1);
  });

  it('after all daemons were down for three slots, two starting together run one catch-up', async () => {
    const jobs = createJobsDir({ 'catcher.ts': everySecondView('catcher', '') });
    dirs.push(jobs);
    const [first] = launch(1, jobs.dir);
    await first!.waitFor(/scheduler started/);
    await sleep(1500);
    await first!.stop();
    const before = (await runsOf('catcher')).length;
    expect(before).toBeGreaterThan(0);

    await sleep(3500);
    const pair = launch(2, jobs.dir);
    await Promise.all(pair.map((daemon) => daemon.waitFor(/scheduler started/)));
    await sleep(1500);
    await Promise.all(pair.map((daemon) => daemon.stop()));

    const after = (await runsOf('catcher')).slice(before);
    expect(after.filter((run) => run.trigger === 'catch-up')).toHaveLength(1);
    expect(
      pair.map((daemon) => daemon.output().match(/catch-up rebuild enqueued/g)?.length ?? 0).sort(),
    ).toEqual([0, 1]);
  });

  it('an invalid cron expression stops start-up naming the file, the view and the expression', async () => {
    const jobs = createJobsDir({
      'broken.ts': everySecondView('broken', '').replace("'* * * * * *'", "'61 * * * *'"),
    });
    dirs.push(jobs);
    const [daemon] = launch(1, jobs.dir);
    expect(await daemon!.stop('SIGCONT')).not.toBe(0);
    const output = daemon!.output();
    expect(output).toContain('broken.ts');
    expect(output).toContain('view "broken": schedule: cron expression "61 * * * *" is invalid');
    expect(output.trim().split('\n')).toHaveLength(1);
  });

  it('an unknown time zone stops start-up the same way', async () => {
    const jobs = createJobsDir({
      'zoned.ts': everySecondView('zoned', '').replace(
        "schedule: '* * * * * *'",
        "schedule: { cron: '0 * * * *', timezone: 'Mars/Olympus' }",
      ),
    });
    dirs.push(jobs);
    const [daemon] = launch(1, jobs.dir);
    expect(await daemon!.stop('SIGCONT')).not.toBe(0);
    expect(daemon!.output()).toContain(
      'view "zoned": schedule: time zone "Mars/Olympus" is not an IANA zone name',
    );
  });
});

describe('chunked rebuilds across daemons', () => {
  /** user_stats cut into 100-id chunks; `sleepMs` per chunk makes a rebuild last long enough to kill. */
  function chunkedUserStats(sleepMs: number): string {
    return `import { sql } from 'kysely';
import base from ${JSON.stringify(`${REPO_JOBS}/user-stats.ts`)};
export default {
  ...base,
  coalesceMs: 0,
  chunking: { table: 'users', column: 'id', size: 100 },
  query: (db, params, range) => {
    const query = base.query(db, params, range);
    return range && ${sleepMs} > 0 ? query.where(sql\`(select true from pg_sleep(${sleepMs / 1000}))\`) : query;
  },
};
`;
  }

  async function expectUserStatsEqualsQuery(): Promise<void> {
    const { expectedContent, actualContent, loadDemoViews } = await import('../helpers/views.ts');
    const view = (await loadDemoViews()).user_stats;
    expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(await expectedContent(ctx.db, view));
  }

  async function chunkRuns(seq: string) {
    const { rows } = await sql<{ chunk: string; runs: number }>`
      select chunk, count(*)::int as runs from viewkeeper.refresh_runs
      where view = 'user_stats' and kind = 'chunk' and status = 'done' and seq = ${seq}
      group by chunk order by chunk`.execute(ctx.db.db);
    return rows;
  }

  async function lastFullSeq(): Promise<string> {
    const { rows } = await sql<{ seq: string }>`
      select seq from viewkeeper.refresh_runs where view = 'user_stats' and kind = 'full' and status = 'done'
      order by finished_at desc limit 1`.execute(ctx.db.db);
    return rows[0]!.seq;
  }

  beforeAll(async () => {
    const { seedDemo } = await import('../../demo/seed.ts');
    await seedDemo(ctx.db, { users: 1000, postsPerUser: 2, votesPerPost: 2, seed: 5 });
  });

  it('three daemons share the chunks, each chunk runs once, and Redis equals the query', async () => {
    const { runCli } = await import('../helpers/cli.ts');
    const jobs = createJobsDir({ 'user-stats.ts': chunkedUserStats(150) });
    dirs.push(jobs);
    const fleet = launch(3, jobs.dir);
    await Promise.all(fleet.map((daemon) => daemon.waitFor(/daemon started/)));
    const result = await runCli(
      ['refresh', 'user_stats', '--wait', '--timeout', '90'],
      { ...ctx.env, VK_JOBS_DIR: jobs.dir },
      95_000,
    );
    expect(result.stdout).toMatch(/^refreshed user_stats \(full\): 1000 rows/);
    await Promise.all(fleet.map((daemon) => daemon.stop()));

    const chunks = await chunkRuns(await lastFullSeq());
    expect(chunks).toHaveLength(10);
    expect(chunks.every((chunk) => chunk.runs === 1)).toBe(true);
    const { rows } = await sql<{ workers: number }>`
      select count(distinct worker)::int as workers from viewkeeper.refresh_runs where kind = 'chunk'`.execute(
      ctx.db.db,
    );
    expect(rows[0]!.workers).toBeGreaterThan(1);
    await expectUserStatsEqualsQuery();
  });

  it('a request that arrives while the rebuild waits on its chunks causes one more rebuild', async () => {
    const { createClient } = await import('../../src/index.ts');
    const jobs = createJobsDir({ 'user-stats.ts': chunkedUserStats(250) });
    dirs.push(jobs);
    const [daemon] = launch(1, jobs.dir);
    await daemon!.waitFor(/daemon started/);
    const client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
    try {
      const fullRuns = async () => (await runsOf('user_stats')).length;
      const before = await fullRuns();
      const { rows: last } = await sql<{ seq: string | null }>`
        select max(seq) as seq from viewkeeper.refresh_runs where view = 'user_stats'`.execute(ctx.db.db);
      const previousSeq = last[0]!.seq ?? '0';
      await client.refresh('user_stats');
      // Wait for the first chunk of this rebuild, then change data it already read and ask again.
      const chunksDone = async () => {
        const { rows } = await sql<{ done: number }>`
          select count(*)::int as done from viewkeeper.refresh_runs
          where view = 'user_stats' and kind = 'chunk' and status = 'done'
            and seq = (select max(seq) from viewkeeper.refresh_runs where view = 'user_stats' and kind = 'chunk')
            and seq > ${previousSeq}`.execute(ctx.db.db);
        return rows[0]!.done;
      };
      while ((await chunksDone()) === 0) await sleep(20);
      await sql`update posts set upvotes = upvotes + 11 where user_id <= 100`.execute(ctx.db.db);
      await client.refresh('user_stats');
      // Not vacuous: the rebuild was still waiting on chunks when the second request arrived.
      expect(await chunksDone()).toBeLessThan(10);

      const deadline = Date.now() + 60_000;
      while ((await fullRuns()) < before + 2 && Date.now() < deadline) await sleep(100);
      expect(await fullRuns()).toBe(before + 2);
      await expectUserStatsEqualsQuery();
    } finally {
      await client.close();
      await daemon!.stop();
    }
  });

  it('a rebuild whose daemon is killed with SIGKILL mid-chunk still completes and equals the query', async () => {
    const { runCli } = await import('../helpers/cli.ts');
    // Make the database differ from what Redis holds, so a stale result would show.
    await sql`update posts set upvotes = upvotes + 7 where user_id % 3 = 0`.execute(ctx.db.db);
    const jobs = createJobsDir({ 'user-stats.ts': chunkedUserStats(600) });
    dirs.push(jobs);
    const env = { VK_JOB_LOCK_MS: '2000' };
    const fleet = launch(3, jobs.dir, env);
    await Promise.all(fleet.map((daemon) => daemon.waitFor(/daemon started/)));
    const waiting = runCli(
      ['refresh', 'user_stats', '--wait', '--timeout', '90'],
      { ...ctx.env, VK_JOBS_DIR: jobs.dir },
      95_000,
    );
    await sleep(1500); // chunks are running on every daemon now
    await fleet[0]!.stop('SIGKILL');
    const result = await waiting;
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^refreshed user_stats \(full\): 1000 rows/);
    await Promise.all(fleet.map((daemon) => daemon.stop()));
    const chunks = await chunkRuns(await lastFullSeq());
    expect(chunks.map((chunk) => chunk.chunk)).toHaveLength(10);
    await expectUserStatsEqualsQuery();
  });
});
