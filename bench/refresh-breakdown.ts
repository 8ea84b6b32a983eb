// Where a refresh's time goes: refresh.ts's work taken apart (diagnostic, no targets).
//
// The same work as bench/refresh.ts, piece by piece: the query alone, the Redis writes alone, the
// engine in this process without BullMQ, BullMQ with a no-op processor, memory of a 1M-row rebuild
// in fresh processes, and a CPU profile of the daemon (child process, --cpu-prof) per scenario.
// Run it when bench/refresh.ts misses a target.
//
//   node bench/refresh-breakdown.ts [--runs 3] [--only trending,user_stats,partials,memory,profile]

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import pg from 'pg';
import trendingView from '../demo/jobs/trending.ts';
import userStatsView from '../demo/jobs/user-stats.ts';
import { refreshJobOptions } from '../src/client/refresh.ts';
import { createDb, type DbHandle } from '../src/db/create-db.ts';
import { defineView } from '../src/index.ts';
import { createLogger } from '../src/logging/create-logger.ts';
import { createQueue } from '../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../src/redis/connections.ts';
import { loadScripts } from '../src/redis/scripts.ts';
import type { ViewDefinition } from '../src/views/define-view.ts';
import { createRefreshEngine, type RefreshEngine } from '../src/views/refresh-engine.ts';
import { InFlight } from '../src/views/writers/in-flight.ts';
import {
  clearBenchKeys,
  compiledSql,
  DATABASE_URL,
  migrateBenchDatabase,
  prepareDatabase,
  prepareJobsDir,
  REDIS_URL,
  ROOT,
} from './lib/bench-env.ts';
import { startDaemon } from './lib/daemon-process.ts';
import { printTable, type Summary, sleep, summarize } from './lib/stats.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    only: { type: 'string', default: 'trending,user_stats,partials,memory,profile' },
    child: { type: 'string' },
  },
});
const RUNS = Number(flags.runs);
const ONLY = new Set(flags.only!.split(','));
const PREFIX = 'vkdiag';
const now = () => performance.now();

interface Ctx {
  handle: DbHandle;
  client: pg.Client;
  redis: Redis;
  queueRedis: Redis;
  engine: RefreshEngine;
  engineBigChunks: RefreshEngine;
}

const rows: [string, Summary][] = [];
async function measure(label: string, fn: () => Promise<unknown>, unit = 'ms', runs = RUNS): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const t = now();
    const value = await fn();
    samples.push(unit === 'ms' ? now() - t : (value as number));
  }
  rows.push([label, summarize(samples, unit)]);
}

async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const stats = new Map<string, number>();
  for (const match of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) stats.set(match[1]!, Number(match[2]));
  return stats;
}

function statsDelta(before: Map<string, number>, after: Map<string, number>, per: number): string {
  const parts: string[] = [];
  let total = 0;
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0);
    if (delta <= 0 || name === 'info') continue;
    total += delta;
    parts.push(`${name} ${(delta / per).toFixed(2)}`);
  }
  return `${(total / per).toFixed(2)} Redis commands per item (${parts.join(', ')})`;
}

const notes: string[] = [];

async function zaddAll(
  redis: Redis,
  key: string,
  data: { post_id: string; score: string }[],
  inFlight: number,
) {
  const window = new InFlight<unknown>(inFlight);
  await redis.del(key);
  for (let i = 0; i < data.length; i += 1000) {
    const args: (string | number)[] = [];
    for (const row of data.slice(i, i + 1000)) args.push(row.score, row.post_id);
    await window.track(redis.zadd(key, ...args));
  }
  await window.drain();
}

async function trending(ctx: Ctx): Promise<void> {
  const sqlText = compiledSql(trendingView.query(ctx.handle.db, undefined));
  let data: { post_id: string; score: string }[] = [];
  await measure('trending: query, fetched whole (pg)', async () => {
    data = (await ctx.client.query(sqlText)).rows;
  });
  await measure('trending: query, streamed (Kysely + pg-cursor, 2000/read)', async () => {
    let n = 0;
    for await (const _ of trendingView.query(ctx.handle.db, undefined).stream({ chunkSize: 2000 })) n += 1;
    return n;
  });
  await measure('trending: query, streamed (10000/read)', async () => {
    for await (const _ of trendingView.query(ctx.handle.db, undefined).stream({ chunkSize: 10_000 }));
  });
  await measure('trending: ZADD ×1000, awaited one by one (writes of (b))', () =>
    zaddAll(ctx.redis, `${PREFIX}:trending:a`, data, 1),
  );
  await measure('trending: ZADD ×1000, 8 in flight (zset writer)', () =>
    zaddAll(ctx.redis, `${PREFIX}:trending:b`, data, 8),
  );
  await measure('trending: engine.refresh in-process (no queue), 2000/read', () =>
    ctx.engine.refresh(trendingView, undefined, { ignoreWindow: true }),
  );
  await measure('trending: engine.refresh in-process, 10000/read', () =>
    ctx.engineBigChunks.refresh(trendingView, undefined, { ignoreWindow: true }),
  );
  notes.push(`trending rows: ${data.length}`);
}

