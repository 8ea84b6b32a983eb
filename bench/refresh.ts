// Full rebuilds, partial refreshes and daemon memory, against hand-written baselines in the same run.
//
// viewkeeper's daemon runs as a child process (`viewkeeper start`) and is driven through the refresh
// queue; the caching guide's per-user loop (a) and a careful set-based script (b) run in this
// process. Everything is timed as a user sees it: from `Queue.add` to the job's `completed` event
// (or the queue drained), with no window waited out and no pause between runs that a user would not
// pay. Method and latest results: bench/README.md.
//
//   node bench/refresh.ts [--runs 3] [--loop-users 2000] [--only full,groups,partials,bulk,same-key,memory]
//                         [--concurrency N] [--daemon-root DIR] [--daemon-node-options '...']
//   node bench/refresh.ts --cluster [--runs 3]   full rebuilds on a Redis Cluster vs standalone (lib/cluster-rebuilds.ts)
//
// --concurrency sets VK_REFRESH_CONCURRENCY for the daemon, --daemon-node-options its NODE_OPTIONS;
// --daemon-root runs the daemon (and the view files' library import) from another checkout, to A/B a
// patched copy of src/. BENCH_USERS=N runs on a smaller data set of its own (bench/lib/bench-env.ts).

import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import pg from 'pg';
import trendingView from '../demo/jobs/trending.ts';
import userStatsView from '../demo/jobs/user-stats.ts';
import { enqueueRefresh, refreshJobOptions } from '../src/client/refresh.ts';
import { QUEUES, type RefreshJobResult } from '../src/contract.ts';
import { createDb } from '../src/db/create-db.ts';
import { createQueue, createQueueEvents } from '../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../src/redis/connections.ts';
import { viewKeys } from '../src/redis/keys.ts';
import {
  BIG_ROWS,
  clearBenchKeys,
  compiledSql,
  DATABASE_URL,
  log,
  migrateBenchDatabase,
  POSTS,
  PREFIX,
  prepareDatabase,
  prepareJobsDir,
  REDIS_URL,
  ROOT,
  USERS,
  VOTES,
} from './lib/bench-env.ts';
import { runClusterBench } from './lib/cluster-rebuilds.ts';
import { backendPids, startCpu } from './lib/cpu.ts';
import { type DaemonProcess, readRss, sampleRss, startDaemon } from './lib/daemon-process.ts';
import { printTable, sleep, summarize } from './lib/stats.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'loop-users': { type: 'string', default: '2000' },
    only: { type: 'string', default: 'full,groups,partials,bulk,same-key,memory' },
    concurrency: { type: 'string' },
    'daemon-root': { type: 'string' },
    'daemon-node-options': { type: 'string' },
    cluster: { type: 'boolean', default: false },
  },
});
const ONLY = new Set(flags.only!.split(','));
const DAEMON_ROOT = path.resolve(flags['daemon-root'] ?? ROOT);
const RUNS = Number(flags.runs);
const LOOP_USERS = Number(flags['loop-users']);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs ${flags.runs}: expected a whole number ≥ 1`);
if (!Number.isInteger(LOOP_USERS) || LOOP_USERS < 1) {
  throw new Error(`--loop-users ${flags['loop-users']}: expected a whole number ≥ 1`);
}

const PARTIALS = 20_000;
/** Keys per bulk job in the bulk phase (PARTIALS keys in all). */
const BULK_SIZE = 1000;
const SAME_KEY_REQUESTS = 10_000;
/** Expiry the hand-written baselines set (the demo views have no ttl: the engine does no EXPIRE). */
const BASELINE_TTL = 3600;
const JOB_TIMEOUT_MS = 120_000;

const now = () => performance.now();

// ---------------------------------------------------------------------------------------------
// the hand-written baselines (bench process, one pg connection, one Redis connection)

async function perUserLoop(
  client: pg.Client,
  redis: Redis,
  partialSql: string,
  users: number,
): Promise<void> {
  for (let id = 1; id <= users; id += 1) {
    const { rows } = await client.query(partialSql, [String(id)]);
    const row = rows[0];
    if (!row) continue;
    const key = `${PREFIX}:loop:user_stats:${id}`;
    await redis.hset(key, {
      post_count: row.post_count,
      total_upvotes: row.total_upvotes,
      avg_upvotes: row.avg_upvotes,
    });
    await redis.expire(key, BASELINE_TTL);
  }
}

async function setBasedUserStats(client: pg.Client, redis: Redis, fullSql: string): Promise<number> {
  const { rows } = await client.query(fullSql);
  let pipeline = redis.pipeline();
  let commands = 0;
  const exec = async () => {
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
    pipeline = redis.pipeline();
    commands = 0;
  };
  for (const row of rows) {
    const key = `${PREFIX}:set:user_stats:${row.user_id}`;
    pipeline.hset(key, {
      post_count: row.post_count,
      total_upvotes: row.total_upvotes,
      avg_upvotes: row.avg_upvotes,
    });
    pipeline.expire(key, BASELINE_TTL);
    commands += 2;
    if (commands >= 1000) await exec();
  }
  if (commands > 0) await exec();
  return rows.length;
}

async function setBasedTrending(client: pg.Client, redis: Redis, fullSql: string): Promise<number> {
  const { rows } = await client.query(fullSql);
  const temp = `${PREFIX}:set:trending:tmp`;
  await redis.del(temp);
  for (let i = 0; i < rows.length; i += 1000) {
    const args: (string | number)[] = [];
    for (const row of rows.slice(i, i + 1000)) args.push(row.score, row.post_id);
    await redis.zadd(temp, ...args);
  }
  await redis.rename(temp, `${PREFIX}:set:trending:24h`);
  return rows.length;
}

/**
 * user_recent_votes by hand: one query that ranks each user's votes and keeps the newest 20, then
 * per user DEL + RPUSH of the JSON elements, pipelined (1000 commands a round trip).
 */
async function setBasedRecentVotes(client: pg.Client, redis: Redis): Promise<number> {
  const { rows } = await client.query(`
    select user_id, post_id, value, created_at from (
      select user_id, post_id, value, created_at,
             row_number() over (partition by user_id order by created_at desc, post_id desc) as n
      from votes) ranked
    where n <= 20 order by user_id, n`);
  const pipeline = createPipelines(redis);
  let i = 0;
  while (i < rows.length) {
    const user = rows[i].user_id;
    const elements: string[] = [];
    for (; i < rows.length && rows[i].user_id === user; i += 1) {
      const row = rows[i];
      elements.push(JSON.stringify({ created_at: row.created_at, post_id: row.post_id, value: row.value }));
    }
    const key = `${PREFIX}:set:user_recent_votes:${user}`;
    await pipeline.add((p) => p.del(key).rpush(key, ...elements), 2);
  }
  await pipeline.flush();
  return rows.length;
}

/** post_voters_today by hand: one query, then per post DEL + SADD of its voters, pipelined. */
async function setBasedVotersToday(client: pg.Client, redis: Redis): Promise<number> {
  const { rows } = await client.query(`
    select post_id, user_id from votes where created_at > now() - interval '24 hours' order by post_id`);
  const pipeline = createPipelines(redis);
  let i = 0;
  while (i < rows.length) {
    const post = rows[i].post_id;
    const members: string[] = [];
    for (; i < rows.length && rows[i].post_id === post; i += 1) members.push(rows[i].user_id);
    const key = `${PREFIX}:set:post_voters_today:${post}`;
    await pipeline.add((p) => p.del(key).sadd(key, ...members), 2);
  }
  await pipeline.flush();
  return rows.length;
}

/** A pipeline sent every 1000 commands, failing on the first command that failed. */
function createPipelines(redis: Redis) {
  let pipeline = redis.pipeline();
  let commands = 0;
  const flush = async () => {
    if (commands === 0) return;
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
    pipeline = redis.pipeline();
    commands = 0;
  };
  return {
    async add(queue: (p: ReturnType<Redis['pipeline']>) => void, count: number) {
      queue(pipeline);
      commands += count;
      if (commands >= 1000) await flush();
    },
    flush,
  };
}

// ---------------------------------------------------------------------------------------------
// viewkeeper through the queue

interface Producer {
  connection: Redis;
  queue: Queue;
  events: QueueEvents;
  views: Redis;
}

async function fullRebuild(
  p: Producer,
  daemon: DaemonProcess,
  view: string,
): Promise<{ ms: number; engineMs: number; rows: number }> {
  const started = now();
  const job = await enqueueRefresh(p.queue, view, undefined, { coalesce: false });
  const result = await daemon.guard(job.waitUntilFinished(p.events, JOB_TIMEOUT_MS));
  return { ms: now() - started, engineMs: result.ms, rows: result.rows };
}

const PENDING_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const;

async function drained(p: Producer, daemon: DaemonProcess, pollMs = 10): Promise<void> {
  for (;;) {
    const counts = await daemon.guard(p.queue.getJobCounts(...PENDING_STATES));
    if (Object.values(counts).every((n) => n === 0)) return;
    await sleep(pollMs);
  }
}

async function version(views: Redis, view: string): Promise<number> {
  return Number((await views.hget(viewKeys(PREFIX, view).meta, 'version')) ?? 0);
}

async function partialThroughput(
  p: Producer,
  daemon: DaemonProcess,
): Promise<{ ms: number; enqueueMs: number; runs: number }> {
  const before = await version(p.views, 'user_stats');
  const started = now();
  for (let from = 1; from <= PARTIALS; from += 1000) {
    const jobs = [];
    for (let id = from; id < from + 1000 && id <= PARTIALS; id += 1) {
      const params = { user_id: id };
      jobs.push({ name: 'user_stats', data: { params }, opts: refreshJobOptions('user_stats', params) });
    }
    await p.queue.addBulk(jobs);
  }
  const enqueueMs = now() - started;
  await drained(p, daemon);
  const ms = now() - started;
  return { ms, enqueueMs, runs: (await version(p.views, 'user_stats')) - before };
}

/**
 * PARTIALS distinct user_stats keys as bulk jobs of BULK_SIZE, all added at once (`addBulk`); time
 * until every job has completed (its `completed` event).
 */
async function bulkThroughput(
  p: Producer,
  daemon: DaemonProcess,
): Promise<{ ms: number; runs: number; failed: number }> {
  const before = await version(p.views, 'user_stats');
  const jobs = [];
  for (let from = 1; from <= PARTIALS; from += BULK_SIZE) {
    const params = [];
    for (let id = from; id < from + BULK_SIZE && id <= PARTIALS; id += 1) params.push({ user_id: id });
    jobs.push({ name: 'user_stats', data: { params }, opts: refreshJobOptions('user_stats', params) });
  }
  const started = now();
  const added = await p.queue.addBulk(jobs);
  const results = (await daemon.guard(
    Promise.all(added.map((job) => job.waitUntilFinished(p.events, JOB_TIMEOUT_MS))),
  )) as RefreshJobResult[];
  const ms = now() - started;
  const failed = results.reduce((sum, result) => sum + (result.failed ?? 0), 0);
  return { ms, runs: (await version(p.views, 'user_stats')) - before, failed };
}

/** SAME_KEY_REQUESTS requests for user_stats user_id=1, in 50 bursts spread over ~1 s. */
async function sameKeyBurst(
  p: Producer,
  daemon: DaemonProcess,
): Promise<{ runs: number; enqueueMs: number }> {
  const params = { user_id: 1 };
  await drained(p, daemon);
  const before = await version(p.views, 'user_stats');
  const bursts = 50;
  const started = now();
  for (let b = 0; b < bursts; b += 1) {
    const due = started + (b * 1000) / bursts;
    if (now() < due) await sleep(due - now());
    await Promise.all(
      Array.from({ length: SAME_KEY_REQUESTS / bursts }, () => enqueueRefresh(p.queue, 'user_stats', params)),
    );
  }
  const enqueueMs = now() - started;
  await drained(p, daemon, 20);
  return { runs: (await version(p.views, 'user_stats')) - before, enqueueMs };
}

// ---------------------------------------------------------------------------------------------

async function connectProducer(): Promise<Producer> {
  const connection = createRedis(REDIS_URL, { role: 'queue', name: `${PREFIX}:bench-queue` });
  await connectRedis(connection, REDIS_URL, 'REDIS_URL');
  const views = createRedis(REDIS_URL, { role: 'views', name: `${PREFIX}:bench-views` });
  await connectRedis(views, REDIS_URL, 'REDIS_URL');
  const queue = createQueue(QUEUES.refresh, connection, PREFIX);
  const events = createQueueEvents(QUEUES.refresh, connection, PREFIX);
  await events.waitUntilReady();
  return { connection, queue, events, views };
}

async function closeProducer(p: Producer): Promise<void> {
  await p.events.close().catch(() => undefined);
  await p.queue.close().catch(() => undefined);
  await closeRedis(p.views);
  await closeRedis(p.connection);
}

const samples: Record<string, number[]> = {};
function add(name: string, value: number): void {
  samples[name] ??= [];
  samples[name].push(value);
}

/** Runs `fn`, recording its wall time as `${name}_ms` and each process's CPU time beside it. */
async function timed<T>(
  name: string,
  cpu: { nodePid: number; backends: () => Promise<number[]>; redis: Redis } | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  const meter = cpu ? await startCpu(cpu.nodePid, cpu.backends, cpu.redis) : undefined;
  const started = now();
  const result = await fn();
  add(`${name}_ms`, now() - started);
  if (meter) {
    const split = await meter.stop();
    add(`${name}_cpu_node_ms`, split.node);
    add(`${name}_cpu_postgres_ms`, split.postgres);
    add(`${name}_cpu_redis_ms`, split.redis);
    add(`${name}_cpu_bench_ms`, split.bench);
  }
  return result;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  log(`refresh bench: ${RUNS} runs, per-user loop on ${Math.min(LOOP_USERS, USERS)} users`);
  await migrateBenchDatabase();
  const handle = createDb(DATABASE_URL, { max: 2 });
  const client = new pg.Client({ connectionString: DATABASE_URL, application_name: 'vkbench-baseline' });
  const monitor = new pg.Client({ connectionString: DATABASE_URL, application_name: 'vkbench-monitor' });
  let jobsDir: string | undefined;
  let daemon: DaemonProcess | undefined;
  let producer: Producer | undefined;
  let data: { seeded: boolean; trendingRows: number };
  try {
    data = await prepareDatabase(handle);
    await client.connect();
    await monitor.connect();
    const baselineBackend = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!
      .pid;
    const partialSql = compiledSql(userStatsView.query(handle.db, { user_id: '1' }));
    const userStatsSql = compiledSql(userStatsView.query(handle.db, undefined));
    const trendingSql = compiledSql(trendingView.query(handle.db, undefined));

    const flush = createRedis(REDIS_URL, { role: 'views', name: `${PREFIX}:bench-flush` });
    await connectRedis(flush, REDIS_URL, 'REDIS_URL');
    await clearBenchKeys(flush, [PREFIX]);
    await closeRedis(flush);

    jobsDir = await prepareJobsDir(DAEMON_ROOT);
    const env: Record<string, string> = {
      DATABASE_URL,
      REDIS_URL,
      VK_PREFIX: PREFIX,
      LOG_LEVEL: 'warn',
      VK_JOBS_DIR: jobsDir,
    };
    if (flags.concurrency) env.VK_REFRESH_CONCURRENCY = flags.concurrency;
    if (flags['daemon-node-options']) env.NODE_OPTIONS = flags['daemon-node-options'];
    daemon = startDaemon(env, DAEMON_ROOT);
    producer = await connectProducer();
    const p = producer;
    const d = daemon;
    const rssWhole = sampleRss(d.pid, 50);
    const baselineCpu = { nodePid: process.pid, backends: async () => [baselineBackend], redis: p.views };
    const daemonCpu = {
      nodePid: d.pid,
      backends: () => backendPids(monitor, 'viewkeeper-daemon'),
      redis: p.views,
    };

    // Warm-up (not measured): daemon start-up, JIT, script loading, Postgres caches.
    log('warm-up…');
    await fullRebuild(p, d, 'user_stats');
    await fullRebuild(p, d, 'trending');
    await perUserLoop(client, p.views, partialSql, 200);
    await setBasedUserStats(client, p.views, userStatsSql);
    await setBasedTrending(client, p.views, trendingSql);
    if (ONLY.has('groups')) {
      await fullRebuild(p, d, 'user_recent_votes');
      await fullRebuild(p, d, 'post_voters_today');
      await setBasedRecentVotes(client, p.views);
      await setBasedVotersToday(client, p.views);
    }

    const loopUsers = Math.min(LOOP_USERS, USERS);
    for (let run = 1; ONLY.has('full') && run <= RUNS; run += 1) {
      log(`run ${run}/${RUNS}: full rebuilds`);
      const started = now();
      await perUserLoop(client, p.views, partialSql, loopUsers);
      add('a_loop_ms', ((now() - started) * USERS) / loopUsers);

      // b and c take turns going first, so neither always finds the caches the other one warmed.
      const pair = async <B, C>(b: () => Promise<B>, c: () => Promise<C>): Promise<[B, C]> => {
        if (run % 2 === 1) {
          const first = await b();
          return [first, await c()];
        }
        const second = await c();
        return [await b(), second];
      };
      const [usRows, c] = await pair(
        () => timed('b_user_stats', baselineCpu, () => setBasedUserStats(client, p.views, userStatsSql)),
        () => timed('c_user_stats', daemonCpu, () => fullRebuild(p, d, 'user_stats')),
      );
      add('c_user_stats_engine_ms', c.engineMs);
      if (c.rows !== usRows)
        throw new Error(`user_stats: viewkeeper wrote ${c.rows} rows, baseline ${usRows}`);

      const [trRows, ct] = await pair(
        () => timed('b_trending', baselineCpu, () => setBasedTrending(client, p.views, trendingSql)),
        () => timed('c_trending', daemonCpu, () => fullRebuild(p, d, 'trending')),
      );
      add('c_trending_engine_ms', ct.engineMs);
      // The floor: the view's own query, fetched whole and parsed in this process, nothing written.
      await timed('q_trending', baselineCpu, () => client.query(trendingSql));
      // both read "now() - 24 h", a few hundred ms apart: allow votes crossing the boundary
      if (Math.abs(ct.rows - trRows) > trRows * 0.01) {
        throw new Error(`trending: viewkeeper wrote ${ct.rows} rows, baseline ${trRows}`);
      }
    }

    for (let run = 1; ONLY.has('groups') && run <= RUNS; run += 1) {
      log(`run ${run}/${RUNS}: list and set rebuilds`);
      const listRows = await timed('b_recent_votes', baselineCpu, () => setBasedRecentVotes(client, p.views));
      const cl = await timed('c_recent_votes', daemonCpu, () => fullRebuild(p, d, 'user_recent_votes'));
      add('c_recent_votes_engine_ms', cl.engineMs);
      if (cl.rows !== listRows) {
        throw new Error(`user_recent_votes: viewkeeper wrote ${cl.rows} rows, baseline ${listRows}`);
      }
      const setRows = await timed('b_voters_today', baselineCpu, () => setBasedVotersToday(client, p.views));
      const cs = await timed('c_voters_today', daemonCpu, () => fullRebuild(p, d, 'post_voters_today'));
      add('c_voters_today_engine_ms', cs.engineMs);
      if (Math.abs(cs.rows - setRows) > setRows * 0.01) {
        throw new Error(`post_voters_today: viewkeeper wrote ${cs.rows} rows, baseline ${setRows}`);
      }
    }

    for (let run = 1; ONLY.has('partials') && run <= RUNS; run += 1) {
      log(`run ${run}/${RUNS}: ${PARTIALS} partial refreshes`);
      const r = await timed('partial', daemonCpu, () => partialThroughput(p, d));
      add('partial_enqueue_ms', r.enqueueMs);
      add('partial_keys_per_s', (PARTIALS * 1000) / samples.partial_ms!.at(-1)!);
      add('partial_runs', r.runs);
    }

    for (let run = 1; ONLY.has('bulk') && run <= RUNS; run += 1) {
      log(`run ${run}/${RUNS}: ${PARTIALS} keys as bulk jobs of ${BULK_SIZE}`);
      const r = await timed('bulk', daemonCpu, () => bulkThroughput(p, d));
      if (r.failed > 0) throw new Error(`bulk: ${r.failed} keys failed`);
      add('bulk_keys_per_s', (PARTIALS * 1000) / r.ms);
      add('bulk_runs', r.runs);
    }

    for (let run = 1; ONLY.has('same-key') && run <= RUNS; run += 1) {
      log(`run ${run}/${RUNS}: ${SAME_KEY_REQUESTS} requests for one key`);
      const r = await sameKeyBurst(p, d);
      add('same_key_runs', r.runs);
      add('same_key_enqueue_ms', r.enqueueMs);
    }
    add('daemon_rss_peak_main_mb', rssWhole.stop().peak);

    await d.stop();
    await closeProducer(p);
    producer = undefined;

    if (ONLY.has('memory')) {
      // Memory: a fresh daemon, full rebuilds of `big` (1M zset members).
      log('memory: fresh daemon, full rebuilds of big (1M rows)');
      daemon = startDaemon(env, DAEMON_ROOT);
      producer = await connectProducer();
      const m = producer;
      const md = daemon;
      // readiness: one cheap partial refresh through the queue
      const ready = await enqueueRefresh(m.queue, 'user_stats', { user_id: 2 });
      await md.guard(ready.waitUntilFinished(m.events, JOB_TIMEOUT_MS));
      await sleep(500);
      add('daemon_rss_idle_mb', readRss(md.pid).rss);
      const bigCpu = { ...daemonCpu, nodePid: md.pid, redis: m.views };
      for (let run = 1; run <= RUNS; run += 1) {
        log(`run ${run}/${RUNS}: big`);
        const sampler = sampleRss(md.pid, 50);
        const r = await timed('big', bigCpu, () => fullRebuild(m, md, 'big'));
        add('big_rss_peak_mb', sampler.stop().peak);
        if (r.rows !== BIG_ROWS) throw new Error(`big: ${r.rows} rows, expected ${BIG_ROWS}`);
      }
      add('big_rss_hwm_mb', readRss(md.pid).hwm);
      await md.stop();
    }
    daemon = undefined;
  } finally {
    if (producer) await closeProducer(producer);
    if (daemon) await daemon.stop(5000);
    await client.end().catch(() => undefined);
    await monitor.end().catch(() => undefined);
    await handle.close();
    if (jobsDir) await rm(jobsDir, { recursive: true, force: true });
  }
  await report(startedAt, data);
}

function unitOf(name: string): string {
  if (name.endsWith('_ms')) return 'ms';
  if (name.endsWith('_mb')) return 'MB';
  if (name.endsWith('_per_s')) return 'keys/s';
  return 'runs';
}

async function report(startedAt: Date, data: { seeded: boolean; trendingRows: number }): Promise<void> {
  const s = Object.fromEntries(
    Object.entries(samples).map(([name, xs]) => [name, summarize(xs, unitOf(name))]),
  );
  const med = (name: string) => s[name]?.median ?? Number.NaN;
  const loopUsers = Math.min(LOOP_USERS, USERS);
  const ratios = {
    c_over_b_user_stats: med('c_user_stats_ms') / med('b_user_stats_ms'),
    c_over_b_trending: med('c_trending_ms') / med('b_trending_ms'),
    c_over_q_trending: med('c_trending_ms') / med('q_trending_ms'),
    c_over_b_recent_votes: med('c_recent_votes_ms') / med('b_recent_votes_ms'),
    c_over_b_voters_today: med('c_voters_today_ms') / med('b_voters_today_ms'),
    a_over_c_user_stats: med('a_loop_ms') / med('c_user_stats_ms'),
  };
  // The same ratios per run (b and c of one run are seconds apart): less exposed to load drifting
  // across the whole bench.
  const paired = (top: string, bottom: string) => {
    const xs = samples[top]?.map((value, i) => value / samples[bottom]![i]!) ?? [];
    return xs.length > 0 ? summarize(xs, 'ratio').median : Number.NaN;
  };
  const pairedRatios = {
    c_over_b_user_stats: paired('c_user_stats_ms', 'b_user_stats_ms'),
    c_over_b_trending: paired('c_trending_ms', 'b_trending_ms'),
    c_over_q_trending: paired('c_trending_ms', 'q_trending_ms'),
    c_over_b_recent_votes: paired('c_recent_votes_ms', 'b_recent_votes_ms'),
    c_over_b_voters_today: paired('c_voters_today_ms', 'b_voters_today_ms'),
    a_over_c_user_stats: paired('a_loop_ms', 'c_user_stats_ms'),
  };
  const checks = [
    { name: 'c_over_b_user_stats', value: ratios.c_over_b_user_stats, target: 0.6, atMost: true },
    { name: 'c_over_b_trending', value: ratios.c_over_b_trending, target: 0.7, atMost: true },
    { name: 'c_over_q_trending', value: ratios.c_over_q_trending, target: 1.2, atMost: true },
    { name: 'c_over_b_recent_votes', value: ratios.c_over_b_recent_votes, target: 0.7, atMost: true },
    { name: 'c_over_b_voters_today', value: ratios.c_over_b_voters_today, target: 0.7, atMost: true },
    { name: 'a_over_c_user_stats', value: ratios.a_over_c_user_stats, target: 20, atMost: false },
    { name: 'partial_keys_per_s (median)', value: med('partial_keys_per_s'), target: 5000, atMost: false },
    { name: 'bulk_keys_per_s (median)', value: med('bulk_keys_per_s'), target: 30_000, atMost: false },
    {
      name: 'same_key_runs (worst run)',
      value: s.same_key_runs?.max ?? Number.NaN,
      target: 15,
      atMost: true,
    },
    {
      name: 'big_rss_peak_mb (worst run)',
      value: s.big_rss_peak_mb?.max ?? Number.NaN,
      target: 200,
      atMost: true,
    },
  ]
    .map((check) => ({
      ...check,
      paired: (pairedRatios as Record<string, number>)[check.name] ?? Number.NaN,
    }))
    .filter((check) => !Number.isNaN(check.value))
    .map((check) => ({
      ...check,
      met: check.atMost ? check.value <= check.target : check.value >= check.target,
    }));

  const labels: [string, string][] = [
    ['a_loop_ms', `(a) per-user loop, 20k users (measured on first ${loopUsers}, ×${USERS / loopUsers})`],
    ['b_user_stats_ms', '(b) user_stats: GROUP BY + HSET/EXPIRE pipelines of 1000'],
    ['c_user_stats_ms', '(c) user_stats: viewkeeper full rebuild, enqueue → completed'],
    ['c_user_stats_engine_ms', '    of which inside the engine (job result ms)'],
    ['b_trending_ms', '(b) trending: GROUP BY + ZADD ×1000 + RENAME'],
    ['c_trending_ms', '(c) trending: viewkeeper full rebuild, enqueue → completed'],
    ['c_trending_engine_ms', '    of which inside the engine (job result ms)'],
    ['q_trending_ms', '(q) trending: the view query alone, fetched and parsed'],
    ['b_recent_votes_ms', '(b) user_recent_votes: ranked query + DEL/RPUSH pipelines of 1000'],
    ['c_recent_votes_ms', '(c) user_recent_votes (list): viewkeeper full rebuild, enqueue → completed'],
    ['c_recent_votes_engine_ms', '    of which inside the engine (job result ms)'],
    ['b_voters_today_ms', '(b) post_voters_today: query + DEL/SADD pipelines of 1000'],
    ['c_voters_today_ms', '(c) post_voters_today (set): viewkeeper full rebuild, enqueue → completed'],
    ['c_voters_today_engine_ms', '    of which inside the engine (job result ms)'],
    ['partial_ms', `partials: ${PARTIALS} distinct user_stats, enqueue → drained`],
    ['partial_enqueue_ms', '    of which addBulk (20 × 1000, awaited in turn)'],
    ['partial_keys_per_s', 'partials: throughput'],
    ['partial_runs', '    runs (version delta)'],
    [
      'bulk_ms',
      `bulk: ${PARTIALS} keys as ${PARTIALS / BULK_SIZE} jobs of ${BULK_SIZE}, addBulk → all completed`,
    ],
    ['bulk_keys_per_s', 'bulk: throughput'],
    ['bulk_runs', '    runs (version delta)'],
    ['same_key_runs', `one key: ${SAME_KEY_REQUESTS} requests within ~1 s → runs`],
    ['same_key_enqueue_ms', '    enqueue span'],
    ['daemon_rss_peak_main_mb', 'daemon RSS peak over all of the above'],
    ['daemon_rss_idle_mb', 'fresh daemon RSS, idle'],
    ['big_ms', `big: full rebuild of ${BIG_ROWS} zset members, enqueue → completed`],
    ['big_rss_peak_mb', '    daemon RSS peak (VmRSS every 50 ms)'],
    ['big_rss_hwm_mb', '    daemon VmHWM after all runs'],
  ];
  const out: string[] = [];
  out.push(
    `refresh bench — ${startedAt.toISOString()} — medians of ${RUNS} runs (2-core shared machine: compare ratios)`,
    `data: ${USERS} users, ${POSTS} posts, ${VOTES} votes; ${data.trendingRows} posts voted in the last 24 h${data.seeded ? ' (seeded now)' : ''}`,
    '',
    printTable(labels.filter(([name]) => s[name]).map(([name, label]) => [label, s[name]!])),
    '',
    'CPU time per process, medians (ms; partials: µs per key). node = the process doing the work',
    '(the daemon for c/partials/big, this process for b); redis = the whole server.',
  );
  const cpuRows: [string, string, number][] = [
    ['(b) user_stats', 'b_user_stats', 1],
    ['(c) user_stats', 'c_user_stats', 1],
    ['(b) trending', 'b_trending', 1],
    ['(c) trending', 'c_trending', 1],
    ['(q) trending', 'q_trending', 1],
    ['(b) recent_votes', 'b_recent_votes', 1],
    ['(c) recent_votes', 'c_recent_votes', 1],
    ['(b) voters_today', 'b_voters_today', 1],
    ['(c) voters_today', 'c_voters_today', 1],
    ['partials, per key', 'partial', 1000 / PARTIALS],
    ['bulk, per key', 'bulk', 1000 / PARTIALS],
    ['big', 'big', 1],
  ];
  out.push(
    `  ${'work'.padEnd(18)}${['wall', 'node', 'postgres', 'redis', 'producer'].map((h) => h.padStart(10)).join('')}`,
  );
  for (const [label, name, scale] of cpuRows) {
    if (!s[`${name}_ms`]) continue;
    const cells = ['_ms', '_cpu_node_ms', '_cpu_postgres_ms', '_cpu_redis_ms', '_cpu_bench_ms'].map(
      (suffix) => (med(`${name}${suffix}`) * scale).toFixed(0).padStart(10),
    );
    out.push(`  ${label.padEnd(18)}${cells.join('')}`);
  }
  out.push('', 'targets (ratios: of medians; "paired" = median of the per-run ratios)');
  for (const check of checks) {
    const off = check.met
      ? ''
      : ` — off by ${check.atMost ? `+${((check.value / check.target - 1) * 100).toFixed(0)} %` : `−${((1 - check.value / check.target) * 100).toFixed(0)} %`}`;
    out.push(
      `  ${check.name.padEnd(28)} ${check.value.toFixed(check.value < 10 ? 2 : 0).padStart(8)}   target ${check.atMost ? '≤' : '≥'} ${check.target}: ${check.met ? 'met' : 'NOT met'}${off}${Number.isNaN(check.paired) ? '' : `   (paired ${check.paired.toFixed(2)})`}`,
    );
  }
  console.log(`\n${out.join('\n')}`);

  const resultsDir = path.join(ROOT, 'bench/results');
  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `refresh-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg(),
  };
  const json = {
    bench: 'refresh',
    startedAt,
    runs: RUNS,
    loopUsers,
    machine,
    data: { users: USERS, posts: POSTS, votes: VOTES, ...data },
    measurements: s,
    ratios,
    pairedRatios,
    targets: checks,
  };
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(ROOT, file)}`);
}

if (flags.cluster) await runClusterBench(RUNS);
else await main();
