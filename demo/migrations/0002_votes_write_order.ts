import { type Kysely, sql } from 'kysely';

// votes.write_order: the write-behind order of the op whose value a vote row holds, kept in the row
// by the votes sink's upsert (its `order` option) so "latest wins" across batches needs no row in
// viewkeeper.write_versions per vote. Null for rows written by anything else (older than any op).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table votes add column if not exists write_order numeric`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table votes drop column if exists write_order`.execute(db);
}
