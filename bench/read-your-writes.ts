// Read your writes: what `client.write(…, { until })` and `client.afterCommit()` cost over a plain
// write, on the demo. Sequential calls from one client (each waits for the one before), so every
// sample is one write's whole latency:
//   - plain write (resolves once Redis has the job), until: 'committed', until: 'refreshed', for the
//     votes sink (its refreshes include trending_posts whole, so back-to-back votes wait out that
//     view's coalescing window) and the users sink (per-key refreshes only);
//   - 'refreshed' on votes again with the calls spaced past the coalescing window;
//   - with capture installed: a plain pg UPDATE of users alone and followed by afterCommit({ txid }).
// Rounds of the modes are interleaved. Median, p90 and max in ms.
//
// Usage: node bench/read-your-writes.ts [--samples 60] [--spaced 15]
//
// Everything on this machine: Postgres (database vk_bench_ryw, reseeded every run: 2,000 users), a
// private redis-server on a free loopback port (started and killed here), the daemon as a child
// process, the client in this process.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrateDemo } from '../demo/migrate.ts';
import { seedDemo } from '../demo/seed.ts';
import { applyChanges, planInstall, planUninstall } from '../src/capture/install.ts';
import { capturedTables } from '../src/capture/tables.ts';
import { createClient } from '../src/client/index.ts';
import { createDb } from '../src/db/create-db.ts';
import { sinksOf } from '../src/queues/write-behind-payload.ts';
import { loadRegistry } from '../src/views/registry.ts';
import { startThrowawayRedis } from '../test/helpers/redis-server.ts';
import { startDaemon } from './lib/daemon-process.ts';
import { sleep } from './lib/stats.ts';

const { values } = parseArgs({
  options: { samples: { type: 'string', default: '60' }, spaced: { type: 'string', default: '15' } },
});
const SAMPLES = Number(values.samples);
const SPACED = Number(values.spaced);
const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const DATABASE_URL = `${PG_BASE}/vk_bench_ryw`;
const PREFIX = 'vkbryw';
const REPO = path.resolve(import.meta.dirname, '..');
const log = (line: string) => process.stderr.write(`${line}\n`);

/** The demo's jobs without cron schedules, so no scheduled rebuild lands inside a measurement. */
function jobsDir(): string {
  const dir = path.join(REPO, 'bench', 'results', 'jobs-ryw');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const file of readdirSync(path.join(REPO, 'demo', 'jobs'))) {
    const base = JSON.stringify(path.join(REPO, 'demo', 'jobs', file));
    writeFileSync(
      path.join(dir, file),
      file.startsWith('sink-')
        ? `export { default } from ${base};\n`
        : `import base from ${base};\nexport default { ...base, schedule: undefined };\n`,
    );
  }
  return dir;
}

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  return `p50 ${fmt(at(0.5)).padStart(6)}  p90 ${fmt(at(0.9)).padStart(6)}  max ${fmt(sorted.at(-1)!).padStart(6)}  (n ${sorted.length})`;
}

