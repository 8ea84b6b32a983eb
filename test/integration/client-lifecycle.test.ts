import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isViewkeeperError } from '../../src/errors.ts';
import { createClient } from '../../src/index.ts';
import { type ClientRedisContext, createClientRedisContext } from '../helpers/client-context.ts';
import { everyPartScript, runScript } from '../helpers/client-script.ts';

const INDEX = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

let ctx: ClientRedisContext;

beforeAll(async () => {
  ctx = await createClientRedisContext();
});
afterAll(() => ctx?.cleanup());

describe('lifecycle', () => {
  it('a process that only imports the library exits on its own', async () => {
    const result = await runScript(
      `import { createClient } from ${JSON.stringify(INDEX)}; void createClient;`,
    );
    expect(result).toEqual({ code: 0, stderr: '' });
  });

  it('a process that used every part of the client and closed it exits on its own (no process.exit)', async () => {
    const options = {
      redisUrl: ctx.redisUrl,
      prefix: `${ctx.prefix}p`,
      l1: true,
      views: { stats: { shape: 'hash', key: `${ctx.prefix}p_stats:{id}` } },
      onMiss: 'null',
      statsFlushMs: 50,
    };
    const result = await runScript(everyPartScript(options));
    expect(result).toEqual({ code: 0, stderr: '' });
    expect(
      Number(await ctx.redis.hget(`${ctx.prefix}p:client:stats`, 'loader_calls')),
    ).toBeGreaterThanOrEqual(1);
  });

  it('close() is idempotent and every later call fails with E_UNAVAILABLE', async () => {
    const client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
    await client.cached('x', () => 1);
    await Promise.all([client.close(), client.close()]);
    await client.close();
    for (const call of [
      () => client.cached('x', () => 2),
      () => client.invalidate('x'),
      () => client.refresh('v'),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(isViewkeeperError(error, 'E_UNAVAILABLE')).toBe(true);
    }
  });

  it('invalid options fail at construction with E_CONFIG naming the option', () => {
    expect(() => createClient({ commandTimeoutMs: -1 })).toThrow(/commandTimeoutMs=-1/);
    expect(() => createClient({ cache: { jitter: 2 } })).toThrow(/cache\.jitter=2/);
    expect(() => createClient({ redisUrl: 'http://x' })).toThrow(/redisUrl/);
    expect(() => createClient({ views: { bad: { shape: 'zset', key: 'a:{id}' } } })).toThrow(/fixed key/);
  });
});

describe('queues', () => {
  it('refresh() enqueues on the refresh queue with the contract data, coalescing identical requests', async () => {
    const client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
    const queue = new Queue('refresh', { connection: { url: ctx.redisUrl }, prefix: ctx.prefix });
    try {
      const first = await client.refresh('user_stats', { user_id: 42 }, { reason: 'profile edited' });
      const second = await client.refresh('user_stats', { user_id: 42 });
      expect(second.jobId).toBe(first.jobId);
      const job = await queue.getJob(first.jobId);
      expect(job?.name).toBe('user_stats');
      expect(job?.data).toEqual({ params: { user_id: 42 }, reason: 'profile edited' });
    } finally {
      await queue.close();
      await client.close();
    }
  });

  it('refresh() with a list of params enqueues one bulk job, not deduplicated, and refuses an empty list', async () => {
    const client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
    const queue = new Queue('refresh', { connection: { url: ctx.redisUrl }, prefix: ctx.prefix });
    try {
      const keys = [{ user_id: 1 }, { user_id: 2 }];
      const first = await client.refresh('user_stats', keys);
      const second = await client.refresh('user_stats', keys);
      expect(second.jobId).not.toBe(first.jobId);
      const job = await queue.getJob(first.jobId);
      expect(job?.data).toEqual({ params: keys });
      expect(job?.opts.deduplication).toBeUndefined();
      await expect(client.refresh('user_stats', [])).rejects.toMatchObject({ code: 'E_BAD_PARAMS' });
    } finally {
      await queue.close();
      await client.close();
    }
  });

  it('write() validates ops and enqueues { ops } on the write-behind queue under the sink name (group commit)', async () => {
    const client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix });
    const queue = new Queue('write-behind', { connection: { url: ctx.redisUrl }, prefix: ctx.prefix });
    try {
      const ops = [
        { id: 'vote-1-2', post_id: 1, user_id: 2, value: 1 },
        { id: 'vote-1-3', post_id: 1, user_id: 3, value: -1 },
      ];
      // Concurrent calls share one job (write.ts group commit).
      const ids = await Promise.all(ops.map((op) => client.write('votes', op)));
      expect(ids).toEqual([['vote-1-2'], ['vote-1-3']]);
      const jobs = await queue.getJobs(['waiting']);
      expect(jobs.map((job) => [job.name, job.data])).toEqual([['votes', { ops }]]);
      for (const bad of [[], [{ id: 7 }], ['x']]) {
        await expect(client.write('votes', bad as never)).rejects.toMatchObject({ code: 'E_BAD_PAYLOAD' });
      }
      await expect(client.write('Bad Sink', ops)).rejects.toMatchObject({ code: 'E_SINK_UNKNOWN' });
    } finally {
      await queue.close();
      await client.close();
    }
  });
});
