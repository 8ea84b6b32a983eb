import { type Kysely, sql } from 'kysely';

// Write-behind bookkeeping, written in the same transaction as the ops it describes.
//
// write_ledger: one row per applied op (sink, op id). A redelivered op finds its id here and is
//   skipped, so nothing is applied twice; the primary key also makes "applied twice" impossible to
//   record.
// write_versions: per upserted key, the order (job timestamp, job id × 2^20 + op index) of the op
//   whose value the key holds. An op older than that (a job redelivered after newer ones committed)
//   does not overwrite it: the latest op wins across batches and crashes.
//
// Retention: the worker deletes rows older than its retention (default 14 days, longer than the
// failed-job retention of 7 days, so a failed job retried by hand is still recognised). BRIN indexes
// on applied_at make that delete cheap without slowing inserts.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .withSchema('viewkeeper')
    .createTable('write_ledger')
    .addColumn('sink', 'text', (col) => col.notNull())
    .addColumn('op_id', 'text', (col) => col.notNull())
    .addColumn('applied_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('write_ledger_pkey', ['sink', 'op_id'])
    .execute();
  await sql`create index write_ledger_applied_at_idx on viewkeeper.write_ledger using brin (applied_at)`.execute(
    db,
  );

  await db.schema
    .withSchema('viewkeeper')
    .createTable('write_versions')
    .addColumn('sink', 'text', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('ts', 'bigint', (col) => col.notNull())
    .addColumn('seq', 'bigint', (col) => col.notNull())
    .addColumn('applied_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('write_versions_pkey', ['sink', 'key'])
    .execute();
  await sql`create index write_versions_applied_at_idx on viewkeeper.write_versions using brin (applied_at)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.withSchema('viewkeeper').dropTable('write_versions').ifExists().execute();
  await db.schema.withSchema('viewkeeper').dropTable('write_ledger').ifExists().execute();
}
