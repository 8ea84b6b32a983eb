import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_MIGRATIONS_DIR, migrateDemo } from '../../demo/migrate.ts';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.ts';
import { TEST_DATABASE_URL, withDatabase } from '../helpers/env.ts';

// Migrations run against databases of their own (not the cloned template), created by migrate itself.
const databases: string[] = [];
function freshDatabase(): string {
  const name = `vk_migrate_${randomBytes(4).toString('hex')}`;
  databases.push(name);
  return withDatabase(TEST_DATABASE_URL, name);
}

afterAll(async () => {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  for (const name of databases)
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  await admin.end();
});

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

const names = (dir: string) =>
  readdirSync(dir)
    .map((file) => file.replace(/\.ts$/, ''))
    .sort();

const tablesIn = async (url: string) =>
  (
    await query<{ name: string }>(
      url,
      `select table_schema || '.' || table_name as name from information_schema.tables
       where table_schema in ('public', 'viewkeeper') order by 1`,
    )
  ).map((row) => row.name);

describe('migrate', () => {
  it("creates a missing database, applies viewkeeper's migrations only, and nothing the second time", async () => {
    const url = freshDatabase();
    const first = await migrate(url);
    expect(first.createdDatabase).toBe(true);
    expect(first.applied).toEqual(names(MIGRATIONS_DIR));

    expect(await migrate(url)).toEqual({ applied: [], createdDatabase: false });
    const tables = await tablesIn(url);
    expect(tables).toEqual(
      expect.arrayContaining(['viewkeeper.kysely_migration', 'viewkeeper.refresh_runs']),
    );
    // A user's database gets no demo table: nothing in public at all.
    expect(tables.filter((name) => name.startsWith('public.'))).toEqual([]);
  });

  it('the demo migrations add the demo tables and indexes, with a history of their own', async () => {
    const url = freshDatabase();
    const result = await migrateDemo(url);
    expect(result.applied).toEqual([
      ...names(MIGRATIONS_DIR),
      ...names(DEMO_MIGRATIONS_DIR).map((name) => `demo/${name}`),
    ]);
    expect(await tablesIn(url)).toEqual(
      expect.arrayContaining(['public.posts', 'public.users', 'public.votes', 'viewkeeper.demo_migration']),
    );
    const indexes = await query<{ indexname: string }>(
      url,
      `select indexname from pg_indexes where schemaname = 'public' order by 1`,
    );
    expect(indexes.map((row) => row.indexname)).toEqual(
      expect.arrayContaining(['posts_user_id_idx', 'votes_created_at_idx', 'votes_user_id_idx']),
    );
    expect((await migrateDemo(url)).applied).toEqual([]);
  });

  it('the demo migrations accept a database whose demo tables an older viewkeeper created', async () => {
    const url = freshDatabase();
    await migrateDemo(url);
    await query(url, `insert into users (id, name, email) values (1, 'kept', 'k@example.com')`);
    // Before the demo had migrations of its own, viewkeeper's 0002 created these tables: the demo's
    // history is then empty although the tables exist.
    await query(url, 'drop table viewkeeper.demo_migration');
    const again = await migrateDemo(url);
    expect(again.applied).toEqual(names(DEMO_MIGRATIONS_DIR).map((name) => `demo/${name}`));
    expect(await query(url, 'select name from users')).toEqual([{ name: 'kept' }]);
  });
});
