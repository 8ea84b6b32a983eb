import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';
import type { Database } from '../../demo/schema.ts';
import { type ResolvedConfig, resolveConfig } from '../../src/config/config.ts';
import { createDb, type DbHandle } from '../../src/db/create-db.ts';
import type { ViewkeeperDatabase } from '../../src/db/schema.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { TEST_DATABASE_URL, testRedisUrl, withDatabase } from './env.ts';
import { leaseRedisDatabase } from './redis-lease.ts';

export type TestDatabase = Database & ViewkeeperDatabase;

export interface TestContext {
  /** This file's own database, cloned from the migrated template. */
  databaseUrl: string;
  /** This file's own Redis database. */
  redisUrl: string;
  /** A key prefix unique to this file (VK_PREFIX). */
  prefix: string;
  /** The environment a daemon or CLI for this file should get. */
  env: Record<string, string>;
  config: ResolvedConfig;
  /** Typed with the demo's tables and viewkeeper's own: test files use both. */
  db: DbHandle<TestDatabase>;
  redis: Redis;
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
  const { db: redisDb, release } = await leaseRedisDatabase(id);
  const databaseUrl = withDatabase(TEST_DATABASE_URL, database);
  const redisUrl = withDatabase(testRedisUrl(), String(redisDb));
  const prefix = `vkt_${id}`;
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, VK_PREFIX: prefix, LOG_LEVEL: 'warn' };
  const db = createDb<TestDatabase>(databaseUrl, { max: 4 });
  const redis = createRedis(redisUrl, { role: 'views', name: 'test' });
  await connectRedis(redis, redisUrl, 'REDIS_URL');
  await redis.flushdb();

  let cleaned = false;
  return {
    databaseUrl,
    redisUrl,
    prefix,
    env,
    config: resolveConfig(env),
    db,
    redis,
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await redis.flushdb().catch(() => {});
      await closeRedis(redis);
      await release();
      await db.close();
      await admin((client) =>
        client.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`),
      );
    },
  };
}
