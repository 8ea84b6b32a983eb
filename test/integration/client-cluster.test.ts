import { inspect } from 'node:util';
import { Queue, Worker } from 'bullmq';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import usersSink from '../../demo/jobs/sink-users.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { clientKeys } from '../../src/redis/keys.ts';
import { slotOf } from '../../src/redis/slot.ts';
import { type ClientClusterContext, startClientCluster } from '../helpers/client-cluster.ts';
import { eventually } from '../helpers/client-context.ts';
import { type ClientProcess, startClientProcess, stopClientProcesses } from '../helpers/client-processes.ts';
import { everyPartScript, runScript } from '../helpers/client-script.ts';
import { testRedisUrl } from '../helpers/env.ts';
import type { ThrowawayCluster } from '../helpers/redis-cluster.ts';

// The client on a private 3-master Redis Cluster (one replica each) with a password: view reads of
// every shape, cached() single-flight across processes, tags whose counters live on other masters
// than their entries, L1 invalidation by events published on any node, the subscription dropped,
// queues under a hash-tagged prefix, metrics and shutdown. Nodes dying: client-cluster-failover.test.ts.
// View keys are written here the way the daemon lays them out (README "Views").

const PREFIX = 'cst';

let ctx: ClientClusterContext;
let cluster: ThrowawayCluster;
let url: string;
let admin: Cluster;
let client: ViewkeeperClient<typeof VIEWS>;
const keys = clientKeys(PREFIX);

const VIEWS = {
  stats: { shape: 'hash', key: 'cst_stats:{user_id}' },
  votes: { shape: 'value', key: 'cst_votes:{post_id}' },
  top: { shape: 'json', key: 'cst_top' },
  trending: { shape: 'zset', key: 'cst_trending' },
  recent: { shape: 'list', key: 'cst_recent:{user_id}' },
  voters: { shape: 'set', key: 'cst_voters:{post_id}' },
} as const;

beforeAll(async () => {
  ctx = await startClientCluster();
  ({ cluster, url, admin } = ctx);
  client = ctx.client({
    prefix: PREFIX,
    views: VIEWS,
    l1: { ttlMs: 60_000 },
    name: 'main',
    cache: { earlyRefresh: false },
  });
}, 60_000);
afterAll(async () => {
  await client?.close();
  await ctx?.stop();
});

describe('view reads on a cluster', () => {
  it('hash, value, json, zset, rank, list, set and isMember read keys spread over every master', async () => {
    await admin.hset('cst_stats:2', { post_count: '3', total_upvotes: '12' });
    await admin.set('cst_votes:7', '12');
    await admin.set('cst_top', JSON.stringify([{ id: 7, title: 'seven', vote_count: 12 }]));
    await admin.zadd('cst_trending', 12, '7', 5, '8', 1, '9');
    await admin.rpush('cst_recent:1', 'c', 'b', 'a');
    await admin.sadd('cst_voters:7', '42', '12');
    const masters = new Set(
      await Promise.all(
        ['cst_stats:2', 'cst_votes:7', 'cst_top', 'cst_trending', 'cst_recent:1', 'cst_voters:7'].map(
          async (key) => (await cluster.masterOf(key)).port,
        ),
      ),
    );
    expect(masters.size).toBe(3); // not vacuous: the reads really went to different masters

    expect(await client.hash('stats', { user_id: 2 })).toEqual({ post_count: '3', total_upvotes: '12' });
    expect(await client.value('votes', { post_id: 7 })).toBe('12');
    expect(await client.json('top')).toEqual([{ id: 7, title: 'seven', vote_count: 12 }]);
    expect(await client.zset('trending', { top: 2, withScores: true })).toEqual([
      { member: '7', score: 12 },
      { member: '8', score: 5 },
    ]);
    expect(await client.rank('trending', 9)).toBe(2);
    expect(await client.list('recent', { user_id: 1 }, { start: 0, stop: 1 })).toEqual(['c', 'b']);
    expect(await client.set('voters', { post_id: 7 })).toEqual(['12', '42']);
    expect(await client.isMember('voters', { post_id: 7 }, 42)).toBe(true);
    expect(await client.hash('stats', { user_id: 999 })).toBeNull();
    // A zset view built empty (its metadata, in another slot, has a version) is an answer.
    await admin.hset(`${PREFIX}:view:trending`, 'version', '1');
    await admin.del('cst_trending');
    expect(await client.zset('trending', { onMiss: 'refresh' })).toEqual([]);
  });
});

