import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../../src/contract.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { CHUNK_QUEUE } from '../../src/queues/chunked-rebuild.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { createRefreshWorker, type RefreshWorker } from '../../src/queues/refresh-worker.ts';
import { createWriteBehindWorker, type WriteBehindWorker } from '../../src/queues/write-behind-worker.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { bullmqKeys } from '../../src/redis/keys.ts';
import { createRegistry, loadRegistry } from '../../src/views/registry.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createEngine, JOBS_DIR, seedSmall } from '../helpers/views.ts';

// Guarantee 6 for job data that is not JSON at all, as a producer in another language (or a hand
// with redis-cli) might store it: BullMQ itself cannot parse such a job, so without the worker's
// decoding guard it stays active and is re-taken after every stall, for ever.

let ctx: TestContext;
let connection: Redis;
const queues = new Map<string, Queue>();
let refreshWorker: RefreshWorker;
let writeBehind: WriteBehindWorker;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  connection = createRedis(ctx.redisUrl, { role: 'queue', name: 'test-queue' });
  await connectRedis(connection, ctx.redisUrl, 'REDIS_URL');
  const demo = await loadRegistry(JOBS_DIR);
  const registry = createRegistry([
    ...[...demo.views.values()].map((view) => ({ ...view, coalesceMs: 0 })),
    ...demo.others.values(),
  ]);
  const engine = createEngine(ctx);
  const options = { connection, prefix: ctx.prefix, registry, engine, logger: silentLogger() };
  // Short locks: without the guard the test would see the job stall and come back within seconds.
  refreshWorker = createRefreshWorker({ ...options, concurrency: 2, lockDurationMs: 1000 });
  writeBehind = createWriteBehindWorker({ ...options, db: ctx.db.db, lockDurationMs: 1000 });
  for (const name of [QUEUES.refresh, QUEUES.writeBehind, CHUNK_QUEUE])
    queues.set(name, createQueue(name, connection, ctx.prefix));
});

afterAll(async () => {
  await writeBehind?.close(5000);
  await refreshWorker?.close(5000);
  for (const queue of queues.values()) await queue.close();
  if (connection) await closeRedis(connection);
  await ctx?.cleanup();
});

/**
 * Adds a job that is delayed a moment, overwrites its data with `raw` before any worker can take it,
 * and returns its id.
 */
async function corrupted(queueName: string, name: string, raw: string): Promise<string> {
  const job = await queues.get(queueName)!.add(name, {}, { delay: 300 });
  await connection.hset(bullmqKeys(ctx.prefix, queueName).job(job.id!), 'data', raw);
  return job.id!;
}

async function finalState(queueName: string, id: string, timeoutMs = 10_000): Promise<string> {
  const queue = queues.get(queueName)!;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await queue.getJobState(id);
    if (state === 'completed' || state === 'failed') return state;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The stored job hash, read raw: BullMQ's own getJob() cannot parse such a job. */
async function stored(queueName: string, id: string): Promise<Record<string, string>> {
  return connection.hgetall(bullmqKeys(ctx.prefix, queueName).job(id));
}

describe('job data that is not JSON fails once, on every queue, and the daemon keeps serving', () => {
  it.each([
    [QUEUES.refresh, 'user_stats', 'not json'],
    [QUEUES.refresh, 'user', "{'params': {'id': 1}}"],
    [QUEUES.writeBehind, 'votes', 'not json'],
    [QUEUES.writeBehind, 'votes', '{"ops": ['],
    [CHUNK_QUEUE, 'user_stats', '\u0000\u0001binary'],
  ])('%s job %s with data %j fails at once with "job data is not JSON"', async (queueName, name, raw) => {
    const id = await corrupted(queueName, name, raw);
    expect(await finalState(queueName, id)).toBe('failed');
    const job = await stored(queueName, id);
    expect(job.failedReason).toMatch(/^job data is not JSON: /);
    expect(job.failedReason).not.toContain('\n');
    expect(job.atm).toBe('1'); // attempts made: no retries
    expect(job.data).toBe(raw); // left as sent, for whoever investigates
  });

  it('after undecodable jobs, valid refresh and write-behind jobs still complete', async () => {
    await corrupted(QUEUES.refresh, 'user_stats', 'nope');
    await corrupted(QUEUES.writeBehind, 'votes', 'nope');
    const refresh = await queues.get(QUEUES.refresh)!.add('user', { params: { id: 3 } });
    const write = await queues.get(QUEUES.writeBehind)!.add('users', {
      ops: [{ id: 'still-works', user_id: '5', name: 'Five', email: 'five@example.com', org_id: null }],
    });
    expect(await finalState(QUEUES.refresh, refresh.id!)).toBe('completed');
    expect(await finalState(QUEUES.writeBehind, write.id!)).toBe('completed');
    expect(await ctx.redis.hget('user:3', 'email')).toBe('user3@example.com');
  });
});
