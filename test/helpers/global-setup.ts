import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrateDemo } from '../../demo/migrate.ts';
import { TEST_DATABASE_URL, withDatabase } from './env.ts';
import { startThrowawayRedis, type ThrowawayRedis } from './redis-server.ts';

/**
 * Once per run: a private Redis server for the run (unless VK_TEST_REDIS_URL names one), and one
 * migrated template database that each test file clones (CREATE DATABASE … TEMPLATE), which takes
 * milliseconds instead of re-running migrations. Both go away at the end of the run.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let redis: ThrowawayRedis | undefined;
  if (!process.env.VK_TEST_REDIS_URL) {
    redis = await startThrowawayRedis();
    project.provide('testRedisUrl', redis.url);
  }
  const template = `vk_tpl_${process.pid}_${Date.now().toString(36)}`;
  try {
    await migrateDemo(withDatabase(TEST_DATABASE_URL, template));
  } catch (error) {
    await redis?.kill();
    throw error;
  }
  project.provide('templateDatabase', template);
  return async () => {
    await redis?.kill();
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${pg.escapeIdentifier(template)} with (force)`);
    } finally {
      await admin.end();
    }
  };
}
