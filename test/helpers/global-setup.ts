import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrateDemo } from '../../demo/migrate.ts';
import { TEST_DATABASE_URL, withDatabase } from './env.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

/**
 * Migrates one template database per run; each test file clones it (CREATE DATABASE … TEMPLATE),
 * which takes milliseconds instead of re-running migrations.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const template = `vk_tpl_${process.pid}_${Date.now().toString(36)}`;
  await migrateDemo(withDatabase(TEST_DATABASE_URL, template));
  project.provide('templateDatabase', template);
  return async () => {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${pg.escapeIdentifier(template)} with (force)`);
    } finally {
      await admin.end();
    }
  };
}
