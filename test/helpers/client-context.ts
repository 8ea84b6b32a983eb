import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { FIRST_TEST_REDIS_DB, TEST_REDIS_URL, withDatabase } from './env.ts';

export interface ClientRedisContext {
  /** This worker slot's Redis database (as context.ts chooses it). */
  redisUrl: string;
  /** A prefix unique to this file: pub/sub is not per database. */
  prefix: string;
  redis: Redis;
  /** Deletes every key under the prefix and closes the connection. */
  cleanup(): Promise<void>;
}

/**
 * Isolation for tests that need Redis only: the worker slot's database (FIRST_TEST_REDIS_DB + slot - 1,
 * like createTestContext) and a unique prefix; cleanup removes the prefix's keys only.
 */
export async function createClientRedisContext(): Promise<ClientRedisContext> {
  const slot = Number(process.env.VITEST_POOL_ID ?? '1');
  const redisUrl = withDatabase(TEST_REDIS_URL, String(FIRST_TEST_REDIS_DB + ((slot - 1) % 8)));
  const prefix = `vkc_${randomBytes(4).toString('hex')}`;
  const redis = createRedis(redisUrl, { role: 'views', name: `${prefix}:test` });
  await connectRedis(redis, redisUrl, 'REDIS_URL');
  return {
    redisUrl,
    prefix,
    redis,
    async cleanup() {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await closeRedis(redis);
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; resolves with whether it did. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  everyMs = 10,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}
