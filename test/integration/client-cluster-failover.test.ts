import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isViewkeeperError } from '../../src/errors.ts';
import type { ViewkeeperClient } from '../../src/index.ts';
import { type ClientClusterContext, startClientCluster } from '../helpers/client-cluster.ts';
import { eventually, sleep } from '../helpers/client-context.ts';

// The client on a private 3-master Redis Cluster while nodes hang and die: the events subscription
// leaves a hung or dead node (and the L1 is cleared, since events may have been missed), and the
// breaker opens while a master is gone and closes after its replica took over. No error carries the
// cluster's password.

const PREFIX = 'csf';
const VIEWS = {
  stats: { shape: 'hash', key: 'csf_stats:{user_id}' },
  votes: { shape: 'value', key: 'csf_votes:{post_id}' },
} as const;

let ctx: ClientClusterContext;
let client: ViewkeeperClient<typeof VIEWS>;

beforeAll(async () => {
  ctx = await startClientCluster();
  client = ctx.client({ prefix: PREFIX, views: VIEWS, l1: { ttlMs: 60_000 }, name: 'main' });
}, 60_000);
afterAll(async () => {
  await client?.close();
  await ctx?.stop();
});

/** Fills the L1 with one row and returns the node holding the client's events subscription. */
async function subscriberNodeWithL1(userId: number) {
  await ctx.admin.hset(`csf_stats:${userId}`, 'total_upvotes', 'before');
  expect(await client.hash('stats', { user_id: userId })).toEqual({ total_upvotes: 'before' });
  expect(client.health().l1!.entries).toBeGreaterThan(0);
  const port = await ctx.subscriberPort(PREFIX, 'main');
  return ctx.cluster.nodes.find((candidate) => candidate.port === port)!;
}

describe('nodes die', () => {
  it('the subscriber’s node hangs (SIGSTOP): the missed PING moves the subscription and clears the L1', async () => {
    const node = await subscriberNodeWithL1(15);
    node.server.child.kill('SIGSTOP');
    try {
      // The socket stays open: only the heartbeat can tell (every 1 s, 1 s to answer).
      expect(await eventually(() => client.health().l1!.entries === 0, 10_000)).toBe(true);
      expect(await eventually(() => client.health().subscribed, 10_000)).toBe(true);
    } finally {
      node.server.child.kill('SIGCONT');
    }
    expect(await ctx.subscriberPort(PREFIX, 'main')).not.toBe(node.port);
    await ctx.cluster.waitHealthy(30_000);
  }, 60_000);

  it('the subscriber’s node killed: the subscription moves to another node and the L1 is cleared', async () => {
    const node = await subscriberNodeWithL1(14);
    await ctx.cluster.kill(node);
    expect(await eventually(() => client.health().l1!.entries === 0, 5000)).toBe(true);
    expect(await eventually(() => client.health().subscribed, 10_000)).toBe(true);
    expect(await ctx.subscriberPort(PREFIX, 'main')).not.toBe(node.port);
    // Back to three masters with a replica each for the next test (a dead master fails over first).
    await ctx.cluster.waitHealthy(30_000);
    await ctx.cluster.restart(node);
    await ctx.cluster.waitHealthy(30_000);
  }, 90_000);

  it('calls on its slots fail fast, the breaker opens, and closes again after the failover; no password in any error', async () => {
    const breaking = ctx.client({
      prefix: PREFIX,
      views: VIEWS,
      commandTimeoutMs: 300,
      connectTimeoutMs: 300,
      breaker: { failureThreshold: 3, cooldownMs: 500 },
      name: 'breaking',
    });
    try {
      await ctx.admin.set('csf_votes:99', 'before');
      const master = await ctx.cluster.masterOf('csf_votes:99');
      // The replica has it before the kill (replication is asynchronous).
      await ctx.onNode(master.port, (redis) => redis.call('WAIT', '1', '2000'));
      const readsBefore = async () =>
        (await breaking.value('votes', { post_id: 99 }).catch(() => null)) === 'before';
      // Its first connection to a cluster takes a few round trips: on a loaded machine, past 300 ms.
      expect(await eventually(readsBefore, 10_000, 50)).toBe(true);
      expect(breaking.health().breaker).toBe('closed');
      await ctx.cluster.kill(master);

      const errors: unknown[] = [];
      expect(
        await eventually(
          async () => {
            const started = performance.now();
            try {
              await breaking.value('votes', { post_id: 99 });
            } catch (error) {
              errors.push(error);
              expect(performance.now() - started).toBeLessThan(300 + 700);
            }
            return breaking.health().breaker === 'open';
          },
          15_000,
          20,
        ),
      ).toBe(true);
      expect(errors.length).toBeGreaterThanOrEqual(3);
      for (const error of errors) {
        expect(isViewkeeperError(error, 'E_UNAVAILABLE')).toBe(true);
        expect((error as Error).message).toMatch(/^Redis Cluster at 127\.0\.0\.1:\d+,/);
        expect(inspect(error, { depth: 10 })).not.toContain(ctx.password);
      }

      await ctx.cluster.waitHealthy(30_000);
      await sleep(500); // the cool-down
      expect(await eventually(readsBefore, 15_000, 100)).toBe(true);
      expect(breaking.health().breaker).toBe('closed');
      // The main client's subscriber may have been on the dead node: it is subscribed again.
      expect(await eventually(() => client.health().subscribed, 10_000)).toBe(true);
    } finally {
      await breaking.close();
    }
  }, 60_000);
});