describe('cached() on a cluster', () => {
  it('entry, lock and tag counters of one call sit in different slots, and every step still works', async () => {
    const tags = ['user:1', 'org:2', 'team:3'];
    const slots = new Set([keys.entry('spread'), ...tags.map((tag) => keys.tag(tag))].map(slotOf));
    expect(slots.size).toBe(4);
    let calls = 0;
    const loader = async () => ++calls;
    expect(await client.cached('spread', loader, { tags, l1: false })).toBe(1);
    expect(await client.cached('spread', loader, { tags, l1: false })).toBe(1);
    // A tag whose counter is on another master than the entry: one bump makes the entry miss.
    await client.invalidateTag('org:2');
    expect(await client.cached('spread', loader, { tags, l1: false })).toBe(2);
    expect(await client.cached('spread', loader, { tags, l1: false })).toBe(2);
    // An evicted counter reads as version 0, under which no entry was ever built.
    await admin.del(keys.tag('team:3'));
    expect(await client.cached('spread', loader, { tags, l1: false })).toBe(3);
    // invalidate(key) deletes the entry; the lock was released by the write (nothing left behind).
    expect(await client.invalidate('spread')).toBe(true);
    expect(await client.cached('spread', loader, { tags, l1: false })).toBe(4);
    expect(await admin.exists(keys.entry('spread'))).toBe(1);
  });

  it('invalidateTag appends its event to the stream (another slot) as well as publishing it', async () => {
    expect(slotOf(keys.tag('stream-tag'))).not.toBe(slotOf(`${PREFIX}:events`));
    const version = await client.invalidateTag('stream-tag');
    const latest = await admin.xrevrange(`${PREFIX}:events`, '+', '-', 'COUNT', 1);
    const fields = latest[0]?.[1];
    expect(JSON.parse(fields![1]!)).toEqual({ tag: 'stream-tag', version, at: expect.any(String) });
  });

  it('3 processes × 30 concurrent calls on each of 3 cold keys in different slots: one load per key', async () => {
    const names = ['cold:a', 'cold:b', 'cold:c'];
    expect(new Set(names.map((name) => slotOf(keys.entry(name)))).size).toBe(3);
    let processes: ClientProcess[] = [];
    try {
      processes = await Promise.all(
        [1, 2, 3].map(() =>
          startClientProcess(
            {
              redisUrl: url,
              queueRedisUrl: testRedisUrl(),
              prefix: PREFIX,
              cache: { lockTtlMs: 2000, lockWaitMs: 20_000 },
              // A fresh process's first calls open a connection per node; on a loaded machine that
              // can take over the default 1 s, and a timed-out read falls back to the loader.
              commandTimeoutMs: 5000,
            },
            url,
          ),
        ),
      );
      const replies = await Promise.all(
        processes.flatMap((proc) =>
          names.map((name) =>
            proc.call({
              op: 'cached',
              key: name,
              concurrency: 30,
              loader: { counterKey: `${PREFIX}:loads:${name}`, ms: 300 },
              options: { ttl: 60_000, tags: [`t:${name}`] },
            }),
          ),
        ),
      );
      for (const name of names) expect(await admin.get(`${PREFIX}:loads:${name}`)).toBe('1');
      for (const reply of replies) {
        expect(reply.ok).toBe(true);
        const values = reply.result as { attempt: number }[];
        expect(values).toHaveLength(30);
        for (const value of values) expect(value.attempt).toBe(1);
      }
    } finally {
      await stopClientProcesses(processes);
    }
  });
});

describe('metrics on a cluster', () => {
  it('close() adds the counters to {prefix}:client:stats and the sampled reads to the hot-key set', async () => {
    const prefix = 'cstm';
    const own = ctx.client({ prefix, statsFlushMs: 0, hotKeySampleRate: 1 });
    await own.cached('m', () => 1);
    await own.cached('m', () => 1);
    await own.close();
    expect(await admin.hgetall(`${prefix}:client:stats`)).toEqual({
      hits: '1',
      misses: '1',
      loader_calls: '1',
    });
    expect(await admin.zscore(`${prefix}:client:hot-keys`, `${prefix}:cache:m`)).toBe('2');
  });
});

