import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientOptions } from '../../src/client/options.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { isCluster } from '../../src/redis/connections.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import type { RefreshEngine } from '../../src/views/refresh-engine.ts';
import { eventually, sleep } from '../helpers/client-context.ts';
import { type ClientProcess, startClientProcess, stopClientProcesses } from '../helpers/client-processes.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createEngine, type DemoView, loadDemoViews, seedSmall } from '../helpers/views.ts';

// L1 coherence: every process's in-process copy goes when the data changes — after the daemon's
// refresh events (partial: by key; full: the whole view), tag invalidations and key writes — and
// after the subscriber reconnects (it may have missed messages). The L1 lifetime is one minute
// throughout, so only an invalidation can explain a fresh value.

let ctx: TestContext;
let engine: RefreshEngine;
let views: Record<DemoView, ViewDefinition>;
let processes: ClientProcess[] = [];
let client: ViewkeeperClient<typeof VIEWS>;
let userId: string;

const VIEWS = { user_stats: { shape: 'hash', key: 'user_stats:{user_id}' } } as const;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  views = await loadDemoViews();
  engine = createEngine(ctx);
  await engine.refresh(views.user_stats);
  const row = await sql<{ user_id: string }>`select user_id::text from posts limit 1`.execute(ctx.db.db);
  userId = row.rows[0]!.user_id;
  const options: ClientOptions = {
    redisUrl: ctx.redisUrl,
    prefix: ctx.prefix,
    l1: { ttlMs: 60_000 },
    views: VIEWS,
  };
  processes = await Promise.all([1, 2].map(() => startClientProcess(options, ctx.redisUrl)));
  client = createClient({ ...options, views: VIEWS, name: 'l1-test' });
});
afterAll(async () => {
  await stopClientProcesses(processes);
  await client?.close();
  await ctx?.cleanup();
});

async function upvotesIn(proc: ClientProcess): Promise<string> {
  const reply = await proc.call({ op: 'hash', view: 'user_stats', params: { user_id: userId } });
  if (!reply.ok) throw new Error(reply.error);
  return (reply.result as Record<string, string>).total_upvotes!;
}

async function bumpUpvotes(by: number): Promise<void> {
  await sql`update posts set upvotes = upvotes + ${by} where user_id = ${userId}`.execute(ctx.db.db);
}

/** Reads through every process until each sees `expected` (bounded). */
async function everyProcessSees(expected: string): Promise<boolean> {
  const seen = await Promise.all(
    processes.map((proc) => eventually(async () => (await upvotesIn(proc)) === expected, 3000)),
  );
  return seen.every(Boolean);
}

describe('L1 coherence across processes', () => {
  it('reads are served from each process L1 until the view changes', async () => {
    for (const proc of processes) await upvotesIn(proc);
    const replies = await Promise.all(
      processes.map((proc) => proc.call({ op: 'hash', view: 'user_stats', params: { user_id: userId } })),
    );
    for (const reply of replies) expect(reply.stats!.l1Hits).toBeGreaterThanOrEqual(1);
  });

  it('a partial refresh event (keys) drops the copy in every process', async () => {
    const old = await upvotesIn(processes[0]!);
    await bumpUpvotes(100);
    // Still the L1 copy: nothing told the processes yet.
    expect(await upvotesIn(processes[0]!)).toBe(old);
    const outcome = await engine.refresh(views.user_stats, { user_id: userId });
    expect(outcome).toMatchObject({ status: 'done', keys: [`user_stats:${userId}`] });
    const updated = await ctx.redis.hget(`user_stats:${userId}`, 'total_upvotes');
    expect(updated).not.toBe(old);
    expect(await everyProcessSees(updated!)).toBe(true);
  });

  it('a full rebuild event (keys: null) drops every copy of the view in every process', async () => {
    await bumpUpvotes(7);
    const outcome = await engine.refresh(views.user_stats);
    expect(outcome).toMatchObject({ status: 'done', keys: null });
    const updated = await ctx.redis.hget(`user_stats:${userId}`, 'total_upvotes');
    expect(await everyProcessSees(updated!)).toBe(true);
  });

  it('invalidateTag in one process drops the tagged cached() copy in every process; one reload in total', async () => {
    const counterKey = `${ctx.prefix}:loads:profile`;
    const call = (proc: ClientProcess) =>
      proc.call({
        op: 'cached',
        key: 'profile',
        concurrency: 1,
        loader: { counterKey, ms: 10 },
        options: { ttl: 60_000, tags: ['user:1'] },
      });
    const attemptIn = async (proc: ClientProcess) =>
      ((await call(proc)).result as { attempt: number }[])[0]!.attempt;
    for (const proc of processes) expect(await attemptIn(proc)).toBe(1);
    const hits = await Promise.all(processes.map(call));
    for (const reply of hits) expect(reply.stats!.l1Hits).toBeGreaterThanOrEqual(1);

    await client.invalidateTag('user:1');
    for (const proc of processes)
      expect(await eventually(async () => (await attemptIn(proc)) === 2)).toBe(true);
    expect(await ctx.redis.get(counterKey)).toBe('2');
  });

  it('a process keeps its own fresh write in L1 (its own key event is recognised by id)', async () => {
    expect(await eventually(() => client.health().subscribed)).toBe(true);
    await client.cached('own', () => 'mine', { ttl: 60_000 });
    await sleep(100); // our own key event has arrived by now
    const before = client.stats().l1Hits;
    expect(await client.cached('own', () => 'other', { ttl: 60_000 })).toBe('mine');
    expect(client.stats().l1Hits - before).toBe(1);
  });

  it('a subscriber that reconnects clears the L1: changes it may have missed are not served', async () => {
    expect(await eventually(() => client.health().subscribed)).toBe(true);
    const old = (await client.hash('user_stats', { user_id: userId }))!.total_upvotes;
    expect(client.health().l1!.entries).toBeGreaterThan(0);
    // The subscriber's connection, on whichever node it is (every node on a cluster).
    const nodes = isCluster(ctx.redis) ? ctx.redis.nodes('all') : [ctx.redis];
    let killed = 0;
    for (const node of nodes) {
      const line = String(await node.client('LIST'))
        .split('\n')
        .find((entry) => entry.includes(`name=${ctx.prefix}:client-events:l1-test`));
      const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
      if (id) killed += Number(await node.client('KILL', 'ID', id));
    }
    expect(killed).toBe(1);
    // A change without an event, as if its message was lost while the subscriber was away.
    await ctx.redis.hset(`user_stats:${userId}`, 'total_upvotes', 'changed-unannounced');
    expect(await eventually(() => client.health().l1!.entries === 0)).toBe(true);
    expect(await eventually(() => client.health().subscribed)).toBe(true);
    expect((await client.hash('user_stats', { user_id: userId }))!.total_upvotes).toBe('changed-unannounced');
    expect(old).not.toBe('changed-unannounced');
  });
});
