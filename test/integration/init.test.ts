import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../../src/contract.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { closeRedis, createRedis } from '../../src/redis/connections.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { startDaemon } from '../helpers/daemon.ts';
import { TEST_DATABASE_URL, withDatabase } from '../helpers/env.ts';
import { linkSources, SOURCE_PATHS } from '../helpers/linked-package.ts';

// `viewkeeper init` in a project folder outside the repository, as a user runs it: the generated
// jobs typecheck against the package, pass `check` and run under `start` on a database where only
// `viewkeeper migrate` and the starter SQL ran.

const TSC = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));
const TYPES = fileURLToPath(new URL('../../node_modules/@types', import.meta.url));
const run = promisify(execFile);

let ctx: TestContext;
let fresh: string;
let freshUrl: string;
const projects: string[] = [];

async function admin(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  await client.query(text).finally(() => client.end());
}

async function project(args: string[] = []): Promise<{ dir: string; stdout: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'vk-init-'));
  projects.push(dir);
  const result = await runCli(['init', '--dir', dir, ...args], {});
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  await linkSources(dir);
  return { dir, stdout: result.stdout };
}

/**
 * Typechecks folders of generated files against this checkout's sources, as a user's editor would:
 * one compiler run for all of them (a run costs seconds on a loaded machine).
 */
async function typecheck(home: string, folders: string[]): Promise<{ ok: boolean; output: string }> {
  const compilerOptions = {
    target: 'es2024',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    noEmit: true,
    allowJs: true,
    checkJs: true,
    skipLibCheck: false,
    // Only for this checkout's .ts sources, which the paths below point at; the package ships .d.ts.
    allowImportingTsExtensions: true,
    types: ['node'],
    typeRoots: [TYPES],
    paths: SOURCE_PATHS,
  };
  await writeFile(path.join(home, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: folders }));
  try {
    await run(process.execPath, [TSC, '-p', home]);
    return { ok: true, output: '' };
  } catch (error) {
    return { ok: false, output: String((error as { stdout?: string }).stdout) };
  }
}

/** A copy of the project's jobs/ with one line changed, in `<dir>/typo` (outside the jobs folder). */
async function typo(dir: string, file: string, from: string, to: string): Promise<string> {
  const folder = path.join(dir, 'typo');
  await mkdir(folder, { recursive: true });
  for (const name of await readdir(path.join(dir, 'jobs'))) {
    const text = await readFile(path.join(dir, 'jobs', name), 'utf8');
    expect(name !== file || text.includes(from)).toBe(true);
    await writeFile(path.join(folder, name), name === file ? text.replace(from, to) : text);
  }
  return path.join(folder, file);
}

function env(dir: string, databaseUrl = freshUrl): Record<string, string> {
  return { ...ctx.env, DATABASE_URL: databaseUrl, VK_JOBS_DIR: path.join(dir, 'jobs') };
}

beforeAll(async () => {
  ctx = await createTestContext();
  fresh = `vk_test_init_${randomBytes(4).toString('hex')}`;
  freshUrl = withDatabase(TEST_DATABASE_URL, fresh);
  const migrated = await runCli(['migrate'], { DATABASE_URL: freshUrl });
  expect(migrated.stderr).toBe('');
});

afterAll(async () => {
  await admin(`drop database if exists ${pg.escapeIdentifier(fresh)} with (force)`);
  for (const dir of projects) await rm(dir, { recursive: true, force: true });
  await ctx?.cleanup();
});