describe('L1 on a cluster', () => {
  it('a view event published on a node other than the subscriber’s drops the copy', async () => {
    expect(await eventually(() => client.health().subscribed)).toBe(true);
    await admin.hset('cst_stats:12', 'total_upvotes', 'old');
    expect(await client.hash('stats', { user_id: 12 })).toEqual({ total_upvotes: 'old' });
    await admin.hset('cst_stats:12', 'total_upvotes', 'new');
    expect(await client.hash('stats', { user_id: 12 })).toEqual({ total_upvotes: 'old' }); // the L1 copy
    const own = await ctx.subscriberPort(PREFIX, 'main');
    const other = cluster.ports.find((port) => port !== own)!;
    const event = { view: 'stats', keys: ['cst_stats:12'], version: 2, at: new Date().toISOString() };
    await ctx.onNode(other, (redis) => redis.publish(`${PREFIX}:events`, JSON.stringify(event)));
    expect(
      await eventually(async () => (await client.hash('stats', { user_id: 12 }))?.total_upvotes === 'new'),
    ).toBe(true);
  });

  it('a tag invalidated by another client drops the tagged copy', async () => {
    let calls = 0;
    const loader = async () => ++calls;
    expect(await client.cached('l1-tagged', loader, { tags: ['shared'], ttl: 60_000 })).toBe(1);
    const before = client.stats().l1Hits;
    expect(await client.cached('l1-tagged', loader, { tags: ['shared'], ttl: 60_000 })).toBe(1);
    expect(client.stats().l1Hits - before).toBe(1);
    const other = ctx.client({ prefix: PREFIX });
    try {
      await other.invalidateTag('shared');
    } finally {
      await other.close();
    }
    expect(
      await eventually(async () => (await client.cached('l1-tagged', loader, { tags: ['shared'] })) === 2),
    ).toBe(true);
  });

  it('when the subscription drops, the client re-subscribes (on any node) and clears the L1', async () => {
    await admin.hset('cst_stats:13', 'total_upvotes', 'before');
    expect(await client.hash('stats', { user_id: 13 })).toEqual({ total_upvotes: 'before' });
    expect(client.health().l1!.entries).toBeGreaterThan(0);
    const port = await ctx.subscriberPort(PREFIX, 'main');
    await ctx.onNode(port, async (redis) => {
      const line = String(await redis.client('LIST'))
        .split('\n')
        .find((entry) => entry.includes(`name=${PREFIX}:client-events:main `));
      await redis.client('KILL', 'ID', /\bid=(\d+)/.exec(line!)![1]!);
    });
    // A change without an event, as if its message was lost while the subscriber was away.
    await admin.hset('cst_stats:13', 'total_upvotes', 'unannounced');
    expect(await eventually(() => client.health().l1!.entries === 0)).toBe(true);
    expect(await eventually(() => client.health().subscribed, 5000)).toBe(true);
    expect(await client.hash('stats', { user_id: 13 })).toEqual({ total_upvotes: 'unannounced' });
  });
});

