import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createWriter, type Writer } from '../../src/client/write.ts';
import { QUEUES, type WriteBehindJobData } from '../../src/contract.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { sinksOf } from '../../src/queues/write-behind-payload.ts';
import { createWriteBehindWorker } from '../../src/queues/write-behind-worker.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import type { SinkDefinition } from '../../src/sinks/define-sink.ts';
import { loadRegistry, type Registry } from '../../src/views/registry.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createEngine, JOBS_DIR, seedSmall } from '../helpers/views.ts';

// client.write() building blocks: local validation, group commit, the immediate cache effect.

let ctx: TestContext;
let queueRedis: Redis;
let queue: Queue<WriteBehindJobData>;
let registry: Registry;
let sinks: SinkDefinition[];
const writers: Writer[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  queueRedis = createRedis(ctx.redisUrl, { role: 'queue', name: 'test-queue' });
  await connectRedis(queueRedis, ctx.redisUrl, 'REDIS_URL');
  queue = createQueue(QUEUES.writeBehind, queueRedis, ctx.prefix) as Queue<WriteBehindJobData>;
  registry = await loadRegistry(JOBS_DIR);
  sinks = [...sinksOf(registry.others.values()).values()];
});

beforeEach(async () => {
  await queue.drain(true);
});

afterAll(async () => {
  for (const writer of writers) await writer.close();
  await queue?.close();
  if (queueRedis) await closeRedis(queueRedis);
  await ctx?.cleanup();
});

function writer(options: Partial<Parameters<typeof createWriter>[0]> = {}): Writer {
  const created = createWriter({ queue, sinks, redis: ctx.redis as Redis, ...options });
  writers.push(created);
  return created;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('client write', () => {
  it.each([
    [
      'unknown sink',
      'nope',
      { post_id: 1, user_id: 1, value: 1 },
      'E_SINK_UNKNOWN',
      /^unknown sink "nope": known sinks are users, votes$/,
    ],
    [
      'missing field',
      'votes',
      { post_id: 1, value: 1 },
      'E_BAD_PAYLOAD',
      /^op 0 of sink "votes": missing field "user_id"$/,
    ],
    [
      'extra field',
      'votes',
      { post_id: 1, user_id: 1, value: 1, x: 1 },
      'E_BAD_PAYLOAD',
      /unknown field "x"/,
    ],
    [
      'wrong type',
      'votes',
      { post_id: 1, user_id: true, value: 1 },
      'E_BAD_PAYLOAD',
      /field "user_id" is true/,
    ],
    [
      'vote value 5',
      'votes',
      { post_id: 1, user_id: 1, value: 5 },
      'E_BAD_PAYLOAD',
      /field "value" is 5: expected one of 1, -1$/,
    ],
    [
      'duplicate op ids',
      'votes',
      [
        { id: 'd', post_id: 1, user_id: 1, value: 1 },
        { id: 'd', post_id: 2, user_id: 1, value: 1 },
      ],
      'E_BAD_PAYLOAD',
      /id "d" appears twice/,
    ],
    ['no ops', 'votes', [], 'E_BAD_PAYLOAD', /got no ops/],
  ])('rejects %s locally, enqueuing nothing', async (_name, sink, ops, code, message) => {
    const error = await rejection(writer().write(sink, ops as never));
    expect(isViewkeeperError(error, code as never)).toBe(true);
    expect(error.message).toMatch(message);
    expect(await queue.count()).toBe(0);
  });

  it('group commit: concurrent calls inside the window share one job; each gets its own op ids', async () => {
    const w = writer({ windowMs: 30 });
    const calls = Array.from({ length: 50 }, (_, index) =>
      w.write('votes', { post_id: index + 1, user_id: 1, value: index % 2 === 0 ? 1 : -1 }),
    );
    const results = await Promise.all(calls);
    expect(results.every((ids) => ids.length === 1)).toBe(true);
    expect(new Set(results.flat()).size).toBe(50);
    const jobs = await queue.getWaiting();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.data.ops.map((op) => op.id)).toEqual(results.flat());
    expect(jobs[0]!.name).toBe('votes');
  });

  it('spreads a call over several jobs at maxOps, keeping op order; keeps caller ids', async () => {
    const w = writer({ maxOps: 10 });
    const ops = Array.from({ length: 25 }, (_, index) => ({
      id: `mine-${index}`,
      post_id: 1,
      user_id: index + 1,
      value: 1,
    }));
    const ids = await w.write('votes', ops);
    expect(ids).toEqual(ops.map((op) => op.id));
    const jobs = (await queue.getWaiting()).sort((a, b) => Number(a.id) - Number(b.id));
    expect(jobs.map((job) => job.data.ops.length)).toEqual([10, 10, 5]);
    expect(jobs.flatMap((job) => job.data.ops.map((op) => op.id))).toEqual(ids);
  });

  it('an op id already waiting in the open group starts a new job instead of making a job the daemon rejects', async () => {
    const w = writer({ windowMs: 30 });
    await Promise.all([
      w.write('votes', { id: 'twice', post_id: 1, user_id: 1, value: 1 }),
      w.write('votes', { id: 'twice', post_id: 1, user_id: 1, value: 1 }),
    ]);
    const jobs = await queue.getWaiting();
    expect(jobs.map((job) => job.data.ops.length)).toEqual([1, 1]);
  });

  it('applies the sink cache effect once the job is accepted (users → user:{id} hash)', async () => {
    const w = writer();
    await w.write('users', { user_id: 777, name: 'Ada', email: 'ada@example.com', org_id: null });
    expect(await ctx.redis.hgetall('user:777')).toEqual({
      name: 'Ada',
      email: 'ada@example.com',
      org_id: '',
    });
  });

  it('end to end: written ops are committed by the worker exactly once', async () => {
    const worker = createWriteBehindWorker({
      connection: queueRedis,
      prefix: ctx.prefix,
      registry,
      db: ctx.db.db,
      engine: createEngine(ctx),
      logger: silentLogger(),
    });
    try {
      const w = writer({ windowMs: 5 });
      const { rows: posts } = await sql<{ id: string }>`select id from posts order by id limit 20`.execute(
        ctx.db.db,
      );
      const ids = (
        await Promise.all(
          posts.map((post, index) => w.write('votes', { post_id: post.id, user_id: 100 + index, value: 1 })),
        )
      ).flat();
      const deadline = Date.now() + 15_000;
      let applied = 0;
      while (Date.now() < deadline) {
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from viewkeeper.write_ledger where op_id = any(${ids}::text[])`.execute(
          ctx.db.db,
        );
        applied = rows[0]!.n;
        if (applied === ids.length) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(applied).toBe(ids.length);
    } finally {
      await worker.close(10_000);
    }
  });
});
