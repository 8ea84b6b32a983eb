import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { TEST_DATABASE_URL, withDatabase } from '../helpers/env.ts';
import {
  installPackedApp,
  pathWith,
  REPO,
  type RunningProcess,
  readmeBlocks,
  run,
  type ScratchApp,
  startProcess,
  writeInto,
} from '../helpers/package-app.ts';

// viewkeeper as a user installs it: packed, installed into an app outside the repository, and used
// there the way the README's "Use it in your project" says, its code blocks written and run as they
// stand. A fresh database (created by `viewkeeper migrate` itself) shows that migrate leaves a user's
// schema alone.

let ctx: TestContext;
let app: ScratchApp;
let env: Record<string, string>;
const database = `vk_pkg_${randomBytes(4).toString('hex')}`;
const databaseUrl = withDatabase(TEST_DATABASE_URL, database);
let daemon: RunningProcess | undefined;

const SECTIONS = ['Use it in your project', 'Client library'];
const TSC = path.join(REPO, 'node_modules/typescript/bin/tsc');
const DAEMON_CODE = ['pg', 'pg-cursor', 'kysely', 'node-cron', 'cron-parser', 'pino', 'pino-pretty'];

async function sql(text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const results = (await client.query(text)) as pg.QueryResult | pg.QueryResult[];
    return Array.isArray(results) ? (results.at(-1)?.rows ?? []) : results.rows;
  } finally {
    await client.end();
  }
}

/** Which packages importing `entry` loads, how many modules, and how long the import takes. */
async function importCost(entry: string) {
  const probe = writeInto(
    app.dir,
    'probe.mjs',
    `import { registerHooks } from 'node:module';
const loaded = new Set();
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); if (r.url.startsWith('file:')) loaded.add(r.url); return r; } });
await import(process.argv[2]);
const packages = [...new Set([...loaded].map((u) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(u)?.[1]).filter(Boolean))].sort();
process.stdout.write(JSON.stringify({ modules: loaded.size, packages }));
`,
  );
  const probed = await run(process.execPath, [probe, entry], { cwd: app.dir });
  expect(probed.stderr).toBe('');
  const timed = await run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const t = performance.now(); await import(${JSON.stringify(entry)}); process.stdout.write(String(performance.now() - t));`,
    ],
    { cwd: app.dir },
  );
  return {
    ...(JSON.parse(probed.stdout) as { modules: number; packages: string[] }),
    ms: Number(timed.stdout),
  };
}

/** A folder beside the app for a Node 22 runtime (the `node` npm package), outside the app's tree. */
function node22Dir(): string {
  const dir = path.join(path.dirname(app.dir), 'node22');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), '{ "name": "node22", "private": true }\n');
  return dir;
}

beforeAll(async () => {
  ctx = await createTestContext();
  app = await installPackedApp(['@types/node@24']);
  env = { DATABASE_URL: databaseUrl, REDIS_URL: ctx.redisUrl, VK_PREFIX: ctx.prefix, LOG_LEVEL: 'info' };
}, 600_000);

afterAll(async () => {
  await daemon?.stop();
  app?.remove();
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`);
  await admin.end();
  await ctx?.cleanup();
});

