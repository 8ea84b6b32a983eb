import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isViewkeeperError } from '../../src/errors.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { eventually, sleep } from '../helpers/client-context.ts';
import { startThrowawayRedis, type ThrowawayRedis } from '../helpers/redis-server.ts';

// Stops Redis for real: a private redis-server on its own port (never the shared 6379), hung with
// SIGSTOP, killed with SIGKILL and restarted on the same port.

const COMMAND_TIMEOUT = 200;
/** Scheduling slack on a shared 2-core machine; the bound under test is the command timeout. */
const SLACK = 300;

let server: ThrowawayRedis;
let admin: Redis;
const VIEWS = { val: { shape: 'value', key: 'val:{id}' }, board: { shape: 'zset', key: 'board' } } as const;
let client: ViewkeeperClient<typeof VIEWS>;

beforeAll(async () => {
  server = await startThrowawayRedis();
  admin = new Redis(server.url, { maxRetriesPerRequest: 1, lazyConnect: true });
  admin.on('error', () => {});
  await admin.connect();
  await admin.set('val:1', 'one');
  client = createClient({
    redisUrl: server.url,
    prefix: 'down',
    views: VIEWS,
    onMiss: 'null',
    l1: { ttlMs: 60_000 },
    commandTimeoutMs: COMMAND_TIMEOUT,
    connectTimeoutMs: COMMAND_TIMEOUT,
    breaker: { failureThreshold: 3, cooldownMs: 500 },
  });
});
afterAll(async () => {
  await client?.close();
  admin?.disconnect();
  if (server) {
    server.child.kill('SIGCONT');
    await server.kill();
  }
});

/** Runs `call`, returning how long it took and what it produced or threw. */
async function timed<T>(call: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    const value = await call();
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

const unavailable = (error: unknown) => isViewkeeperError(error, 'E_UNAVAILABLE');

describe('Redis stopped mid-test', () => {
  it('warm-up: reads fill the L1 while Redis is up', async () => {
    expect(await eventually(() => client.health().subscribed)).toBe(true);
    expect(await client.value('val', { id: 1 })).toBe('one');
    expect(await client.cached('c:warm', () => 'warm', { ttl: 60_000 })).toBe('warm');
    expect(client.health().l1?.entries).toBe(2);
  });

  it('Redis hung (SIGSTOP): every call returns within the command timeout; cached() falls back to the loader; the breaker opens', async () => {
    server.child.kill('SIGSTOP');
    const loader = async () => 'from-loader';
    const calls = [
      await timed(() => client.cached('c:cold', loader)),
      await timed(() => client.value('val', { id: 2 })),
      await timed(() => client.zset('board')),
      await timed(() => client.invalidateTag('t')),
    ];
    for (const call of calls) expect(call.ms).toBeLessThan(COMMAND_TIMEOUT + SLACK);
    expect(calls[0]!.value).toBe('from-loader');
    expect(unavailable(calls[1]!.error)).toBe(true);
    expect(unavailable(calls[2]!.error)).toBe(true);
    expect(unavailable(calls[3]!.error)).toBe(true);
    expect(client.health().breaker).toBe('open');
    expect(client.stats().errors).toBeGreaterThanOrEqual(3);

    // Open breaker: no waiting on Redis at all.
    const fast = await timed(() => client.value('val', { id: 3 }));
    expect(unavailable(fast.error)).toBe(true);
    expect((fast.error as Error).message).toMatch(/circuit breaker open/);
    expect(fast.ms).toBeLessThan(50);
    const fallback = await timed(() => client.cached('c:cold', loader));
    expect(fallback.value).toBe('from-loader');
    expect(fallback.ms).toBeLessThan(50);
  });

  it('Redis killed: L1 copies are still served (as stale once the subscriber is gone), cached() uses the loader', async () => {
    await server.kill(); // SIGKILL also ends a stopped process
    expect(await eventually(() => !client.health().subscribed)).toBe(true);
    const before = client.stats().staleServed;
    const value = await timed(() => client.value('val', { id: 1 }));
    expect(value.value).toBe('one');
    expect(value.ms).toBeLessThan(COMMAND_TIMEOUT + SLACK);
    expect(await client.cached('c:warm', () => 'reloaded')).toBe('warm');
    expect(client.stats().staleServed - before).toBe(2);
    const cold = await timed(() => client.cached('c:other', async () => 'loader'));
    expect(cold.value).toBe('loader');
    expect(cold.ms).toBeLessThan(COMMAND_TIMEOUT + SLACK);
  });

  it('after Redis restarts the breaker closes, the subscriber comes back and the L1 is cleared', async () => {
    server = await startThrowawayRedis(server.port);
    admin.disconnect();
    admin = new Redis(server.url);
    await admin.set('val:1', 'uno'); // the in-memory server came back empty
    await sleep(500); // the breaker's cool-down
    expect(
      await eventually(
        async () => {
          try {
            return (await client.value('val', { id: 1 })) === 'uno';
          } catch {
            return false;
          }
        },
        5000,
        50,
      ),
    ).toBe(true);
    expect(client.health().breaker).toBe('closed');
    expect(await eventually(() => client.health().subscribed, 5000)).toBe(true);
    expect(await client.cached('c:warm', () => 'fresh')).toBe('fresh');
  });
});