async function main(): Promise<void> {
  const redisServer = await startThrowawayRedis();
  const redisUrl = `${redisServer.url}/0`;
  const dir = jobsDir();
  const handle = createDb(DATABASE_URL, { max: 4, applicationName: 'bench-ryw' });
  const registry = await loadRegistry(dir);
  const sinks = [...sinksOf(registry.others.values()).values()];
  const env = { DATABASE_URL, REDIS_URL: redisUrl, VK_PREFIX: PREFIX, VK_JOBS_DIR: dir, LOG_LEVEL: 'warn' };
  let daemon: ReturnType<typeof startDaemon> | undefined;
  const client = createClient({ redisUrl, prefix: PREFIX, sinks });
  const app = new pg.Client({ connectionString: DATABASE_URL, application_name: 'bench-ryw-app' });
  try {
    await migrateDemo(DATABASE_URL);
    // The previous run left the triggers on: the write-behind part runs without capture.
    await applyChanges(handle.db, await planUninstall(handle.db));
    log('seeding vk_bench_ryw (2,000 users)…');
    await seedDemo(handle, { users: 2000, postsPerUser: 5, votesPerPost: 4, seed: 11 });
    await handle.pool.query('truncate viewkeeper.capture_outbox, viewkeeper.capture_failures');
    daemon = startDaemon(env);
    await sleep(3000);
    await app.connect();
    const { rows: posts } = await app.query('select id from posts order by id');
    const { rows: users } = await app.query('select id from users order by id');
    let n = 0;
    // A (post, user) pair no earlier sample used: every vote is an insert that changes the views.
    const nextVote = () => {
      n += 1;
      return {
        post_id: String(posts[(n * 7919) % posts.length].id),
        user_id: String(users[(n * 104729 + 13) % users.length].id),
        value: 1,
      };
    };
    const nextUser = () => {
      n += 1;
      const id = String(users[(n * 7919) % users.length].id);
      return {
        id: `bench-user-${n}`,
        user_id: id,
        name: `bench ${n}`,
        email: `b${n}@example.com`,
        org_id: 1,
      };
    };
    const time = async (run: () => Promise<unknown>) => {
      const started = performance.now();
      await daemon!.guard(run() as Promise<unknown>);
      return performance.now() - started;
    };
    const modes = {
      'votes  plain write': () => client.write('votes', nextVote()),
      "votes  until 'committed'": () => client.write('votes', nextVote(), { until: 'committed' }),
      "votes  until 'refreshed'": () => client.write('votes', nextVote(), { until: 'refreshed' }),
      'users  plain write': () => client.write('users', nextUser()),
      "users  until 'committed'": () => client.write('users', nextUser(), { until: 'committed' }),
      "users  until 'refreshed'": () => client.write('users', nextUser(), { until: 'refreshed' }),
    };
    const samples = new Map<string, number[]>(Object.keys(modes).map((name) => [name, []]));
    // Warm-up: connections, QueueEvents, scripts.
    for (const run of Object.values(modes)) await time(run);
    await sleep(1500);
    for (let round = 0; round < SAMPLES; round++) {
      for (const [name, run] of Object.entries(modes)) samples.get(name)!.push(await time(run));
    }
    const spaced: number[] = [];
    for (let i = 0; i < SPACED; i++) {
      await sleep(1200);
      spaced.push(await time(() => client.write('votes', nextVote(), { until: 'refreshed' })));
    }

    // Capture: a plain pg UPDATE of users (the user view captures it), with and without afterCommit.
    await applyChanges(handle.db, await planInstall(handle.db, capturedTables(registry.views.values())));
    await sleep(1000);
    const plainSql: number[] = [];
    const afterCommit: number[] = [];
    const update = async (wait: boolean) => {
      n += 1;
      const id = users[(n * 7919) % users.length].id;
      await app.query('begin');
      await app.query('update users set name = $1 where id = $2', [`sql ${n}`, id]);
      const { rows } = await app.query('select pg_current_xact_id()::text as txid');
      await app.query('commit');
      if (wait) await client.afterCommit(app, { txid: rows[0].txid });
    };
    for (let round = 0; round < SAMPLES; round++) {
      plainSql.push(await time(() => update(false)));
      afterCommit.push(await time(() => update(true)));
    }

    const lines = [
      `sequential calls, one client, ${SAMPLES} rounds interleaved (ms per call):`,
      ...[...samples].map(([name, xs]) => `  ${name.padEnd(28)} ${stats(xs)}`),
      `  ${"votes  until 'refreshed', spaced 1.2 s".padEnd(28)} ${stats(spaced)}`,
      'capture installed, plain pg transaction (UPDATE users + pg_current_xact_id + COMMIT):',
      `  ${'commit only'.padEnd(28)} ${stats(plainSql)}`,
      `  ${'commit + afterCommit(txid)'.padEnd(28)} ${stats(afterCommit)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await client.close();
    await app.end().catch(() => undefined);
    await daemon?.stop();
    await handle.close();
    await redisServer.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
