import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { Database } from '../../demo/schema.ts';
import { type ResolvedConfig, resolveConfig } from '../../src/config/config.ts';
import { createDb, type DbHandle } from '../../src/db/create-db.ts';
import type { ViewkeeperDatabase } from '../../src/db/schema.ts';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  duplicateConnection,
  isCluster,
  type RedisConnection,
} from '../../src/redis/connections.ts';
import { TEST_DATABASE_URL, testClusterUrl, testRedisUrl, withDatabase } from './env.ts';
import { leaseRedisDatabase } from './redis-lease.ts';

export type TestDatabase = Database & ViewkeeperDatabase;

export interface TestContext {
  /** This file's own database, cloned from the migrated template. */
  databaseUrl: string;
  /** This file's own Redis database; in the `cluster` project the whole private cluster. */
  redisUrl: string;
  /** True in the `cluster` project. */
  cluster: boolean;
  /** A key prefix unique to this file (VK_PREFIX). */
  prefix: string;
  /** The environment a daemon or CLI for this file should get. */
  env: Record<string, string>;
  config: ResolvedConfig;
  /** Typed with the demo's tables and viewkeeper's own: test files use both. */
  db: DbHandle<TestDatabase>;
  redis: RedisConnection;
  /** A second connection like `redis` (for a subscriber or a concurrent reader); the caller closes it. */
  duplicateRedis(): RedisConnection;
  /** Drops the database, flushes the Redis database, closes connections. */
  cleanup(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Gives the calling test file its own database and Redis database. Call in `beforeAll`, and call
 * `cleanup()` in `afterAll`.
 *
 * Redis isolation: the file leases one of the databases firstTestRedisDb()..15 (a `SET NX` with an
 * expiry in database 0), so files running at the same time — in this vitest process or another one —
 * never share one. Pub/sub is not per-database, hence the unique prefix as well.
 *
 * In the `cluster` project (a Redis Cluster has only database 0) each file gets the whole private
 * cluster: that project runs one file at a time (vitest.config.ts) and every master is flushed
 * before and after each file. A prefix alone could not isolate files: view keys come from the
 * views' own templates (`user_stats:{user_id}`), not from the prefix. The prefix is hash-tagged
 * (`{vkt_…}`), as the queues on a cluster require.
 */
export async function createTestContext(): Promise<TestContext> {
  const id = randomBytes(4).toString('hex');
  const database = `vk_test_${id}`;
  const template = inject('templateDatabase');
  await admin((client) =>
    client.query(
      `create database ${pg.escapeIdentifier(database)} template ${pg.escapeIdentifier(template)}`,
    ),
  );
  const clusterUrl = testClusterUrl();
  const { db: redisDb, release } = clusterUrl
    ? { db: 0, release: async () => {} }
    : await leaseRedisDatabase(id);
  const databaseUrl = withDatabase(TEST_DATABASE_URL, database);
  const redisUrl = clusterUrl ?? withDatabase(testRedisUrl(), String(redisDb));
  const prefix = clusterUrl ? `{vkt_${id}}` : `vkt_${id}`;
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, VK_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const db = createDb<TestDatabase>(databaseUrl, { max: 4 });
  const redis = createRedisConnection(redisUrl, { role: 'views', name: 'test' });
  await connectRedis(redis, redisUrl, 'REDIS_URL');
  await flush(redis);

  let cleaned = false;
  return {
    databaseUrl,
    redisUrl,
    cluster: clusterUrl !== undefined,
    prefix,
    env,
    config: resolveConfig(env),
    db,
    redis,
    duplicateRedis: () => duplicateConnection(redis),
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await flush(redis).catch(() => {});
      await closeRedis(redis);
      await release();
      await db.close();
      await admin((client) =>
        client.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`),
      );
    },
  };
}

/** Empties this file's Redis: its database, or every master of the private cluster. */
export async function flush(redis: RedisConnection): Promise<void> {
  if (!isCluster(redis)) {
    await redis.flushdb();
    return;
  }
  await Promise.all(redis.nodes('master').map((node) => node.flushall()));
}