async function userStats(ctx: Ctx): Promise<void> {
  const sqlText = compiledSql(userStatsView.query(ctx.handle.db, undefined));
  let data: Record<string, string>[] = [];
  await measure('user_stats: query, fetched whole (pg)', async () => {
    data = (await ctx.client.query(sqlText)).rows;
  });
  await measure('user_stats: query, streamed (2000/read)', async () => {
    for await (const _ of userStatsView
      .query(ctx.handle.db, undefined, { from: '1', to: '50001' })
      .stream({ chunkSize: 2000 }));
  });
  await measure('user_stats: HSET+EXPIRE pipelines of 1000 (writes of (b))', async () => {
    for (let i = 0; i < data.length; i += 500) {
      const pipeline = ctx.redis.pipeline();
      for (const row of data.slice(i, i + 500)) {
        const key = `${PREFIX}:us:${row.user_id}`;
        pipeline.hset(key, {
          post_count: row.post_count!,
          total_upvotes: row.total_upvotes!,
          avg_upvotes: row.avg_upvotes!,
        });
        pipeline.expire(key, 3600);
      }
      await pipeline.exec();
    }
  });
  const scripts = loadScripts(ctx.redis);
  let seq = 0;
  await measure('user_stats: write-rows.lua ×500 rows, 8 in flight (row writer)', async () => {
    seq += 1;
    const window = new InFlight<number>(8);
    const header = [seq, 0, 'hash', 3, 'post_count', 'total_upvotes', 'avg_upvotes'];
    for (let i = 0; i < data.length; i += 500) {
      const args: (string | number)[] = [...header];
      for (const row of data.slice(i, i + 500)) {
        args.push(`${PREFIX}:us:${row.user_id}`, row.post_count!, row.total_upvotes!, row.avg_upvotes!);
      }
      await window.track(
        scripts.run<number>('vkWriteRows', [`${PREFIX}:view:diag:keys`, `${PREFIX}:view:diag`], args),
      );
    }
    await window.drain();
  });
  const phases: Record<string, number[]> = { begin: [], chunk: [], finish: [], total: [] };
  for (let i = 0; i < RUNS; i += 1) {
    const t0 = now();
    const begun = await ctx.engine.beginChunked(userStatsView, { ignoreWindow: true });
    if (begun.status !== 'started') throw new Error('busy');
    const t1 = now();
    const chunk = await ctx.engine.runChunk(userStatsView, { ...begun, range: begun.ranges[0]! });
    const t2 = now();
    await ctx.engine.finishChunked(userStatsView, { ...begun, ...chunk });
    const t3 = now();
    phases.begin!.push(t1 - t0);
    phases.chunk!.push(t2 - t1);
    phases.finish!.push(t3 - t2);
    phases.total!.push(t3 - t0);
  }
  rows.push([
    'user_stats: engine chunked rebuild in-process (what the job runs)',
    summarize(phases.total!, 'ms'),
  ]);
  rows.push(['    beginChunked (lock, seq, min/max query)', summarize(phases.begin!, 'ms')]);
  rows.push(['    runChunk (stream + write-rows.lua + history row)', summarize(phases.chunk!, 'ms')]);
  rows.push(['    finishChunked (sweep, finish-run.lua, history row)', summarize(phases.finish!, 'ms')]);
}