describe('the packed package, installed into an app outside the repository', () => {
  it('holds the built JavaScript, declarations, the CLI, README and LICENSE, and nothing else', () => {
    const outside = app.files.filter(
      (file) => !/^(dist\/|bin\/viewkeeper\.js$|README\.md$|LICENSE$|package\.json$)/.test(file),
    );
    expect(outside).toEqual([]);
    expect(app.files).toEqual(
      expect.arrayContaining(['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/client/index.js']),
    );
    expect(app.files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
    expect(app.files.some((file) => file.endsWith('.lua'))).toBe(true);
  });

  it('passes publint (exports, types, files) with warnings treated as errors', async () => {
    const { publint } = await import('publint');
    const { formatMessage } = await import('publint/utils');
    const tarball = readFileSync(app.tarball);
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    const { messages } = await publint({
      pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) },
      level: 'warning',
      strict: true,
    });
    expect(messages.map((message) => formatMessage(message, pkg))).toEqual([]);
  });

  it('imports with ESM and with require(), both entries', async () => {
    const esm = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const main = await import('viewkeeper'); const client = await import('viewkeeper/client');
         process.stdout.write([typeof main.defineView, typeof main.defineSink, typeof main.createClient, typeof main.sql, typeof client.createClient, typeof client.defineView].join(' '));`,
      ],
      { cwd: app.dir },
    );
    expect(esm.stderr).toBe('');
    expect(esm.stdout).toBe('function function function function function undefined');
    const cjs = await run(
      process.execPath,
      [
        '--input-type=commonjs',
        '-e',
        `const main = require('viewkeeper'); const client = require('viewkeeper/client');
         process.stdout.write(typeof main.defineView + ' ' + typeof client.createClient);`,
      ],
      { cwd: app.dir },
    );
    expect(cjs.stderr).toBe('');
    expect(cjs.stdout).toBe('function function');
  });

  it('the client entry loads no daemon code: no pg, kysely, cron or pretty-printing modules', async () => {
    const client = await importCost('viewkeeper/client');
    expect(client.packages.filter((name) => DAEMON_CODE.includes(name))).toEqual([]);
    expect(client.packages).toEqual(expect.arrayContaining(['ioredis', 'bullmq', 'viewkeeper']));
    const main = await importCost('viewkeeper');
    expect(main.packages).toEqual(expect.arrayContaining(['kysely']));
    // The README states these costs; print them so a run shows the current figures.
    process.stdout.write(
      `import cost: viewkeeper/client ${client.modules} modules ${client.ms.toFixed(0)} ms; viewkeeper ${main.modules} modules ${main.ms.toFixed(0)} ms\n`,
    );
  });

  it('runs the installed CLI: --help, and migrate creates only viewkeeper schema objects', async () => {
    const help = await run(app.bin('viewkeeper'), ['--help'], { cwd: app.dir, env });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: viewkeeper <command>');

    const migrated = await run(app.bin('viewkeeper'), ['migrate'], { cwd: app.dir, env });
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);
    const tables = await sql(
      `select table_schema || '.' || table_name as name from information_schema.tables
       where table_schema not in ('pg_catalog', 'information_schema') order by 1`,
    );
    expect(tables.filter((row) => !String(row.name).startsWith('viewkeeper.'))).toEqual([]);
  });

  it('init writes a starter project that passes check, starts, and serves a refresh', async () => {
    const starter = path.join(app.dir, 'starter');
    mkdirSync(starter);
    const init = await run(app.bin('viewkeeper'), ['init'], { cwd: starter, env });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    await sql(readFileSync(path.join(starter, 'viewkeeper-starter.sql'), 'utf8'));
    const starterEnv = { ...env, VK_JOBS_DIR: path.join(starter, 'jobs') };
    const checked = await run(app.bin('viewkeeper'), ['check'], { cwd: starter, env: starterEnv });
    expect(checked.stderr).toBe('');
    expect(checked.code).toBe(0);

    daemon = startProcess(app.bin('viewkeeper'), ['start'], { cwd: starter, env: starterEnv });
    await daemon.waitFor(/daemon started/);
    const refreshed = await run(app.bin('viewkeeper'), ['refresh', 'starter_item', '--wait'], {
      cwd: starter,
      env: starterEnv,
    });
    expect(refreshed.stderr).toBe('');
    expect(refreshed.stdout).toMatch(/^refreshed starter_item \(full\): 3 rows in \d+ ms/);
    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
  });

  it("typechecks the README's TypeScript blocks against the shipped declarations (skipLibCheck off)", async () => {
    const blocks = readmeBlocks(SECTIONS).filter((block) => block.lang === 'ts');
    expect(blocks.length).toBeGreaterThan(4);
    blocks.forEach((block, i) => {
      writeInto(app.dir, block.file ?? `readme/${block.section.replace(/\W+/g, '-')}-${i}.ts`, block.code);
    });
    // A name of the wrong shape must not compile either (view definitions as descriptors).
    writeInto(
      app.dir,
      'wrong-shape/read.ts',
      `import { createClient } from 'viewkeeper';
import customerTotals from '../jobs/customer-totals.ts';
const client = createClient({ views: { customer_totals: customerTotals } });
await client.zset('customer_totals');
`,
    );
    const tsconfig = (include: string[]) =>
      JSON.stringify({
        compilerOptions: {
          target: 'es2024',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          allowImportingTsExtensions: true,
          verbatimModuleSyntax: true,
          types: ['node'],
        },
        include,
      });
    writeFileSync(path.join(app.dir, 'tsconfig.json'), tsconfig(['jobs', 'types', 'app', 'readme']));
    const checked = await run(process.execPath, [TSC, '-p', '.'], { cwd: app.dir });
    expect(checked.stdout + checked.stderr).toBe('');
    expect(checked.code).toBe(0);

    writeFileSync(path.join(app.dir, 'tsconfig.wrong.json'), tsconfig(['wrong-shape']));
    const wrong = await run(process.execPath, [TSC, '-p', 'tsconfig.wrong.json'], { cwd: app.dir });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout).toMatch(/read\.ts\(4,\d+\): error TS2345: .*"customer_totals"/);
  });

  it("runs the README's project: its schema, check, start on its jobs/, refresh --wait, and the app", async () => {
    const [schema] = readmeBlocks(['Use it in your project']).filter((block) => block.lang === 'sql');
    await sql(schema!.code);
    await sql(`insert into customers values (7, 'Ada'), (8, 'Grace');
               insert into orders (id, customer_id, total) values (1, 7, 25.00), (2, 8, 3.50), (3, 8, 4.00);`);

    const checked = await run(app.bin('viewkeeper'), ['check'], { cwd: app.dir, env });
    expect(checked.stderr).toBe('');
    expect(checked.code).toBe(0);

    daemon = startProcess(app.bin('viewkeeper'), ['start'], { cwd: app.dir, env });
    await daemon.waitFor(/daemon started/);
    const refreshed = await run(app.bin('viewkeeper'), ['refresh', 'customer_totals', '--wait'], {
      cwd: app.dir,
      env,
    });
    expect(refreshed.stderr).toBe('');
    expect(refreshed.code).toBe(0);
    expect(await ctx.redis.hgetall('customer_totals:8')).toEqual({ orders: '2', spent: '7.50' });

    // app/totals.ts as the README has it: read after a refresh, then a write behind.
    const appRun = await run(process.execPath, ['app/totals.ts'], { cwd: app.dir, env });
    expect(appRun.stderr).toBe('');
    expect(appRun.stdout).toBe(`${JSON.stringify({ orders: '1', spent: '25.00' })}\n`);
    for (let i = 0; i < 200; i++) {
      if ((await ctx.redis.hget('customer_totals:7', 'orders')) === '2') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await ctx.redis.hgetall('customer_totals:7')).toEqual({ orders: '2', spent: '37.50' });
    expect(await sql('select id::int, total::text from orders where id = 1001')).toEqual([
      { id: 1001, total: '12.50' },
    ]);

    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
  });

  it('runs on Node 22 LTS too: both entries import, and its daemon serves a refresh', async () => {
    const installed = await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', 'node@22'],
      {
        cwd: node22Dir(),
        timeoutMs: 300_000,
      },
    );
    expect(installed.code, installed.stderr).toBe(0);
    const node22 = path.join(node22Dir(), 'node_modules', '.bin');
    const env22 = { ...env, PATH: pathWith(node22) };
    const version = await run('node', ['--version'], { cwd: app.dir, env: env22 });
    expect(version.stdout).toMatch(/^v22\./);
    const imports = await run(
      'node',
      [
        '--input-type=commonjs',
        '-e',
        `const { createClient } = require('viewkeeper/client');
         import('viewkeeper').then((main) => process.stdout.write(typeof createClient + ' ' + typeof main.defineView));`,
      ],
      { cwd: app.dir, env: env22 },
    );
    expect(imports.stderr).toBe('');
    expect(imports.stdout).toBe('function function');

    daemon = startProcess(app.bin('viewkeeper'), ['start'], { cwd: app.dir, env: env22 });
    await daemon.waitFor(/daemon started/);
    await sql(`insert into orders (id, customer_id, total) values (4, 8, 1.00)`);
    const refreshed = await run(
      app.bin('viewkeeper'),
      ['refresh', 'customer_totals', '--param', 'customer_id=8', '--wait'],
      {
        cwd: app.dir,
        env: env22,
      },
    );
    expect(refreshed.stderr).toBe('');
    expect(refreshed.code).toBe(0);
    expect(await ctx.redis.hgetall('customer_totals:8')).toEqual({ orders: '3', spent: '8.50' });
    expect(await daemon.stop()).toBe(0);
    daemon = undefined;
  });
});
