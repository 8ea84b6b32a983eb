// Write-behind: end-to-end throughput (producers → queue → committed in Postgres) of the daemon's
// batched worker against a naive consumer doing one statement per op, in the same run; and freshness
// (client.write resolving → post_votes reflecting the write) at a steady rate.
//
// Usage: node bench/writebehind.ts [--ops 100000] [--naive-ops 10000] [--rate 1000] [--seconds 10]
//        [--freshness-only]
// BENCH_DEBUG=1 prints the refresh backlog per priority level every second of the freshness phase;
// BENCH_DAEMON_NODE_OPTIONS is passed to the daemon as NODE_OPTIONS (e.g. "--cpu-prof").
//
// Everything runs on this machine: Postgres, Redis, the daemon (`viewkeeper start`, a child process),
// the producers (this process) and, for the baseline, the naive consumer (another child process).
// Database vk_bench_wb (reseeded every run: 10,000 users, 100,000 posts, 1,000,000 votes), Redis
// database 5 (flushed; BENCH_WB_REDIS_URL to change), prefix vkbwb.
import { fork } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { seedDemo } from '../demo/seed.ts';
import { createWriter, type Writer } from '../src/client/write.ts';
import { QUEUES, type WriteBehindJobData } from '../src/contract.ts';
import { createDb } from '../src/db/create-db.ts';
import { migrate } from '../src/db/migrate.ts';
import { createQueue } from '../src/queues/factories.ts';
import { sinksOf } from '../src/queues/write-behind-payload.ts';
import { closeRedis, connectRedis, createRedis } from '../src/redis/connections.ts';
import { refreshBacklogKey } from '../src/sinks/refresh-backlog.ts';
import { loadRegistry } from '../src/views/registry.ts';
import { startDaemon } from './lib/daemon-process.ts';

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '100000' },
    'naive-ops': { type: 'string', default: '10000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    'naive-worker': { type: 'boolean', default: false },
    /** Skip the throughput and baseline phases (freshness only). */
    'freshness-only': { type: 'boolean', default: false },
  },
});
const OPS = Number(values.ops);
const NAIVE_OPS = Number(values['naive-ops']);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const DATABASE_URL = `${PG_BASE}/vk_bench_wb`;
const REDIS_URL = process.env.BENCH_WB_REDIS_URL ?? 'redis://127.0.0.1:6379/5';
const PREFIX = 'vkbwb';
const NAIVE_PREFIX = 'vkbwb_naive';
const REPO = path.resolve(import.meta.dirname, '..');
const USERS = 10_000;
const POSTS_PER_USER = 10;
const POSTS = USERS * POSTS_PER_USER;
const PRODUCERS = 8;
const CALL_OPS = 100;
const NAIVE_CONCURRENCY = 16;

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The naive consumer (child process): a plain BullMQ worker, one upsert + one recount per op, autocommit. */
async function naiveWorker(): Promise<void> {
  const handle = createDb(DATABASE_URL, { max: NAIVE_CONCURRENCY, applicationName: 'bench-naive' });
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const worker = new Worker<WriteBehindJobData>(
    QUEUES.writeBehind,
    async (job: Job<WriteBehindJobData>) => {
      for (const op of job.data.ops) {
        await sql`insert into votes (post_id, user_id, value, created_at)
                  values (${op.post_id}, ${op.user_id}, ${op.value}, now())
                  on conflict (post_id, user_id) do update set value = excluded.value, created_at = excluded.created_at`.execute(
          handle.db,
        );
        await sql`update posts set upvotes = (select coalesce(sum(value), 0) from votes where post_id = ${op.post_id})
                  where id = ${op.post_id}`.execute(handle.db);
      }
      return job.data.ops.length;
    },
    { connection, prefix: NAIVE_PREFIX, concurrency: NAIVE_CONCURRENCY },
  );
  process.on('message', async () => {
    await worker.close();
    await connection.quit();
    await handle.close();
    process.exit(0);
  });
  await worker.waitUntilReady();
  process.send!('ready');
}

/** Repo's jobs/ without cron schedules, so no scheduled rebuild lands inside a measurement. */
function jobsDir(): string {
  const dir = path.join(REPO, 'bench', 'results', 'jobs-writebehind');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const file of [
    'user.ts',
    'user-stats.ts',
    'post-votes.ts',
    'trending.ts',
    'trending-posts.ts',
    'sink-votes.ts',
    'sink-users.ts',
  ]) {
    writeFileSync(
      path.join(dir, file),
      `import base from ${JSON.stringify(path.join(REPO, 'jobs', file))};\nexport default { ...base, schedule: undefined };\n`,
    );
  }
  return dir;
}

