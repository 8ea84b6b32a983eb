import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.ts';
import { TEST_DATABASE_URL, withDatabase } from '../helpers/env.ts';

// Migrations run against a database of their own (not the cloned template), created by migrate itself.
const database = `vk_migrate_${randomBytes(4).toString('hex')}`;
const url = withDatabase(TEST_DATABASE_URL, database);

afterAll(async () => {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`drop database if exists ${pg.escapeIdentifier(database)} with (force)`);
  await admin.end();
});

describe('migrate', () => {
  it('creates a missing database, applies every migration, and applies nothing the second time', async () => {
    const first = await migrate(url);
    expect(first.createdDatabase).toBe(true);
    expect(first.applied).toEqual(
      readdirSync(MIGRATIONS_DIR)
        .map((file) => file.replace(/\.ts$/, ''))
        .sort(),
    );

    const second = await migrate(url);
    expect(second).toEqual({ applied: [], createdDatabase: false });

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const tables = await client.query<{ name: string }>(
        `select table_schema || '.' || table_name as name from information_schema.tables
         where table_schema in ('public', 'viewkeeper') order by 1`,
      );
      expect(tables.rows.map((row) => row.name)).toEqual(
        expect.arrayContaining([
          'public.posts',
          'public.users',
          'public.votes',
          'viewkeeper.kysely_migration',
        ]),
      );
      const indexes = await client.query<{ indexname: string }>(
        `select indexname from pg_indexes where schemaname = 'public' order by 1`,
      );
      expect(indexes.rows.map((row) => row.indexname)).toEqual(
        expect.arrayContaining(['posts_user_id_idx', 'votes_created_at_idx', 'votes_user_id_idx']),
      );
    } finally {
      await client.end();
    }
  });
});