async function partials(ctx: Ctx): Promise<void> {
  const partialSql = compiledSql(userStatsView.query(ctx.handle.db, { user_id: '1' }));
  const N = 2000;
  await measure(`partials: SELECT one user, plain query, awaited (ms per ${N})`, async () => {
    for (let id = 1; id <= N; id += 1) await ctx.client.query(partialSql, [String(id)]);
  });
  await measure(
    `partials: SELECT one user via Kysely stream/pg-cursor from the pool (ms per ${N})`,
    async () => {
      for (let id = 1; id <= N; id += 1) {
        for await (const _ of userStatsView
          .query(ctx.handle.db, { user_id: String(id) })
          .stream({ chunkSize: 2000 }));
      }
    },
  );
  // the engine without BullMQ: `lanes` refreshes at a time, like the worker's concurrency
  const lanes = async (count: number, width: number, offset: number) => {
    let next = offset;
    await Promise.all(
      Array.from({ length: width }, async () => {
        while (next < offset + count) {
          const id = (next++ % 20000) + 1;
          await ctx.engine.refresh(userStatsView, { user_id: String(id) }, { ignoreWindow: true });
        }
      }),
    );
  };
  let offset = 0;
  for (const width of [1, 4, 16]) {
    await measure(
      `partials: engine.refresh in-process, ${width} at a time (keys/s)`,
      async () => {
        const t = now();
        await lanes(4000, width, offset);
        offset += 4000;
        return 4000_000 / (now() - t);
      },
      'keys/s',
    );
  }
  // batched partials (batchPartials): `size` keys per engine run, one run at a time
  for (const size of [50, 500]) {
    await measure(
      `partials: engine.refreshBatch in-process, ${size} keys per run (keys/s)`,
      async () => {
        const t = now();
        for (let done = 0; done < 4000; done += size) {
          const params = Array.from({ length: size }, (_, i) => ({
            user_id: String(((offset + done + i) % 20000) + 1),
          }));
          await ctx.engine.refreshBatch(userStatsView, params, { ignoreWindow: true });
        }
        offset += 4000;
        return 4000_000 / (now() - t);
      },
      'keys/s',
    );
  }
  const before = await commandStats(ctx.redis);
  await lanes(1000, 4, offset);
  notes.push(`engine partial: ${statsDelta(before, await commandStats(ctx.redis), 1000)}`);

  // BullMQ without the engine: pre-enqueued jobs with the same options, a no-op processor
  const queue = createQueue('diag-noop', ctx.queueRedis, PREFIX);
  // 256 = what the refresh worker holds at VK_REFRESH_CONCURRENCY 4 (64 jobs per slot)
  for (const concurrency of [4, 16, 256]) {
    await measure(
      `partials: BullMQ no-op worker, concurrency ${concurrency} (jobs/s)`,
      async () => {
        await queue.obliterate({ force: true });
        for (let from = 1; from <= 20000; from += 1000) {
          await queue.addBulk(
            Array.from({ length: 1000 }, (_, i) => {
              const params = { user_id: from + i };
              return { name: 'user_stats', data: { params }, opts: refreshJobOptions('user_stats', params) };
            }),
          );
        }
        const statsBefore = await commandStats(ctx.redis);
        let done = 0;
        const t = now();
        const finished = new Promise<void>((resolve) => {
          const worker = new Worker('diag-noop', async (_job: Job) => null, {
            connection: ctx.queueRedis,
            prefix: PREFIX,
            concurrency,
            removeOnComplete: { age: 3600, count: 1000 },
          });
          worker.on('completed', () => {
            done += 1;
            if (done === 20000) void worker.close().then(() => resolve());
          });
        });
        await finished;
        const rate = 20_000_000 / (now() - t);
        if (concurrency === 4)
          notes.push(`BullMQ no-op job: ${statsDelta(statsBefore, await commandStats(ctx.redis), 20000)}`);
        return rate;
      },
      'jobs/s',
      1,
    );
  }
  await queue.obliterate({ force: true });
  await queue.close();
}

// ---------------------------------------------------------------------------------------------
// memory: each variant in a fresh child process (RSS of this process would carry the other sections)

const bigView: ViewDefinition = defineView()({
  name: 'big',
  shape: 'zset',
  key: 'bench:big',
  member: '{id}',
  score: 'score',
  // biome-ignore lint/suspicious/noExplicitAny: bench_big is not in the demo schema
  query: (db) => (db as Kysely<any>).selectFrom('bench_big').select(['id', 'score']),
});