describe('viewkeeper init', () => {
  let ts: string;
  let js: string;

  it('writes TypeScript jobs, the starter SQL and an .env.example, and prints the next steps', async () => {
    const { dir, stdout } = await project();
    ts = dir;
    expect(stdout.split('\n')[0]).toBe(
      `wrote ${['jobs/starter-item.mts', 'jobs/sink-starter-items.mts', 'jobs/schema.d.ts', 'viewkeeper-starter.sql', '.env.example'].map((file) => path.relative(process.cwd(), path.join(dir, file))).join(', ')}`,
    );
    for (const step of [
      'npx viewkeeper migrate',
      'viewkeeper-starter.sql',
      'npx viewkeeper check',
      'npx viewkeeper start',
    ]) {
      expect(stdout).toContain(step);
    }
    expect(await readFile(path.join(dir, 'jobs/starter-item.mts'), 'utf8')).toContain(
      "import { defineView } from 'viewkeeper';",
    );
  });

  it('refuses to overwrite: exit 1, one line naming the file, nothing written', async () => {
    await rm(path.join(ts, '.env.example'));
    const view = path.join(ts, 'jobs/starter-item.mts');
    await writeFile(view, '// mine\n');
    const result = await runCli(['init', '--dir', ts], {});
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      `viewkeeper init: ${path.relative(process.cwd(), view)} already exists: init never overwrites a file (move it away, or pass --force)`,
    ]);
    expect(await readFile(view, 'utf8')).toBe('// mine\n');
    await expect(readFile(path.join(ts, '.env.example'))).rejects.toThrow(/ENOENT/);

    const forced = await runCli(['init', '--dir', ts, '--force'], {});
    expect(forced.code).toBe(0);
    expect(await readFile(view, 'utf8')).toContain('defineView<Database>()');
  });

  it('--js writes JavaScript jobs with JSDoc types', async () => {
    const { dir, stdout } = await project(['--js']);
    js = dir;
    expect(stdout).toContain('jobs/starter-item.mjs');
    expect(await readFile(path.join(dir, 'jobs/starter-item.mjs'), 'utf8')).toContain('// @ts-check');
  });

  it('the jobs typecheck against the package with the table types, a wrong column or field does not', async () => {
    const badView = await typo(ts, 'starter-item.mts', "'name', 'score'", "'name', 'scroe'");
    const badSink = await typo(js, 'sink-starter-items.mjs', 'id: op.item_id,', 'id: op.itemid,');
    const result = await typecheck(ts, [path.join(ts, 'jobs'), path.join(js, 'jobs'), badView, badSink]);
    expect(result.ok).toBe(false);
    const files = [...result.output.matchAll(/^(\S+)\(\d+,\d+\): error/gm)].map((match) =>
      path.resolve(ts, match[1]!),
    );
    expect([...new Set(files)].sort(), result.output).toEqual([badView, badSink].sort());
    expect(result.output).toContain("Property 'itemid' does not exist");
  });

  it('check finds the starter table missing on a database without it: one line per definition', async () => {
    const result = await runCli(['check'], env(ts, ctx.databaseUrl));
    expect(result.code).toBe(1);
    expect(result.stdout.trim().split('\n')).toEqual([
      'view starter_item: relation "starter_items" does not exist',
      'sink starter_items: upsert table starter_items does not exist',
    ]);
  });

  it('check passes on the TypeScript and the JavaScript jobs after viewkeeper migrate and the starter SQL', async () => {
    const client = new pg.Client({ connectionString: freshUrl });
    await client.connect();
    await client
      .query(await readFile(path.join(ts, 'viewkeeper-starter.sql'), 'utf8'))
      .finally(() => client.end());
    for (const dir of [ts, js]) {
      const result = await runCli(['check'], env(dir));
      expect(result.stderr).toBe('');
      expect(result.stdout.trim()).toBe(`ok: 1 view and 1 sink checked against 127.0.0.1:5432/${fresh}`);
      expect(result.code).toBe(0);
    }
  });

  it('start runs the jobs: a refresh fills the view, a write-behind op reaches the table and the view', async () => {
    const daemon = startDaemon({ ...env(ts), LOG_LEVEL: 'info' });
    const queueRedis = createRedis(ctx.redisUrl, { role: 'queue', name: 'test' });
    const queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix);
    try {
      await daemon.waitFor('daemon started');
      const refreshed = await runCli(['refresh', 'starter_item', '--wait'], env(ts));
      expect(refreshed.stderr).toBe('');
      expect(refreshed.code).toBe(0);
      expect(await ctx.redis.hgetall('starter_item:2')).toEqual({ name: 'second', score: '20' });

      await queue.add('starter_items', { ops: [{ id: 'w-1', item_id: 4, name: 'fourth', score: 40 }] });
      const deadline = Date.now() + 15_000;
      while (!(await ctx.redis.exists('starter_item:4')) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await ctx.redis.hgetall('starter_item:4')).toEqual({ name: 'fourth', score: '40' });
    } finally {
      await queue.close();
      await closeRedis(queueRedis);
      expect(await daemon.stop()).toBe(0);
    }
  });
});
describe('viewkeeper check on the demo jobs', () => {
  it("names the missing relation once per view on a database without the demo's tables", async () => {
    const demo = fileURLToPath(new URL('../../demo/jobs', import.meta.url));
    const result = await runCli(['check'], { ...ctx.env, DATABASE_URL: freshUrl, VK_JOBS_DIR: demo });
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n');
    expect(lines.filter((line) => line.startsWith('view '))).toEqual([
      'view post_voters_today: relation "votes" does not exist',
      'view post_votes: relation "votes" does not exist',
      'view trending: relation "votes" does not exist',
      'view trending_posts: relation "votes" does not exist',
      'view user: relation "users" does not exist',
      'view user_recent_votes: relation "votes" does not exist',
      'view user_stats: relation "users" does not exist',
    ]);
    expect(lines.filter((line) => line.startsWith('sink '))).toEqual([
      'sink users: upsert table users does not exist',
      'sink votes: upsert table votes does not exist',
      'sink votes: refresh.user_stats on a test op failed: relation "posts" does not exist',
    ]);
  });

  it('passes on the demo database', async () => {
    const demo = fileURLToPath(new URL('../../demo/jobs', import.meta.url));
    const result = await runCli(['check'], { ...ctx.env, VK_JOBS_DIR: demo });
    expect(result.stdout.trim()).toMatch(/^ok: 7 views and 2 sinks checked against /);
    expect(result.code).toBe(0);
  });
});
