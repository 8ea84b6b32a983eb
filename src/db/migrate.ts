import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { FileMigrationProvider, Migrator } from 'kysely/migration';
import pg from 'pg';
import { connectFailure } from '../connect-failure.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import { createDb } from './create-db.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
export const OWN_SCHEMA = 'viewkeeper';

export interface MigrateResult {
  applied: string[];
  createdDatabase: boolean;
}

/**
 * Creates the database named in `databaseUrl` when it does not exist yet, connecting to the server's
 * `postgres` database to do so. Returns whether it created it.
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) return false;
  const probe = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  // A client whose server goes away emits 'error'; its pending call fails with it anyway.
  probe.on('error', () => {});
  try {
    await probe.connect();
    return false;
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') {
      throw connectFailure('Postgres', databaseUrl, 'DATABASE_URL', error);
    }
  } finally {
    await probe.end().catch(() => {});
  }
  const maintenance = new URL(databaseUrl);
  maintenance.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: maintenance.toString(), connectionTimeoutMillis: 5000 });
  admin.on('error', () => {});
  try {
    await admin.connect();
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === '42P04') return false; // created concurrently
    throw new ViewkeeperError(
      'E_MIGRATION',
      `cannot create database ${JSON.stringify(name)}: ${describeError(error)}; create it yourself or grant CREATEDB`,
      { cause: error },
    );
  } finally {
    await admin.end().catch(() => {});
  }
}

export interface MigrateOptions {
  /** Folder of numbered Kysely migrations. @defaultValue viewkeeper's own `migrations/` */
  dir?: string;
  /**
   * Bookkeeping table (in the `viewkeeper` schema): a separate set of migrations (the demo's) keeps a
   * history of its own. @defaultValue `kysely_migration`
   */
  table?: string;
}

/**
 * Applies pending migrations (creating the database first if needed): viewkeeper's own schema unless
 * `options.dir` names another folder. Running it again applies nothing. Migration bookkeeping lives
 * in the `viewkeeper` schema.
 */
export async function migrate(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const createdDatabase = await ensureDatabase(databaseUrl);
  const handle = createDb(databaseUrl, { max: 2 });
  try {
    await handle.ping();
    await sql`create schema if not exists ${sql.id(OWN_SCHEMA)}`.execute(handle.db);
    const migrator = new Migrator({
      db: handle.db,
      provider: new FileMigrationProvider({ fs, path, migrationFolder: options.dir ?? MIGRATIONS_DIR }),
      migrationTableSchema: OWN_SCHEMA,
      ...(options.table
        ? { migrationTableName: options.table, migrationLockTableName: `${options.table}_lock` }
        : {}),
    });
    const { error, results = [] } = await migrator.migrateToLatest();
    const failed = results.find((result) => result.status === 'Error');
    if (error || failed) {
      throw new ViewkeeperError(
        'E_MIGRATION',
        `migration ${failed?.migrationName ?? '(setup)'} failed: ${describeError(error)}`,
        { cause: error },
      );
    }
    return { applied: results.map((result) => result.migrationName), createdDatabase };
  } finally {
    await handle.close();
  }
}