type Workload = 'uniform' | 'skewed';

/**
 * Random vote ops, ±1, by uniformly random users on posts drawn uniformly (`uniform`: nearly every op
 * a different post) or with density ∝ 1/rank (`skewed`: a few hot posts get most votes, as on a real
 * site — the rows written are still nearly all distinct (post, user) pairs).
 */
function voteOps(
  count: number,
  seed: number,
  workload: Workload,
): { post_id: number; user_id: number; value: number }[] {
  const next = random(seed);
  return Array.from({ length: count }, () => ({
    post_id:
      workload === 'uniform'
        ? 1 + Math.floor(next() * POSTS)
        : Math.floor(Math.exp(next() * Math.log(POSTS))),
    user_id: 1 + Math.floor(next() * USERS),
    value: next() < 0.7 ? 1 : -1,
  }));
}

/** Writes `ops` with PRODUCERS concurrent producers, CALL_OPS ops per write() call. */
async function produce(writer: Writer, ops: ReturnType<typeof voteOps>): Promise<number> {
  const started = performance.now();
  let nextCall = 0;
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      for (;;) {
        const start = nextCall++ * CALL_OPS;
        if (start >= ops.length) return;
        await writer.write('votes', ops.slice(start, start + CALL_OPS));
      }
    }),
  );
  return performance.now() - started;
}

