import { fileURLToPath } from 'node:url';
import { type MigrateResult, migrate } from '../src/db/migrate.ts';

export const DEMO_MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

/**
 * viewkeeper's own schema, then the demo's tables (users, posts, votes) with a migration history of
 * their own (`viewkeeper.demo_migration`), so `viewkeeper migrate` never creates them unasked.
 */
export async function migrateDemo(databaseUrl: string): Promise<MigrateResult> {
  const own = await migrate(databaseUrl);
  const demo = await migrate(databaseUrl, { dir: DEMO_MIGRATIONS_DIR, table: 'demo_migration' });
  return {
    applied: [...own.applied, ...demo.applied.map((name) => `demo/${name}`)],
    createdDatabase: own.createdDatabase,
  };
}
