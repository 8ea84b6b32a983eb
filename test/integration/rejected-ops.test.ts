import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { QUEUES, type WriteBehindJobData, type WriteBehindJobResult } from '../../src/contract.ts';
import type { RejectedOpsTable } from '../../src/db/schema.ts';
import { ViewkeeperError } from '../../src/errors.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { createWriteBehindWorker, type WriteBehindWorker } from '../../src/queues/write-behind-worker.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { defineSink } from '../../src/sinks/define-sink.ts';
import { createRegistry, loadRegistry } from '../../src/views/registry.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { REPO_JOBS } from '../helpers/daemon.ts';
import { createEngine, seedSmall } from '../helpers/views.ts';
import { until } from '../helpers/wait.ts';

// DESIGN guarantee 4, second half: an op the sink or the database refuses is never silently dropped.
// Its job completes listing it; the op goes to viewkeeper.rejected_ops in the batch's transaction;
// `viewkeeper rejected retry` applies it once the cause is fixed, at most once; `rejected drop` ends it.

let ctx: TestContext;
let connection: Redis;
let queue: Queue<WriteBehindJobData>;
let worker: WriteBehindWorker;
let env: Record<string, string>;

// A sink with a rule of its own: it refuses notes that say "refuse" (as a sink may refuse a business
// rule), and writes the others nowhere.
const notes = defineSink<unknown>()({
  name: 'notes',
  fields: { text: 'text' },
  apply: async (_trx, ops) => {
    const refused = ops.find((op) => op.text === 'refuse');
    if (refused) throw new ViewkeeperError('E_BAD_PAYLOAD', `note ${refused.id} says "refuse"`);
  },
});

const MISSING_POST = '990000001';

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  env = { ...ctx.env, VK_JOBS_DIR: REPO_JOBS };
  connection = createRedis(ctx.redisUrl, { role: 'queue', name: 'test-queue' });
  await connectRedis(connection, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.writeBehind, connection, ctx.prefix) as Queue<WriteBehindJobData>;
  const demo = await loadRegistry(REPO_JOBS);
  const registry = createRegistry([...demo.views.values(), ...demo.others.values(), notes]);
  worker = createWriteBehindWorker({
    connection,
    prefix: ctx.prefix,
    registry,
    db: ctx.db.db,
    engine: createEngine(ctx),
    logger: silentLogger(),
    batchWindowMs: 50,
  });
});

afterAll(async () => {
  await worker?.close(10_000);
  await queue?.close();
  if (connection) await closeRedis(connection);
  await ctx?.cleanup();
});

beforeEach(async () => {
  await sql`delete from viewkeeper.rejected_ops`.execute(ctx.db.db);
  await sql`delete from votes where post_id = ${MISSING_POST}`.execute(ctx.db.db);
  await sql`delete from posts where id = ${MISSING_POST}`.execute(ctx.db.db);
});

async function completed(job: Job, timeoutMs = 15_000): Promise<WriteBehindJobResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await job.getState();
    if (state === 'completed') return (await queue.getJob(job.id!))!.returnvalue as WriteBehindJobResult;
    if (state === 'failed')
      throw new Error(`job ${job.id} failed: ${(await queue.getJob(job.id!))!.failedReason}`);
    if (Date.now() > deadline) throw new Error(`job ${job.id} still ${state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

type DeadLetter = Selectable<RejectedOpsTable>;

async function deadLetters(): Promise<DeadLetter[]> {
  const { rows } = await sql<DeadLetter>`select * from viewkeeper.rejected_ops order by id`.execute(
    ctx.db.db,
  );
  return rows;
}

async function ledgerCount(opId: string): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from viewkeeper.write_ledger where op_id = ${opId}`.execute(ctx.db.db);
  return rows[0]!.n;
}

async function somePost(): Promise<string> {
  const { rows } = await sql<{ id: string }>`select id from posts order by id limit 1`.execute(ctx.db.db);
  return rows[0]!.id;
}

let counter = 0;
const opId = (tag: string) => `${tag}-${Date.now().toString(36)}-${++counter}`;

