// Counters through write-behind: a sink that only counts (`tools.increment`), skewed ops over 1,000
// keys, end to end from `client.write` (the producers, this process) to durable in Postgres, through
// the write-behind queue and a real `viewkeeper start` child process. Method and latest results:
// bench/README.md.
//
//   node bench/counters.ts [--ops 300000] [--keys 1000] [--runs 2] [--producers 32] [--idempotency job|op]
//                          [--daemon-node-options '…']
//
// --idempotency is the sink's: 'job' (one ledger row per job, the default here) or 'op' (per op).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import pg from 'pg';
import { log, ROOT } from './lib/bench-env.ts';
import { backendPids, type CpuSplit, startCpu } from './lib/cpu.ts';
import { summarize } from './lib/stats.ts';
import { counterOps, produce } from './lib/vote-ops.ts';
import { prepareWriteBehindEnv, until, WB_DATABASE_URL } from './lib/writebehind-env.ts';

const { values: flags } = parseArgs({
  options: {
    ops: { type: 'string', default: '300000' },
    keys: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '2' },
    idempotency: { type: 'string', default: 'job' },
    producers: { type: 'string', default: '32' },
    'daemon-node-options': { type: 'string' },
  },
});
const IDEMPOTENCY = flags.idempotency!;
if (IDEMPOTENCY !== 'op' && IDEMPOTENCY !== 'job') throw new Error(`--idempotency ${IDEMPOTENCY}: op or job`);
const OPS = Number(flags.ops);
const KEYS = Number(flags.keys);
const RUNS = Number(flags.runs);
/** Concurrent write() loops of 100 ops: enough in flight that the client's jobs leave full (1,000 ops). */
const PRODUCERS = Number(flags.producers);

/** The bench's counting sink: every op adds `by` to its key's counter. */
const countersSink = (library: string) => `import { defineSink } from ${JSON.stringify(library)};

// bench: a sink that only counts.
export default defineSink()({
  name: 'counters',
  fields: { key: 'bigint', by: 'integer' },
  idempotency: '${IDEMPOTENCY}',
  apply: async (_trx, ops, { increment }) => {
    await increment({
      table: 'bench_counters',
      key: 'id',
      keyType: 'bigint',
      column: 'n',
      rows: ops.map((op) => ({ key: op.key, by: op.by })),
    });
  },
});
`;

async function main(): Promise<void> {
  const env = await prepareWriteBehindEnv({ seed: false });
  const db = env.handle.db;
  await sql`drop table if exists bench_counters`.execute(db);
  await sql`create table bench_counters (id bigint primary key, n bigint not null default 0)`.execute(db);
  await sql`insert into bench_counters (id) select generate_series(1, ${KEYS}::bigint)`.execute(db);
  const total = async () =>
    Number(
      (await sql<{ n: string }>`select coalesce(sum(n), 0) as n from bench_counters`.execute(db)).rows[0]!.n,
    );
  // Ops durable so far, from the ledger the sink uses.
  const applied = async () =>
    Number(
      (
        await (IDEMPOTENCY === 'job'
          ? sql<{
              n: string;
            }>`select coalesce(sum(ops), 0) as n from viewkeeper.write_ledger_jobs where sink = 'counters'`
          : sql<{ n: string }>`select count(*) as n from viewkeeper.write_ledger where sink = 'counters'`
        ).execute(db)
      ).rows[0]!.n,
    );

  const { daemon, writer, stop } = await env.startDaemon(
    { 'sink-counters.ts': countersSink },
    flags['daemon-node-options'],
  );
  let expected = 0;
  let sent = 0;
  const warmUp = counterOps(5000, 99, KEYS);
  await writer.write('counters', warmUp);
  expected += warmUp.reduce((sum, op) => sum + op.by, 0);
  sent += warmUp.length;
  await until(daemon, async () => (await applied()) >= sent, 50);

  const monitor = new pg.Client({ connectionString: WB_DATABASE_URL, application_name: 'vkbwb-monitor' });
  await monitor.connect();
  const ms: number[] = [];
  const cpu: CpuSplit[] = [];
  for (let run = 0; run < RUNS; run++) {
    const ops = counterOps(OPS, 1000 + run, KEYS);
    expected += ops.reduce((sum, op) => sum + op.by, 0);
    sent += ops.length;
    const counting = await startCpu(daemon.pid, () => backendPids(monitor, 'viewkeeper-daemon'), env.redis);
    const started = performance.now();
    const producedMs = await daemon.guard(produce(writer, 'counters', ops, PRODUCERS));
    await until(daemon, async () => (await applied()) >= sent, 20);
    ms.push(performance.now() - started);
    cpu.push(await counting.stop());
    const used = cpu.at(-1)!;
    log(
      `  run ${run + 1}: ${OPS} ops in ${ms.at(-1)!.toFixed(0)} ms (all enqueued at ${producedMs.toFixed(0)} ms); CPU ms daemon ${used.node.toFixed(0)}, postgres ${used.postgres.toFixed(0)}, redis ${used.redis.toFixed(0)}, producer ${used.bench.toFixed(0)}`,
    );
  }
  await monitor.end();
  const got = await total();
  if (got !== expected) throw new Error(`counters sum to ${got}, expected ${expected}: ops lost or doubled`);
  await stop();

  const median = summarize(ms, 'ms').median;
  const rows: [string, string][] = [
    [
      `counters (idempotency '${IDEMPOTENCY}'), ${OPS} skewed ops on ${KEYS} keys, client.write → durable (median of ${RUNS})`,
      `${Math.round(OPS / (median / 1000))} ops/s (${ms.map((m) => (m / 1000).toFixed(2)).join(', ')} s)`,
    ],
    ['counters sum equals the ops sent', `yes (${got})`],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  process.stdout.write(`${rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n')}\n`);
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    path.join(ROOT, 'bench', 'results', `counters-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    `${JSON.stringify({ ops: OPS, keys: KEYS, idempotency: IDEMPOTENCY, ms, cpu }, null, 2)}\n`,
  );
  await env.close();
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
