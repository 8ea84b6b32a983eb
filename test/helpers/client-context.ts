import { randomBytes } from 'node:crypto';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  type RedisConnection,
} from '../../src/redis/connections.ts';
import { flush } from './context.ts';
import { testClusterUrl, testRedisUrl, withDatabase } from './env.ts';
import { leaseRedisDatabase } from './redis-lease.ts';

export interface ClientRedisContext {
  /** This file's own Redis database, leased like context.ts does; in the `cluster` project the whole private cluster. */
  redisUrl: string;
  /** A prefix unique to this file: pub/sub is not per database. */
  prefix: string;
  redis: RedisConnection;
  /** Flushes the database, closes the connection and releases the lease. */
  cleanup(): Promise<void>;
}

/**
 * Isolation for tests that need Redis only: a leased database of its own (see redis-lease.ts) and a
 * unique prefix, since pub/sub channels are shared by every database.
 */
export async function createClientRedisContext(): Promise<ClientRedisContext> {
  const id = randomBytes(4).toString('hex');
  // In the `cluster` project each file has the whole private cluster (one file at a time, see
  // context.ts), and queues on a cluster need a hash-tagged prefix.
  const clusterUrl = testClusterUrl();
  const { db, release } = clusterUrl ? { db: 0, release: async () => {} } : await leaseRedisDatabase(id);
  const redisUrl = clusterUrl ?? withDatabase(testRedisUrl(), String(db));
  const prefix = clusterUrl ? `{vkc_${id}}` : `vkc_${id}`;
  const redis = createRedisConnection(redisUrl, { role: 'views', name: `${prefix}:test` });
  await connectRedis(redis, redisUrl, 'REDIS_URL');
  await flush(redis);
  return {
    redisUrl,
    prefix,
    redis,
    async cleanup() {
      await flush(redis).catch(() => {});
      await closeRedis(redis);
      await release();
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
