import { type Kysely, sql } from 'kysely';

// viewkeeper's own tables live in their own schema so they never collide with the application's.
// The migrator creates the schema before it runs (its bookkeeping table lives there); this migration
// records that fact and owns dropping it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create schema if not exists viewkeeper`.execute(db);
  await sql`comment on schema viewkeeper is 'viewkeeper: refresh history, write-behind ledger, migrations'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`comment on schema viewkeeper is null`.execute(db);
}