async function memoryChild(variant: string): Promise<void> {
  const handle = createDb(DATABASE_URL, { max: 4 });
  const redis = createRedis(REDIS_URL, { role: 'views', name: `${PREFIX}:diag` });
  await connectRedis(redis, REDIS_URL, 'REDIS_URL');
  const engine = createRefreshEngine({
    db: handle.db,
    redis,
    prefix: PREFIX,
    logger: createLogger({ level: 'silent' }),
  });
  await handle.ping();
  await sleep(300);
  const mb = (n: number) => n / 1048576;
  const idle = process.memoryUsage();
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
  }, 50);
  const t = now();
  if (variant === 'stream') {
    for await (const _ of bigView.query(handle.db, undefined).stream({ chunkSize: 2000 }));
  } else if (variant === 'stream+zadd') {
    // the zset writer's Redis pattern without the engine: ZADD ×1000, 8 in flight
    const window = new InFlight<unknown>(8);
    let args: (string | number)[] = [];
    for await (const row of bigView.query(handle.db, undefined).stream({ chunkSize: 2000 })) {
      args.push(Number(row.score), String(row.id));
      if (args.length >= 2000) {
        await window.track(redis.zadd(`${PREFIX}:big:tmp`, ...args));
        args = [];
      }
    }
    await window.drain();
    await redis.del(`${PREFIX}:big:tmp`);
  } else {
    await engine.refresh(bigView, undefined, { ignoreWindow: true });
  }
  const ms = now() - t;
  clearInterval(timer);
  process.stdout.write(
    `${JSON.stringify({ variant, ms, idleRss: mb(idle.rss), ...Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, mb(v)])) })}\n`,
  );
  await closeRedis(redis);
  await handle.close();
}

/** What runs in each fresh process, and with which V8 flags. */
const MEMORY_VARIANTS: { variant: string; nodeFlags: string[] }[] = [
  { variant: 'stream', nodeFlags: [] },
  { variant: 'stream+zadd', nodeFlags: [] },
  { variant: 'engine', nodeFlags: [] },
  // young-generation size: V8 grows it up to this (MB per semi-space) under a high allocation rate
  { variant: 'engine', nodeFlags: ['--max-semi-space-size=2'] },
  { variant: 'engine', nodeFlags: ['--max-semi-space-size=4'] },
  { variant: 'engine', nodeFlags: ['--max-semi-space-size=8'] },
];

