// Write-behind throughput as a user sees it: ops from `client.write` (the producers, this process)
// to durable in Postgres, through the write-behind queue and a real `viewkeeper start` child process,
// against (1) a careful hand-written consumer doing the same durable work with no queue, in this
// process, and (2) a naive queue consumer doing one INSERT per op. Same run, same data; the two
// same-work sides take turns. Method and latest results: bench/README.md.
//
//   node bench/writebehind.ts [--ops 60000] [--batch 5000] [--runs 2] [--naive-ops 6000]
//                             [--workload uniform|skewed] [--with-refreshes] [--daemon-node-options '…']
//
// --with-refreshes runs the demo's votes sink as shipped (its six refresh targets run alongside the
// commits); without it the sink's refresh list is emptied, so both sides do the same work: ledger,
// last-write-wins upsert, recount. BENCH_LOG_LEVEL=debug shows the daemon's per-batch lines.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import pg from 'pg';
import { createWriter } from '../src/client/write.ts';
import { QUEUES, type WriteBehindJobData } from '../src/contract.ts';
import { createDb } from '../src/db/create-db.ts';
import { createQueue } from '../src/queues/factories.ts';
import { log, ROOT } from './lib/bench-env.ts';
import { backendPids, type CpuSplit, startCpu } from './lib/cpu.ts';
import { HAND_LEDGER_DDL, handWrittenVotes } from './lib/hand-written-votes.ts';
import { sleep, summarize } from './lib/stats.ts';
import { produce, voteOps, type Workload } from './lib/vote-ops.ts';
import {
  prepareWriteBehindEnv,
  until,
  WB_DATABASE_URL,
  WB_POSTS,
  WB_PREFIX,
  WB_REDIS_URL,
  WB_USERS,
} from './lib/writebehind-env.ts';

const { values: flags } = parseArgs({
  options: {
    ops: { type: 'string', default: '60000' },
    batch: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '2' },
    'naive-ops': { type: 'string', default: '6000' },
    workload: { type: 'string', default: 'uniform' },
    'with-refreshes': { type: 'boolean', default: false },
    'daemon-node-options': { type: 'string' },
    'naive-worker': { type: 'boolean', default: false },
  },
});
const OPS = Number(flags.ops);
const BATCH = Number(flags.batch);
const RUNS = Number(flags.runs);
const NAIVE_OPS = Number(flags['naive-ops']);
const WORKLOAD = flags.workload as Workload;
if (WORKLOAD !== 'uniform' && WORKLOAD !== 'skewed')
  throw new Error(`--workload ${WORKLOAD}: uniform or skewed`);
const NAIVE_PREFIX = `${WB_PREFIX}_naive`;
const NAIVE_CONCURRENCY = 16;

