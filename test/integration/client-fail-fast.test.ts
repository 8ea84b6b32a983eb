import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { isViewkeeperError } from '../../src/errors.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { eventually, sleep } from '../helpers/client-context.ts';
import { startThrowawayRedis, type ThrowawayRedis } from '../helpers/redis-server.ts';

// A client whose Redis is gone (a private redis-server, killed) fails every call at once instead of
// waiting for the connection to come back, and its breaker's half-open probe waits for a connection
// that reports ready. The command timeout is long (1 s) so that waiting on it cannot pass for failing fast.

const COMMAND_TIMEOUT = 1000;
/** Far below the command timeout; slack for a loaded machine. */
const FAST = 100;
const VIEWS = { val: { shape: 'value', key: 'val:{id}' } } as const;

let server: ThrowawayRedis | undefined;
let client: ViewkeeperClient<typeof VIEWS> | undefined;
afterEach(async () => {
  await client?.close();
  await server?.kill();
});

async function timed<T>(call: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    return { ms: performance.now() - started, value: await call() };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

async function setUp(breaker: { failureThreshold: number; cooldownMs: number }) {
  server = await startThrowawayRedis();
  const admin = new Redis(server.url);
  await admin.set('val:1', 'one');
  admin.disconnect();
  client = createClient({
    redisUrl: server.url,
    prefix: 'fast',
    views: VIEWS,
    onMiss: 'null',
    commandTimeoutMs: COMMAND_TIMEOUT,
    connectTimeoutMs: COMMAND_TIMEOUT,
    breaker,
  });
  expect(await client.value('val', { id: 1 })).toBe('one');
  return client;
}

/** Kills Redis and waits until the client has noticed (a call fails). */
async function killRedis(c: ViewkeeperClient<typeof VIEWS>): Promise<void> {
  await server!.kill();
  const noticed = await eventually(
    async () => (await timed(() => c.value('val', { id: 1 }))).error !== undefined,
  );
  expect(noticed).toBe(true);
}

describe('client against a Redis that is gone', () => {
  it('fails every call at once while the connection is not ready, not after the command timeout', async () => {
    const c = await setUp({ failureThreshold: 1000, cooldownMs: 60_000 }); // the breaker stays closed
    await killRedis(c);
    for (let i = 0; i < 5; i++) {
      const call = await timed(() => c.value('val', { id: 1 }));
      expect(isViewkeeperError(call.error, 'E_UNAVAILABLE')).toBe(true);
      expect(call.ms).toBeLessThan(FAST);
    }
    expect(c.health().breaker).toBe('closed');
  });

  it('keeps the half-open probe for a connection that reports ready; the probe closes the breaker', async () => {
    const c = await setUp({ failureThreshold: 2, cooldownMs: 300 });
    const port = server!.port;
    await killRedis(c);
    await eventually(async () => {
      await timed(() => c.value('val', { id: 1 }));
      return c.health().breaker === 'open';
    });
    expect(c.health().breaker).toBe('open');
    await sleep(400); // past the cool-down, Redis still down: no probe may be spent waiting on it
    for (let i = 0; i < 3; i++) {
      const call = await timed(() => c.value('val', { id: 1 }));
      expect(isViewkeeperError(call.error, 'E_UNAVAILABLE')).toBe(true);
      expect(call.ms).toBeLessThan(FAST);
    }
    expect(c.health().breaker).toBe('half-open');

    server = await startThrowawayRedis(port);
    const admin = new Redis(server.url);
    await admin.set('val:1', 'back');
    admin.disconnect();
    // Once reconnected, the first call is the probe: a real command, which succeeds and closes it.
    expect(
      await eventually(async () => (await timed(() => c.value('val', { id: 1 }))).value === 'back', 5000, 50),
    ).toBe(true);
    expect(c.health().breaker).toBe('closed');
  });
});