async function main(): Promise<void> {
  if (values['naive-worker']) return naiveWorker();

  log('preparing vk_bench_wb …');
  await migrate(DATABASE_URL);
  const handle = createDb(DATABASE_URL, { max: 4 });
  const db = handle.db;
  const seeded = await seedDemo(handle, {
    users: USERS,
    postsPerUser: POSTS_PER_USER,
    votesPerPost: 10,
    seed: 7,
  });
  await sql`truncate viewkeeper.write_ledger, viewkeeper.write_versions`.execute(db);
  log(`  seeded ${seeded.votes} votes in ${(seeded.ms / 1000).toFixed(1)} s`);
  const ledgerCount = async () =>
    Number(
      (await sql<{ n: string }>`select count(*) as n from viewkeeper.write_ledger`.execute(db)).rows[0]!.n,
    );

  const redis = createRedis(REDIS_URL, { role: 'queue', name: 'bench-producer' });
  await connectRedis(redis, REDIS_URL, 'BENCH_WB_REDIS_URL');
  await redis.flushdb();
  const registry = await loadRegistry(path.join(REPO, 'jobs'));
  const sinks = [...sinksOf(registry.others.values()).values()];

  // 1. The daemon, end to end.
  const env: Record<string, string> = {
    DATABASE_URL,
    REDIS_URL,
    VK_PREFIX: PREFIX,
    LOG_LEVEL: 'warn',
    VK_JOBS_DIR: jobsDir(),
  };
  if (process.env.BENCH_DAEMON_NODE_OPTIONS) env.NODE_OPTIONS = process.env.BENCH_DAEMON_NODE_OPTIONS;
  const daemon = startDaemon(env);
  await sleep(3000);
  const queue = createQueue(QUEUES.writeBehind, redis, PREFIX);
  const writer = createWriter({ queue, sinks });
  // Warm-up: connections, JIT, the first batch.
  await writer.write('votes', voteOps(2000, 99, 'uniform'));
  await daemon.guard(
    (async () => {
      while ((await ledgerCount()) < 2000) await sleep(20);
    })(),
  );
  const throughput: Record<
    Workload,
    { committedMs: number; producedMs: number; owed: number; drainedMs: number }
  > = {} as never;
  const workloads: Workload[] = values['freshness-only'] ? [] : ['uniform', 'skewed'];
  for (const [index, workload] of workloads.entries()) {
    const ours = voteOps(OPS, 1 + index, workload);
    const base = await ledgerCount();
    const started = performance.now();
    const producedMs = await daemon.guard(produce(writer, ours));
    await daemon.guard(
      (async () => {
        while ((await ledgerCount()) < base + OPS) await sleep(10);
      })(),
    );
    const committedMs = performance.now() - started;
    // The refreshes the writes owe, drained (they run alongside the commits, coalesced per key).
    const owed = await redis.zcard(refreshBacklogKey(PREFIX));
    while ((await redis.zcard(refreshBacklogKey(PREFIX))) > 0) await sleep(100);
    const drainedMs = performance.now() - started;
    log(
      `  daemon, ${workload}: ${OPS} ops committed in ${committedMs.toFixed(0)} ms (enqueued in ${producedMs.toFixed(0)} ms); ${owed} refreshes owed, drained at ${drainedMs.toFixed(0)} ms`,
    );
    throughput[workload] = { committedMs, producedMs, owed, drainedMs };
  }

  // 2. Freshness at RATE ops/s: write → post_votes:{post} reflecting it.
  const subscriber = new Redis(REDIS_URL);
  const reader = new Redis(REDIS_URL);
  const { rows: sums } = await sql<{ id: string; sum: string }>`
    select p.id, coalesce(sum(v.value), 0)::text as sum from posts p left join votes v on v.post_id = p.id
    group by p.id`.execute(db);
  const expectedSum = new Map(sums.map((row) => [row.id, Number(row.sum)]));
  const { rows: pairs } = await sql<{
    post_id: string;
    user_id: string;
  }>`select post_id, user_id from votes`.execute(db);
  const taken = new Set(pairs.map((pair) => `${pair.post_id}:${pair.user_id}`));
  const waiting = new Map<string, { threshold: number; ackedAt: number; repeat: boolean }[]>();
  const latencies: number[] = [];
  /** Writes to a post that was not written in the second before (no coalescing window in the way). */
  const firstLatencies: number[] = [];
  await subscriber.subscribe(`${PREFIX}:events`);
  subscriber.on('message', async (_channel, message) => {
    const event = JSON.parse(message) as { view?: string; keys?: string[] | null };
    if (event.view !== 'post_votes' || !event.keys) return;
    const seenAt = performance.now();
    for (const key of event.keys) {
      const post = key.slice('post_votes:'.length);
      const list = waiting.get(post);
      if (!list) continue;
      const value = Number(await reader.get(key));
      const left = list.filter((entry) => {
        if (value < entry.threshold) return true;
        latencies.push(seenAt - entry.ackedAt);
        if (!entry.repeat) firstLatencies.push(seenAt - entry.ackedAt);
        return false;
      });
      if (left.length > 0) waiting.set(post, left);
      else waiting.delete(post);
    }
  });
  const next = random(3);
  const total = RATE * SECONDS;
  let repeats = 0;
  const recent = new Map<string, number>();
  const writes: Promise<void>[] = [];
  const freshStarted = performance.now();
  const monitor = process.env.BENCH_DEBUG
    ? setInterval(async () => {
        const key = refreshBacklogKey(PREFIX);
        const counts = [];
        for (let level = 0; level < 4; level++) {
          counts.push(await redis.zcount(key, level * 1e13, level * 1e13 + 1e13 - 1));
        }
        log(
          `  t=${Math.round(performance.now() - freshStarted)} backlog by level ${counts.join(' ')} waiting ${waiting.size}`,
        );
      }, 1000)
    : undefined;
  for (let index = 0; index < total; index++) {
    const due = freshStarted + (index * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    let post: string;
    let user: string;
    do {
      post = String(1 + Math.floor(next() * POSTS));
      user = String(1 + Math.floor(next() * USERS));
    } while (taken.has(`${post}:${user}`));
    taken.add(`${post}:${user}`);
    const repeat = (recent.get(post) ?? -Infinity) > performance.now() - 1000;
    if (repeat) repeats += 1;
    recent.set(post, performance.now());
    const threshold = expectedSum.get(post)! + 1;
    expectedSum.set(post, threshold);
    writes.push(
      writer.write('votes', { post_id: post, user_id: user, value: 1 }).then(() => {
        const list = waiting.get(post) ?? [];
        list.push({ threshold, ackedAt: performance.now(), repeat });
        waiting.set(post, list);
      }),
    );
  }
  await Promise.all(writes);
  clearInterval(monitor);
  const deadline = performance.now() + 15_000;
  while (waiting.size > 0 && performance.now() < deadline) await sleep(50);
  const unseen = [...waiting.values()].reduce((n, list) => n + list.length, 0);
  latencies.sort((a, b) => a - b);
  firstLatencies.sort((a, b) => a - b);
  log(`  freshness: ${latencies.length} writes seen, ${unseen} not seen within 15 s`);
  await subscriber.quit();
  await reader.quit();
  await writer.close();
  await daemon.stop();
  await queue.close();

  if (values['freshness-only']) {
    process.stdout.write(
      `freshness at ${RATE} ops/s: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms; other writes only: p50 ${percentile(firstLatencies, 50).toFixed(1)} ms, p99 ${percentile(firstLatencies, 99).toFixed(1)} ms\n`,
    );
    await closeRedis(redis);
    await handle.close();
    return;
  }

  // 3. The naive consumer on the same data, same producers, both workloads.
  const naive = fork(import.meta.filename, ['--naive-worker'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise((resolve) => naive.once('message', resolve));
  const naiveQueue = createQueue(QUEUES.writeBehind, redis, NAIVE_PREFIX);
  // Small jobs, so the naive worker's concurrency is not starved by big groups.
  const naiveWriter = createWriter({ queue: naiveQueue, sinks, maxOps: 50 });
  const naiveMs = {} as Record<Workload, number>;
  for (const [index, workload] of (['uniform', 'skewed'] as Workload[]).entries()) {
    const naiveStarted = performance.now();
    await produce(naiveWriter, voteOps(NAIVE_OPS, 11 + index, workload));
    for (;;) {
      const counts = await naiveQueue.getJobCounts('waiting', 'active', 'delayed');
      if (counts.waiting === 0 && counts.active === 0 && counts.delayed === 0) break;
      await sleep(10);
    }
    naiveMs[workload] = performance.now() - naiveStarted;
    log(`  naive, ${workload}: ${NAIVE_OPS} ops in ${naiveMs[workload].toFixed(0)} ms`);
  }
  naive.send('stop');
  await new Promise((resolve) => naive.once('exit', resolve));
  await naiveWriter.close();
  await naiveQueue.close();

  const rate = (ops: number, ms: number) => ops / (ms / 1000);
  const rows: [string, string][] = [];
  for (const workload of ['uniform', 'skewed'] as Workload[]) {
    const ours = rate(OPS, throughput[workload].committedMs);
    const baseline = rate(NAIVE_OPS, naiveMs[workload]);
    rows.push(
      [
        `${workload}: daemon, ${OPS} ops, producers → queue → committed`,
        `${Math.round(ours)} ops/s (${(throughput[workload].committedMs / 1000).toFixed(2)} s)`,
      ],
      [`${workload}: naive consumer, ${NAIVE_OPS} ops`, `${Math.round(baseline)} ops/s`],
      [`${workload}: ratio daemon / naive`, `${(ours / baseline).toFixed(1)}×`],
      [
        `${workload}: refreshes owed at commit → all run`,
        `${throughput[workload].owed} (view, params), done ${(throughput[workload].drainedMs / 1000).toFixed(1)} s after start`,
      ],
    );
  }
  rows.push(
    [
      `freshness at ${RATE} ops/s (${latencies.length} writes): write() resolved → post_votes updated`,
      `p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(0)} ms`,
    ],
    [
      '  writes to a post written < 1 s before (they wait out its 1 s coalescing window)',
      `${repeats} (${((100 * repeats) / total).toFixed(2)} %)`,
    ],
    [
      '  the other writes only',
      `p50 ${percentile(firstLatencies, 50).toFixed(1)} ms, p99 ${percentile(firstLatencies, 99).toFixed(1)} ms, max ${firstLatencies.at(-1)!.toFixed(0)} ms`,
    ],
  );
  const width = Math.max(...rows.map(([name]) => name.length));
  process.stdout.write(`${rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n')}\n`);
  mkdirSync(path.join(REPO, 'bench', 'results'), { recursive: true });
  writeFileSync(
    path.join(REPO, 'bench', 'results', `writebehind-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    `${JSON.stringify(
      {
        ops: OPS,
        throughput,
        naive: { ops: NAIVE_OPS, ms: naiveMs },
        freshness: {
          rate: RATE,
          seen: latencies.length,
          unseen,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: latencies.at(-1),
          repeats,
          firstWrites: {
            p50: percentile(firstLatencies, 50),
            p99: percentile(firstLatencies, 99),
            max: firstLatencies.at(-1),
          },
        },
      },
      null,
      2,
    )}\n`,
  );
  await closeRedis(redis);
  await handle.close();
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