async function memory(): Promise<void> {
  for (const { variant, nodeFlags } of MEMORY_VARIANTS) {
    const samples: Record<string, number>[] = [];
    for (let i = 0; i < RUNS; i += 1) {
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [...nodeFlags, import.meta.filename, '--child', variant], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let text = '';
        child.stdout.on('data', (chunk) => {
          text += chunk;
        });
        child.on('close', (code) =>
          code === 0 ? resolve(text) : reject(new Error(`memory child ${variant} exited ${code}`)),
        );
      });
      samples.push(JSON.parse(out.trim().split('\n').pop()!));
    }
    const label = `memory (${variant}${nodeFlags.length ? ` ${nodeFlags.join(' ')}` : ''}, fresh process)`;
    for (const field of ['ms', 'idleRss', 'rss', 'heapUsed', 'heapTotal']) {
      rows.push([
        `${label}: ${field === 'ms' ? 'time' : field === 'idleRss' ? 'RSS before' : `peak ${field}`}`,
        summarize(
          samples.map((s) => s[field]!),
          field === 'ms' ? 'ms' : 'MB',
        ),
      ]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// profile: the daemon (child process, --cpu-prof) under one scenario; self time by module

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

function moduleOf(url: string): string {
  if (url === '') return '(native / runtime)';
  if (url.startsWith('node:')) return 'node: built-ins';
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inModules) return inModules[1]!;
  const file = url.replace(/^file:\/\//, '');
  return path.relative(ROOT, file).startsWith('..') ? file : path.relative(ROOT, file);
}

async function profile(scenario: 'partials' | 'trending'): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vkbench-prof-'));
  const jobsDir = await prepareJobsDir();
  const daemon = startDaemon({
    DATABASE_URL,
    REDIS_URL,
    VK_PREFIX: PREFIX,
    LOG_LEVEL: 'warn',
    VK_JOBS_DIR: jobsDir,
    NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}`,
  });
  const connection = createRedis(REDIS_URL, { role: 'queue', name: `${PREFIX}:prof` });
  await connectRedis(connection, REDIS_URL, 'REDIS_URL');
  const queue = createQueue('refresh', connection, PREFIX);
  const drained = async () => {
    for (;;) {
      const counts = await daemon.guard(queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized'));
      if (Object.values(counts).every((n) => n === 0)) return;
      await sleep(20);
    }
  };
  const windowKey = `${PREFIX}:window:trending|*`;
  try {
    await queue.add('user_stats', { params: { user_id: 1 } });
    await drained();
    const started = now();
    if (scenario === 'partials') {
      for (let from = 1; from <= 20000; from += 1000) {
        await queue.addBulk(
          Array.from({ length: 1000 }, (_, i) => {
            const params = { user_id: from + i };
            return { name: 'user_stats', data: { params }, opts: refreshJobOptions('user_stats', params) };
          }),
        );
      }
      await drained();
    } else {
      for (let i = 0; i < 5; i += 1) {
        while ((await connection.pttl(windowKey)) > 0) await sleep(20);
        await queue.add('trending', {});
        await drained();
      }
    }
    notes.push(`profile ${scenario}: ${(now() - started).toFixed(0)} ms wall under --cpu-prof`);
  } finally {
    await queue.close();
    await closeRedis(connection);
    await daemon.stop();
    await rm(jobsDir, { recursive: true, force: true });
  }
  const file = (await readdir(dir)).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no CPU profile written:\n${daemon.output()}`);
  const prof = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
  };
  await rm(dir, { recursive: true, force: true });
  const byId = new Map(prof.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  for (const [i, id] of prof.samples.entries()) {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    total += us;
    const module = frame.functionName.startsWith('(') ? frame.functionName : moduleOf(frame.url);
    byModule.set(module, (byModule.get(module) ?? 0) + us);
    const fn = `${frame.functionName || '(anonymous)'} ${moduleOf(frame.url)}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const top = (map: Map<string, number>, n: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => `      ${((us / total) * 100).toFixed(1).padStart(5)} %  ${name}`)
      .join('\n');
  const per =
    scenario === 'partials'
      ? `, ${(total / 20000).toFixed(0)} µs per key`
      : `, ${(total / 5 / 1000).toFixed(0)} ms per rebuild`;
  notes.push(
    `profile ${scenario}: daemon busy ${(total / 1000).toFixed(0)} ms${per}; self time by module:\n${top(byModule, 14)}\n    top functions:\n${top(byFunction, 20)}`,
  );
}

async function main(): Promise<void> {
  if (flags.child) return memoryChild(flags.child);
  await migrateBenchDatabase();
  const handle = createDb(DATABASE_URL, { max: 8 });
  const client = new pg.Client({ connectionString: DATABASE_URL });
  const redis = createRedis(REDIS_URL, { role: 'views', name: `${PREFIX}:diag` });
  const queueRedis = createRedis(REDIS_URL, { role: 'queue', name: `${PREFIX}:diag-queue` });
  try {
    await prepareDatabase(handle);
    await client.connect();
    await connectRedis(redis, REDIS_URL, 'REDIS_URL');
    await connectRedis(queueRedis, REDIS_URL, 'REDIS_URL');
    await clearBenchKeys(redis, [PREFIX]);
    const logger = createLogger({ level: 'silent' });
    const ctx: Ctx = {
      handle,
      client,
      redis,
      queueRedis,
      engine: createRefreshEngine({ db: handle.db, redis, prefix: PREFIX, logger }),
      engineBigChunks: createRefreshEngine({
        db: handle.db,
        redis,
        prefix: PREFIX,
        logger,
        chunkSize: 10_000,
      }),
    };
    // warm-up: JIT, caches, script loading
    await ctx.engine.refresh(trendingView, undefined, { ignoreWindow: true });
    await ctx.engine.refresh(userStatsView, undefined, { ignoreWindow: true });
    if (ONLY.has('trending')) await trending(ctx);
    if (ONLY.has('user_stats')) await userStats(ctx);
    if (ONLY.has('partials')) await partials(ctx);
  } finally {
    await client.end().catch(() => undefined);
    await handle.close();
    await closeRedis(redis);
    await closeRedis(queueRedis);
  }
  if (ONLY.has('memory')) await memory();
  if (ONLY.has('profile')) for (const scenario of ['partials', 'trending'] as const) await profile(scenario);
  console.log(`\nrefresh breakdown — medians of ${RUNS} (in-process, no daemon)\n`);
  console.log(printTable(rows));
  for (const note of notes) console.log(`  ${note}`);
}

await main();
