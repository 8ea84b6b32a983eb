import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWriter, type Writer } from '../../src/client/write.ts';
import { QUEUES, type WriteBehindJobData } from '../../src/contract.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { type BatchEntry, commitBatch } from '../../src/sinks/commit-batch.ts';
import { resolveSink, type SinkOp } from '../../src/sinks/define-sink.ts';
import { addToJob, jobPrototype } from '../../src/sinks/op-order.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createJobsDir, type DaemonProcess, SRC_INDEX, startDaemon } from '../helpers/daemon.ts';
import { random } from '../helpers/random.ts';
import { until } from '../helpers/wait.ts';

// Counters (a sink with `idempotency: 'job'`: one ledger row per job, increments coalesced per key)
// stay exact: a job committed again is skipped whole, and with real processes — the daemon SIGKILLed
// three times while skewed ops on 1,000 keys are produced — every counter ends at exactly the sum of
// the ops sent for it.
const OPS = Number(process.env.VK_COUNTER_FAULT_OPS ?? 60_000);
const KEYS = 1000;
const PRODUCERS = 8;
const CHUNK = 100;
/** Ops per second the producers aim at, so the kills land while the daemon is busy. */
const RATE = Math.max(2000, OPS / 10);

const SINK_SOURCE = `import { defineSink } from ${JSON.stringify(SRC_INDEX)};
export default defineSink()({
  name: 'counters',
  fields: { key: 'bigint', by: 'integer' },
  idempotency: 'job',
  apply: async (_trx, ops, { increment }) => {
    await increment({ table: 'counters', key: 'id', keyType: 'bigint', column: 'n',
                      rows: ops.map((op) => ({ key: op.key, by: op.by })) });
  },
});
`;
const countersSink = resolveSink({
  name: 'counters',
  fields: { key: 'bigint', by: 'integer' },
  idempotency: 'job',
  apply: async (_trx, ops, tools) => {
    await tools.increment({
      table: 'counters',
      key: 'id',
      keyType: 'bigint',
      column: 'n',
      rows: ops.map((op) => ({ key: op.key as string, by: op.by as number })),
    });
  },
});

let ctx: TestContext;
let queueRedis: Redis;
let queue: Queue<WriteBehindJobData>;
let writer: Writer;
let jobs: { dir: string; remove(): void };
const started: DaemonProcess[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  await sql`create table counters (id bigint primary key, n bigint not null default 0)`.execute(ctx.db.db);
  await sql`insert into counters (id) select generate_series(1, ${KEYS}::bigint)`.execute(ctx.db.db);
  queueRedis = createRedis(ctx.redisUrl, { role: 'queue', name: 'counters-producer' });
  await connectRedis(queueRedis, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix) as Queue<WriteBehindJobData>;
  writer = createWriter({ queue, sinks: [countersSink], windowMs: 2 });
  jobs = createJobsDir({ 'sink-counters.ts': SINK_SOURCE });
});