/** The naive consumer (child process): a plain BullMQ worker, one upsert + one recount per op, autocommit. */
async function naiveWorker(): Promise<void> {
  const handle = createDb(WB_DATABASE_URL, { max: NAIVE_CONCURRENCY, applicationName: 'bench-naive' });
  const connection = new Redis(WB_REDIS_URL, { maxRetriesPerRequest: null });
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

/** The votes sink as the bench runs it: as shipped, or with no refresh targets (the same work). */
const votesSink = () => `import base from ${JSON.stringify(path.join(ROOT, 'demo/jobs/sink-votes.ts'))};
// bench: ${flags['with-refreshes'] ? 'as shipped' : 'no refresh targets, the same durable work as the hand-written consumer'}
export default ${flags['with-refreshes'] ? 'base' : '{ ...base, refresh: [] }'};
`;

async function main(): Promise<void> {
  if (flags['naive-worker']) return naiveWorker();
  const env = await prepareWriteBehindEnv();
  const db = env.handle.db;
  await sql.raw(HAND_LEDGER_DDL).execute(db);
  await sql`truncate bench_hand_ledger`.execute(db);
  const ledgerCount = async () =>
    Number(
      (
        await sql<{
          n: string;
        }>`select count(*) as n from viewkeeper.write_ledger where sink = 'votes'`.execute(db)
      ).rows[0]!.n,
    );
  const hand = new pg.Client({ connectionString: WB_DATABASE_URL, application_name: 'vkbwb-hand' });
  await hand.connect();

  const { daemon, writer, stop } = await env.startDaemon(
    { 'sink-votes.ts': votesSink },
    flags['daemon-node-options'],
  );
  // Warm-up, both sides: connections, JIT, the first batch, Postgres caches.
  await writer.write('votes', voteOps(2000, 99, WORKLOAD, WB_USERS, WB_POSTS));
  await until(daemon, async () => (await ledgerCount()) >= 2000, 50);
  await handWrittenVotes(hand, voteOps(2000, 98, WORKLOAD, WB_USERS, WB_POSTS), BATCH);

  const monitor = new pg.Client({ connectionString: WB_DATABASE_URL, application_name: 'vkbwb-monitor' });
  await monitor.connect();
  const handMs: number[] = [];
  const oursMs: number[] = [];
  const cpu: { side: string; split: CpuSplit }[] = [];
  for (let run = 0; run < RUNS; run++) {
    // Alternate who goes first, so a drift in the machine's load falls on both.
    const order = run % 2 === 0 ? ['hand', 'ours'] : ['ours', 'hand'];
    for (const side of order) {
      const ops = voteOps(OPS, 1000 + 2 * run + (side === 'hand' ? 0 : 1), WORKLOAD, WB_USERS, WB_POSTS);
      // CPU of the process doing the work (this one for the hand-written side, the daemon for ours),
      // its Postgres backends, Redis, and (ours) this process as the producer.
      const counting =
        side === 'hand'
          ? await startCpu(process.pid, () => backendPids(monitor, 'vkbwb-hand'), env.redis)
          : await startCpu(daemon.pid, () => backendPids(monitor, 'viewkeeper-daemon'), env.redis);
      if (side === 'hand') {
        const started = performance.now();
        await handWrittenVotes(hand, ops, BATCH);
        handMs.push(performance.now() - started);
      } else {
        const base = await ledgerCount();
        const started = performance.now();
        await daemon.guard(produce(writer, 'votes', ops));
        await until(daemon, async () => (await ledgerCount()) >= base + OPS);
        oursMs.push(performance.now() - started);
      }
      const split = await counting.stop();
      cpu.push({ side, split });
      log(
        `  run ${run + 1} ${side}: ${OPS} ops in ${(side === 'hand' ? handMs : oursMs).at(-1)!.toFixed(0)} ms; CPU ms node ${split.node.toFixed(0)}, postgres ${split.postgres.toFixed(0)}, redis ${split.redis.toFixed(0)}, producer ${split.bench.toFixed(0)}`,
      );
    }
  }
  await stop();
  await hand.end();
  await monitor.end();

  // The naive consumer on the same data, same producers (jobs of 50 ops, so its concurrency is used).
  const naive = fork(import.meta.filename, ['--naive-worker'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise((resolve) => naive.once('message', resolve));
  const naiveQueue = createQueue(QUEUES.writeBehind, env.redis, NAIVE_PREFIX);
  const naiveWriter = createWriter({ queue: naiveQueue, maxOps: 50 });
  const naiveStarted = performance.now();
  await produce(naiveWriter, 'votes', voteOps(NAIVE_OPS, 11, WORKLOAD, WB_USERS, WB_POSTS));
  for (;;) {
    const counts = await naiveQueue.getJobCounts('waiting', 'active', 'delayed');
    if (counts.waiting === 0 && counts.active === 0 && counts.delayed === 0) break;
    await sleep(10);
  }
  const naiveMs = performance.now() - naiveStarted;
  naive.send('stop');
  await new Promise((resolve) => naive.once('exit', resolve));
  await naiveWriter.close();
  await naiveQueue.close();

  const rate = (ops: number, ms: number) => ops / (ms / 1000);
  const handRate = rate(OPS, summarize(handMs, 'ms').median);
  const oursRate = rate(OPS, summarize(oursMs, 'ms').median);
  const naiveRate = rate(NAIVE_OPS, naiveMs);
  const paired = summarize(
    handMs.map((ms, i) => ms / oursMs[i]!),
    '×',
  ).median;
  const rows: [string, string][] = [
    [
      `hand-written consumer, ${OPS} ${WORKLOAD} ops, batches of ${BATCH} (median of ${RUNS})`,
      `${Math.round(handRate)} ops/s (${handMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s)`,
    ],
    [
      `viewkeeper${flags['with-refreshes'] ? ' (refreshes as shipped)' : ''}, client.write → durable (median of ${RUNS})`,
      `${Math.round(oursRate)} ops/s (${oursMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s)`,
    ],
    [
      'ratio viewkeeper / hand-written (of medians; paired)',
      `${(oursRate / handRate).toFixed(2)}; ${paired.toFixed(2)}`,
    ],
    [`naive consumer, ${NAIVE_OPS} ops`, `${Math.round(naiveRate)} ops/s`],
    ['ratio viewkeeper / naive', `${(oursRate / naiveRate).toFixed(1)}×`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  process.stdout.write(`${rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n')}\n`);
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    path.join(ROOT, 'bench', 'results', `writebehind-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    `${JSON.stringify(
      {
        ops: OPS,
        batch: BATCH,
        workload: WORKLOAD,
        withRefreshes: flags['with-refreshes'],
        cpu,
        handMs,
        oursMs,
        naive: { ops: NAIVE_OPS, ms: naiveMs },
      },
      null,
      2,
    )}\n`,
  );
  await env.close();
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
