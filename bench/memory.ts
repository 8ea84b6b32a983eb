// Daemon memory during a full rebuild of a large zset view, as an operator sees it: a fresh
// `viewkeeper start` (shipped flags) per size, one `refresh <view> --wait` through the CLI, then the
// daemon's VmHWM (peak resident set) from /proc. Memory must not grow with the view.
//
//   node bench/memory.ts [--sizes 1000000,3000000]
//
// Database vk_bench_memory (created once: table big(id, score) with the largest size's rows), a
// private redis-server on a free port (stopped at the end).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/db/migrate.ts';
import { startThrowawayRedis } from '../test/helpers/redis-server.ts';
import { readRss, startDaemon } from './lib/daemon-process.ts';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '1000000,3000000' } } });
const sizes = values.sizes.split(',').map(Number);
const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const DATABASE_URL = `${PG_BASE}/vk_bench_memory`;
const ROOT = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const log = (line: string) => process.stderr.write(`${line}\n`);

await migrate(DATABASE_URL);
const client = new pg.Client({ connectionString: DATABASE_URL });
await client.connect();
const largest = Math.max(...sizes);
await client.query('create table if not exists big (id bigint primary key, score double precision not null)');
const { rows } = await client.query<{ n: string }>('select count(*) as n from big');
if (Number(rows[0]!.n) !== largest) {
  log(`filling big with ${largest} rows`);
  await client.query('truncate big');
  await client.query('insert into big select i, (i * 7919) % 100000 from generate_series(1, $1::bigint) i', [
    largest,
  ]);
  await client.query('analyze big');
}
await client.end();

const jobs = mkdtempSync(path.join(os.tmpdir(), 'vk-bench-memory-'));
for (const size of sizes) {
  writeFileSync(
    path.join(jobs, `big_${size}.ts`),
    `import { defineView } from ${JSON.stringify(path.join(ROOT, 'src/index.ts'))};
export default defineView<{ big: { id: string; score: number } }>()({
  name: 'big_${size}', shape: 'zset', key: 'bench:big:${size}', member: '{id}', score: 'score',
  query: (db) => db.selectFrom('big').select(['id', 'score']).where('id', '<=', '${size}'),
});
`,
  );
}
const redis = await startThrowawayRedis();
const env = { DATABASE_URL, REDIS_URL: redis.url, VK_JOBS_DIR: jobs, VK_PREFIX: 'vkmem', LOG_LEVEL: 'warn' };
const results: { size: number; idle: number; peak: number; ms: number }[] = [];
try {
  for (const size of sizes) {
    const daemon = startDaemon(env);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idle = readRss(daemon.pid).hwm;
    const started = performance.now();
    execFileSync(
      process.execPath,
      [path.join(ROOT, 'bin/viewkeeper.js'), 'refresh', `big_${size}`, '--wait', '--timeout', '900'],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    const ms = performance.now() - started;
    results.push({ size, idle, peak: readRss(daemon.pid).hwm, ms });
    await daemon.stop();
  }
} finally {
  await redis.kill();
  rmSync(jobs, { recursive: true, force: true });
}

process.stdout.write(
  '| members | daemon idle VmHWM | peak VmHWM during the rebuild | refresh --wait |\n|---:|---:|---:|---:|\n',
);
for (const { size, idle, peak, ms } of results) {
  process.stdout.write(
    `| ${size.toLocaleString('en')} | ${idle.toFixed(0)} MB | ${peak.toFixed(0)} MB | ${(ms / 1000).toFixed(1)} s |\n`,
  );
}
const first = results[0]!;
for (const other of results.slice(1)) {
  process.stdout.write(
    `\npeak at ${other.size.toLocaleString('en')} vs ${first.size.toLocaleString('en')}: ${((other.peak / first.peak - 1) * 100).toFixed(1)} %; time ${(other.ms / first.ms).toFixed(2)}× for ${(other.size / first.size).toFixed(0)}× the rows\n`,
  );
}