afterAll(async () => {
  await Promise.all(started.map((process) => process.stop('SIGKILL')));
  await writer?.close();
  await queue?.close();
  if (queueRedis) await closeRedis(queueRedis);
  jobs?.remove();
  await ctx?.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function counters(): Promise<Map<string, number>> {
  const { rows } = await sql<{ id: string; n: string }>`select id, n from counters`.execute(ctx.db.db);
  return new Map(rows.map((row) => [row.id, Number(row.n)]));
}

/** The ops of one job as the daemon's parser makes them (job prototype, index). */
function jobEntry(jobId: string, timestamp: number, raw: { id: string; key: string; by: number }[]) {
  const prototype = jobPrototype(jobId, timestamp);
  const ops = raw.map((fields) => {
    const op = Object.assign(Object.create(prototype), fields) as SinkOp;
    addToJob(prototype, op);
    return op;
  });
  return { job: jobId, jobId, sink: countersSink, ops } satisfies BatchEntry<string>;
}

describe('counters (idempotency per job)', () => {
  it('a job committed again is skipped whole; the same op ids in a new job count again', async () => {
    const before = await counters();
    const at = Date.now();
    const ops = [
      { id: 'a', key: '1', by: 2 },
      { id: 'b', key: '2', by: -1 },
      { id: 'c', key: '1', by: 3 },
    ];
    const first = await commitBatch(ctx.db.db, [jobEntry('901', at, ops)]);
    expect(first.jobs.get('901')).toEqual({ applied: 3, duplicates: 0, rejected: [] });
    // Redelivered after its commit (the daemon died before completing it): same id, same timestamp.
    const again = await commitBatch(ctx.db.db, [jobEntry('901', at, ops)]);
    expect(again.jobs.get('901')).toEqual({ applied: 0, duplicates: 3, rejected: [] });
    // A job id reused after the queue's Redis lost its counter: another timestamp, another job.
    const reused = await commitBatch(ctx.db.db, [jobEntry('901', at + 1, ops)]);
    expect(reused.jobs.get('901')).toEqual({ applied: 3, duplicates: 0, rejected: [] });
    const after = await counters();
    expect([after.get('1')! - before.get('1')!, after.get('2')! - before.get('2')!]).toEqual([10, -2]);
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from viewkeeper.write_ledger where sink = 'counters'`.execute(ctx.db.db);
    expect(rows[0]!.n).toBe(0);
  });

  it(
    `${OPS} skewed counter ops on ${KEYS} keys while the daemon is SIGKILLed three times: every counter exact`,
    async () => {
      const expected = await counters();
      const env = { ...ctx.env, VK_JOBS_DIR: jobs.dir, VK_JOB_LOCK_MS: '2000', LOG_LEVEL: 'info' };
      let daemon: DaemonProcess;
      const start = async () => {
        const process = startDaemon(env);
        started.push(process);
        await process.waitFor(/daemon started/, 20_000);
        return process;
      };
      daemon = await start();

      let produced = 0;
      let killsDone = 0;
      const KILL_AT = [0.25, 0.5, 0.75];
      const begun = performance.now();
      async function produce(index: number): Promise<void> {
        const next = random(index + 1);
        const share = Math.ceil(OPS / PRODUCERS);
        for (let done = 0; done < share; done += CHUNK) {
          const ops = [];
          for (let k = 0; k < Math.min(CHUNK, share - done); k++) {
            // Skewed: density ∝ 1/rank, the hottest key gets about a tenth of the ops.
            const key = String(Math.floor(Math.exp(next() * Math.log(KEYS + 1))));
            ops.push({ key, by: next() < 0.8 ? 1 : -1 });
          }
          await until(
            async () => killsDone >= KILL_AT.filter((at) => produced >= OPS * (at + 0.2)).length,
            'the kill due before this point',
            120_000,
          );
          await writer.write('counters', ops);
          for (const op of ops) expected.set(op.key, expected.get(op.key)! + op.by);
          produced += ops.length;
          const ahead = (produced / RATE) * 1000 - (performance.now() - begun);
          if (ahead > 0) await sleep(ahead);
        }
      }
      const kills: number[] = [];
      async function kill(): Promise<void> {
        for (const fraction of KILL_AT) {
          await until(async () => produced >= OPS * fraction, 'production progress', 60_000);
          // Kill only once this daemon has committed something: it is in the middle of its work.
          await until(
            () => /write-behind batch committed/.test(daemon.output()),
            'a committed batch',
            20_000,
          );
          daemon.child.kill('SIGKILL');
          await daemon.stop('SIGKILL');
          kills.push(produced);
          killsDone++;
          await sleep(300);
          daemon = await start();
        }
      }
      await Promise.all([...Array.from({ length: PRODUCERS }, (_, index) => produce(index)), kill()]);
      expect(kills).toHaveLength(3);
      expect(kills.every((at) => at < OPS)).toBe(true);

      await until(
        async () =>
          Object.values(await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).every(
            (n) => n === 0,
          ),
        'queue drained',
        { timeoutMs: 60_000, everyMs: 100 },
      );
      expect(await queue.getFailedCount()).toBe(0);

      const actual = await counters();
      const wrong = [...expected].filter(([key, n]) => actual.get(key) !== n);
      expect(wrong.slice(0, 5)).toEqual([]);
      // The ledger holds every op once, as job rows: no op row, and as many ops as were sent.
      const { rows } = await sql<{ ops: number; jobs: number }>`
        select coalesce(sum(ops), 0)::int as ops, count(*)::int as jobs
        from viewkeeper.write_ledger_jobs where sink = 'counters'`.execute(ctx.db.db);
      expect(rows[0]!.ops).toBe(OPS + 6);
      const completed = await queue.getCompleted(0, -1);
      // Each delivered job is recorded once (the first test's three commitBatch jobs are not in the queue).
      expect(rows[0]!.jobs).toBe(new Set(completed.map((job) => `${job.id}@${job.timestamp}`)).size + 2);
    },
    Math.max(120_000, OPS * 3),
  );
});