/** A votes job with one good op and one for a post that does not exist. */
async function jobWithPoison() {
  const good = { id: opId('good'), post_id: await somePost(), user_id: '31', value: 1 };
  const poison = { id: opId('poison'), post_id: MISSING_POST, user_id: '32', value: -1 };
  const job = await queue.add('votes', { ops: [good, poison] });
  return { job, good, poison };
}

describe('rejected ops are kept and replayable', () => {
  it('a job with an op the database refuses completes listing it, and the op is kept with its job, reason and time', async () => {
    const { job, good, poison } = await jobWithPoison();
    const result = await completed(job);
    expect(result.applied).toBe(1);
    expect(result.duplicates).toBe(0);
    expect(result.rejected).toEqual([
      { id: poison.id, reason: expect.stringMatching(/^op ".*" .*SQLSTATE 23503\)$/) },
    ]);
    expect(await ledgerCount(good.id)).toBe(1);
    expect(await ledgerCount(poison.id)).toBe(0);
    const [row, ...more] = await deadLetters();
    expect(more).toEqual([]);
    expect(row).toMatchObject({
      sink: 'votes',
      op_id: poison.id,
      op: { id: poison.id, post_id: MISSING_POST, user_id: '32', value: -1 },
      job_id: job.id,
      reason: result.rejected[0]!.reason,
    });
    expect(row!.enqueued_at.getTime()).toBe(job.timestamp);
    expect(Math.abs(row!.rejected_at.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it("an op the sink's own apply refuses is rejected with the sink's message; the job's other ops apply", async () => {
    const ok = { id: opId('note'), text: 'fine' };
    const refused = { id: opId('note'), text: 'refuse' };
    const job = await queue.add('notes', { ops: [ok, refused, { id: opId('note'), text: 'also fine' }] });
    const result = await completed(job);
    expect(result.applied).toBe(2);
    expect(result.rejected).toEqual([
      { id: refused.id, reason: `op ${JSON.stringify(refused.id)}: note ${refused.id} says "refuse"` },
    ]);
    expect((await deadLetters()).map((row) => [row.sink, row.op_id])).toEqual([['notes', refused.id]]);
    expect(await ledgerCount(ok.id)).toBe(1);
  });

  it('rejected list shows the kept ops as a table and as JSON, narrowed by --sink', async () => {
    const { job, poison } = await jobWithPoison();
    await completed(job);
    const table = await runCli(['rejected', 'list'], env);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+SINK\s+OP ID\s+JOB\s+REJECTED AT\s+REASON$/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(poison.id);
    const json = await runCli(['rejected', 'list', '--json'], env);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({
        sink: 'votes',
        opId: poison.id,
        jobId: job.id,
        op: expect.objectContaining(poison),
      }),
    ]);
    const other = await runCli(['rejected', 'list', '--sink', 'users', '--json'], env);
    expect(JSON.parse(other.stdout)).toEqual([]);
  });

  it('rejected retry, after the cause is fixed, applies the op exactly once, even when retried again', async () => {
    const { job, poison } = await jobWithPoison();
    await completed(job);
    const [row] = await deadLetters();
    // Still broken: the op is refused again and kept again.
    const early = await runCli(['rejected', 'retry', row!.id], env);
    expect(early.stderr).toBe('');
    expect(early.code).toBe(0);
    await until(
      async () => (await deadLetters()).some((again) => again.id !== row!.id),
      'the op refused again',
    );
    expect(await ledgerCount(poison.id)).toBe(0);

    // Fix the cause: the post now exists.
    await sql`insert into posts (id, user_id, title) values (${MISSING_POST}, 1, 'late post')`.execute(
      ctx.db.db,
    );
    const [kept] = await deadLetters();
    const retried = await runCli(['rejected', 'retry', '--all'], env);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toMatch(/^re-enqueued 1 ops in 1 jobs \(\d+\); 0 kept\n$/);
    await until(async () => (await ledgerCount(poison.id)) === 1, 'the retried op in the ledger');
    expect(await deadLetters()).toEqual([]);
    const { rows } = await sql<{ value: number; upvotes: number }>`
      select v.value, p.upvotes from votes v join posts p on p.id = v.post_id
      where v.post_id = ${MISSING_POST} and v.user_id = 32`.execute(ctx.db.db);
    expect(rows).toEqual([{ value: -1, upvotes: -1 }]);
    // The retried job kept the original job's timestamp: the op stays where its producer put it.
    const replayed = await queue.getJob(retried.stdout.match(/\((\d+)\)/)![1]!);
    expect(replayed!.timestamp).toBe(job.timestamp);
    expect(await completed(replayed!)).toEqual({
      applied: 1,
      duplicates: 0,
      rejected: [],
      refresh: expect.objectContaining({ seq: expect.any(Number) }),
    });

    // The row is gone, so a second retry of it is refused; the same op enqueued again is a duplicate.
    const twice = await runCli(['rejected', 'retry', kept!.id], env);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toBe(`no rejected op with id ${kept!.id}\n`);
    const again = await queue.add('votes', { ops: [kept!.op as WriteBehindJobData['ops'][number]] });
    expect(await completed(again)).toEqual({
      applied: 0,
      duplicates: 1,
      rejected: [],
      refresh: expect.objectContaining({ seq: expect.any(Number) }),
    });
    expect(await ledgerCount(poison.id)).toBe(1);
    expect(
      (
        await sql<{ upvotes: number }>`select upvotes from posts where id = ${MISSING_POST}`.execute(
          ctx.db.db,
        )
      ).rows,
    ).toEqual([{ upvotes: -1 }]);
  });

  it('rejected retry keeps an op its sink no longer accepts, saying why, and exits 1', async () => {
    await sql`insert into viewkeeper.rejected_ops (sink, op_id, op, job_id, enqueued_at, reason)
              values ('votes', 'old-1', '{"id": "old-1", "post_id": 1, "user_id": 1, "value": 3}', '7', now(), 'x'),
                     ('gone', 'old-2', '{"id": "old-2"}', '8', now(), 'y')`.execute(ctx.db.db);
    const result = await runCli(['rejected', 'retry', '--all'], env);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      /^kept rejected op \d+ \(votes old-1\): op "old-1" of sink "votes": field "value" is 3: expected one of 1, -1$/,
    );
    expect(lines[1]).toMatch(
      /^kept rejected op \d+ \(gone old-2\): sink "gone" is not defined in the jobs folder$/,
    );
    expect(result.stdout).toBe('re-enqueued 0 ops in 0 jobs; 2 kept\n');
    expect(await deadLetters()).toHaveLength(2);
  });

  it('rejected drop deletes the named rows (or all of a sink), and names ids it does not hold', async () => {
    for (let i = 0; i < 2; i++) await completed((await jobWithPoison()).job);
    await completed(await queue.add('notes', { ops: [{ id: opId('note'), text: 'refuse' }] }));
    const [first, second] = await deadLetters();
    const one = await runCli(['rejected', 'drop', first!.id], env);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe('dropped 1 rejected ops\n');
    const sinkOnly = await runCli(['rejected', 'drop', '--all', '--sink', 'votes'], env);
    expect(sinkOnly.stdout).toBe('dropped 1 rejected ops\n');
    expect((await deadLetters()).map((row) => row.sink)).toEqual(['notes']);
    const unknown = await runCli(['rejected', 'drop', second!.id], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`no rejected op with id ${second!.id}\n`);
  });

  it.each([
    [['rejected'], 'viewkeeper rejected: which action? use list, retry, drop'],
    [['rejected', 'retry'], 'viewkeeper rejected: rejected retry: which rows? give their ids, or --all'],
    [['rejected', 'drop', '1', '--all'], 'viewkeeper rejected: rejected drop: give ids or --all, not both'],
    [
      ['rejected', 'drop', 'x1'],
      'viewkeeper rejected: rejected drop: "x1" is not a row id (see rejected list)',
    ],
  ])('viewkeeper %j exits 2 with one line', async (args, line) => {
    const result = await runCli(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe(line);
  });
});