describe('queues on a cluster', () => {
  it('refuses a prefix without a hash tag when the queues are on the cluster, with one line', () => {
    let error: unknown;
    try {
      createClient({ redisUrl: url, prefix: 'vk' });
    } catch (caught) {
      error = caught;
    }
    expect(isViewkeeperError(error, 'E_CONFIG')).toBe(true);
    expect((error as Error).message).toMatch(/prefix="vk" needs a hash tag such as "\{vk\}"/);
    expect((error as Error).message).not.toContain('\n');
    expect((error as Error).message).not.toContain(ctx.password);
  });

  it('refresh() and write() enqueue under a hash-tagged prefix', async () => {
    const prefix = '{cstq}';
    const queued = createClient({ redisUrl: url, prefix, sinks: [usersSink] });
    const queue = new Queue('refresh', { connection: admin, prefix });
    const writes = new Queue('write-behind', { connection: admin, prefix });
    try {
      const { jobId } = await queued.refresh('stats', { user_id: 1 }, { timeoutMs: 5000 });
      const job = await queue.getJob(jobId);
      expect(job?.name).toBe('stats');
      expect(job?.data).toMatchObject({ params: { user_id: 1 } });
      // Two ops in one job whose cache effects write keys on two masters.
      expect((await cluster.masterOf('user:3')).port).not.toBe((await cluster.masterOf('user:4')).port);
      const ids = await queued.write('users', [
        { id: 'op-cluster-3', user_id: 3, name: 'three', email: 'three@example.com', org_id: null },
        { id: 'op-cluster-4', user_id: 4, name: 'four', email: 'four@example.com', org_id: 1 },
      ]);
      expect(ids).toEqual(['op-cluster-3', 'op-cluster-4']);
      const waiting = await writes.getJobs(['waiting']);
      expect(waiting.flatMap((j) => j.data.ops.map((op: { id: string }) => op.id))).toEqual(ids);
      // The cache effects are sent, not awaited, by write(); read from another connection, each
      // master's pipeline lands in its own time.
      expect(await eventually(async () => (await admin.hget('user:4', 'name')) === 'four')).toBe(true);
      expect(await eventually(async () => (await admin.hget('user:3', 'name')) === 'three')).toBe(true);
    } finally {
      await queued.close();
      await queue.close();
      await writes.close();
    }
  });

  it('a miss with onMiss refresh enqueues, waits for the view event and reads; refresh({ wait }) gets the result', async () => {
    const prefix = '{cstw}';
    // A stand-in for the daemon: it writes the requested row and publishes the view's event.
    const connection = ctx.connect({ maxRetriesPerRequest: null });
    const worker = new Worker(
      'refresh',
      async (job) => {
        const key = `cst_stats:${job.data.params.user_id}`;
        await admin.hset(key, 'total_upvotes', 'refreshed');
        const event = { view: job.name, keys: [key], version: 1, at: new Date().toISOString() };
        await admin.publish(`${prefix}:events`, JSON.stringify(event));
        return { view: job.name, kind: 'partial', rows: 1, version: 1, ms: 1, keys: 1, superseded: false };
      },
      { connection, prefix },
    );
    worker.on('error', () => {});
    const reader = createClient({ redisUrl: url, prefix, views: VIEWS });
    try {
      expect(await reader.hash('stats', { user_id: 77 }, { timeoutMs: 15_000 })).toEqual({
        total_upvotes: 'refreshed',
      });
      const { result } = await reader.refresh('stats', { user_id: 78 }, { wait: true, timeoutMs: 15_000 });
      expect(result).toMatchObject({ view: 'stats', kind: 'partial', rows: 1 });
    } finally {
      await reader.close();
      await worker.close();
      connection.disconnect();
    }
  });
});

describe('errors on a cluster', () => {
  it('a refused password: calls fail with E_UNAVAILABLE naming the nodes, and no password appears anywhere', async () => {
    const wrong = 'wrong-pass-3e9a';
    const refused = createClient({
      redisUrl: url.replace(ctx.password, wrong),
      prefix: '{cste}',
      views: VIEWS,
      onMiss: 'null',
    });
    try {
      const error = await refused.value('votes', { post_id: 7 }).catch((caught: unknown) => caught);
      expect(isViewkeeperError(error, 'E_UNAVAILABLE')).toBe(true);
      expect((error as Error).message).toMatch(/^Redis Cluster at 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,/);
      const dump = inspect(error, { depth: 10 });
      expect(dump).not.toContain(wrong);
      expect(dump).not.toContain(ctx.password);
    } finally {
      await refused.close();
    }
  });
});

describe('lifecycle on a cluster', () => {
  it('a process that used every part of a cluster client and closed it exits on its own', async () => {
    const options = {
      redisUrl: url,
      prefix: '{cstl}',
      l1: true,
      views: { stats: { shape: 'hash', key: 'cstl_stats:{id}' } },
      onMiss: 'null',
      statsFlushMs: 50,
    };
    expect(await runScript(everyPartScript(options), 20_000)).toEqual({ code: 0, stderr: '' });
  });
});
