import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { drained, otherApp, outboxDepth, startInProcess } from '../helpers/capture.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createJobsDir, SRC_INDEX, startDaemon } from '../helpers/daemon.ts';
import { actualContent, expectedContent } from '../helpers/views.ts';

// What capture does with bad mappings and with tables that change under its triggers, and what the
// CLI says about it. The jobs are this file's own: a view whose mapping throws for some rows and
// refuses params for others, and a view on a scratch table the tests rename and drop.

const NAMES_VIEW = `
import { defineView } from ${JSON.stringify(SRC_INDEX)};
export default defineView()({
  name: 'names',
  shape: 'hash',
  key: 'names:{id}',
  params: { id: 'bigint' },
  batchPartials: true,
  capture: {
    users: {
      columns: ['id', 'name'],
      map: (row) => {
        if (row.name === 'boom') throw new Error('no mapping for boom');
        if (row.name === 'bad') return { id: 'not-a-number' };
        return { id: row.id };
      },
    },
  },
  query: (db, params) => {
    let query = db.selectFrom('users').select(['id', 'name']);
    if (params) query = query.where('id', '=', params.id);
    return query;
  },
});
`;

const SCRATCH_VIEW = `
import { defineView } from ${JSON.stringify(SRC_INDEX)};
export default defineView()({
  name: 'scratch_view',
  shape: 'value',
  key: 'scratch:{id}',
  params: { id: 'bigint' },
  capture: { scratch: { columns: ['id'], map: (row) => ({ id: row.id }) } },
  query: (db, params) => {
    let query = db.selectFrom('scratch').select(['id', 'label']);
    if (params) query = query.where('id', '=', params.id);
    return query;
  },
});
`;

let ctx: TestContext;
let jobs: ReturnType<typeof createJobsDir>;
let env: Record<string, string>;
let daemon: Daemon;

beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.db.pool.query('create table scratch (id bigint primary key, label text)');
  jobs = createJobsDir({ 'names.ts': NAMES_VIEW, 'scratch.ts': SCRATCH_VIEW });
  env = { ...ctx.env, VK_JOBS_DIR: jobs.dir };
});
afterAll(async () => {
  await daemon?.stop();
  jobs?.remove();
  await ctx?.cleanup();
});

async function cli(...args: string[]): Promise<string> {
  const result = await runCli(['capture', ...args], env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout;
}

async function triggerCount(): Promise<number> {
  const { rows } = await ctx.db.pool.query(
    "select count(*)::int as n from pg_trigger where tgname like 'viewkeeper_capture_%'",
  );
  return rows[0].n;
}

describe('capture install', () => {
  it('--dry-run prints the SQL and changes nothing', async () => {
    const out = await cli('install', '--dry-run');
    expect(out).toContain('create or replace trigger viewkeeper_capture_update after update on "users"');
    expect(out).toContain('-- scratch: create');
    expect(await triggerCount()).toBe(0);
  });

  it('creates the triggers of every declared table, then reports them up to date', async () => {
    expect(await cli('install')).toBe('scratch: created (records id)\nusers: created (records id, name)\n');
    expect(await triggerCount()).toBe(8);
    expect(await cli('install')).toBe(
      'scratch: up to date (records id)\nusers: up to date (records id, name)\n',
    );
  });
});

describe('a mapping that fails', () => {
  it('records the change as failed with its reason, rebuilds the view whole, and keeps draining', async () => {
    daemon = await startInProcess(ctx, { VK_JOBS_DIR: jobs.dir });
    const app = await otherApp(ctx);
    try {
      await app.query(
        "insert into users (id, name, email) values (70001, 'boom', 'b@x'), (70002, 'bad', 'c@x'), (70003, 'fine', 'd@x')",
      );
      await drained(ctx);
      const { rows: failures } = await ctx.db.pool.query(
        'select view, table_name, row, reason from viewkeeper.capture_failures order by id',
      );
      expect(failures).toHaveLength(2);
      expect(failures.map((f) => f.row.name).sort()).toEqual(['bad', 'boom']);
      expect(failures.find((f) => f.row.name === 'boom').reason).toContain('no mapping for boom');
      expect(failures.find((f) => f.row.name === 'bad').reason).toMatch(
        /param "id" of view "names" is "not-a-number"/,
      );
      const { rows: runs } = await ctx.db.pool.query(
        "select count(*)::int as n from viewkeeper.refresh_runs where view = 'names' and kind = 'full' and status = 'done'",
      );
      expect(runs[0].n).toBeGreaterThanOrEqual(1);
      const view = (await loadRegistry(jobs.dir)).view('names')!;
      expect(await actualContent(ctx.redis, ctx.prefix, view)).toEqual(await expectedContent(ctx.db, view));

      await app.query("update users set name = 'fine too' where id = 70003");
      await drained(ctx);
      expect(await ctx.redis.hget('names:70003', 'name')).toBe('fine too');
    } finally {
      await app.end();
    }
    const status = await cli('status');
    expect(status).toContain('failed changes: 2');
    expect(status).toMatch(/names ← users \{"id":"70001","name":"boom"\}: .*no mapping for boom/);
  });
});

describe('tables changed under installed triggers', () => {
  it('a renamed table: status and start-up say so in one line, writes to it crash nothing', async () => {
    await ctx.db.pool.query('alter table scratch rename to scratch_old');
    const status = await cli('status');
    expect(status).toContain(
      'problem: table scratch (views scratch_view) does not exist; its capture triggers are on public.scratch_old (renamed?): its changes are not captured',
    );
    const other = startDaemon(env);
    try {
      await other.waitFor('capture: table scratch (views scratch_view) does not exist');
      await ctx.db.pool.query("insert into scratch_old values (1, 'one')");
      await ctx.db.pool.query("update users set name = 'still drained' where id = 70003");
      const deadline = Date.now() + 20_000;
      while ((await ctx.redis.hget('names:70003', 'name')) !== 'still drained') {
        if (Date.now() > deadline) throw new Error('the outbox stopped draining');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await outboxDepth(ctx)).toBe(0);
      expect(other.child.exitCode).toBeNull();
    } finally {
      await other.stop();
    }
  });

  it('a dropped table: status says so in one line, install skips it', async () => {
    await ctx.db.pool.query('drop table scratch_old');
    const status = await cli('status');
    expect(status).toContain(
      'problem: table scratch (views scratch_view) does not exist (dropped or renamed?): its changes are not captured',
    );
    expect(await cli('install')).toBe(
      'scratch: table does not exist (dropped or renamed?): skipped\nusers: up to date (records id, name)\n',
    );
  });
});

it('capture uninstall removes every capture trigger', async () => {
  expect(await cli('uninstall')).toBe('public.users: removed\n');
  expect(await triggerCount()).toBe(0);
  expect(await cli('status')).toMatch(/^users\s+no\s+id,name\s+names$/m);
});
