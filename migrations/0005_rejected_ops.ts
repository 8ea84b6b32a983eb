import { type Kysely, sql } from 'kysely';

// The dead-letter table of write-behind: an op the sink or the database refused (a foreign key to
// nothing, a check constraint, an exception in the sink's apply), recorded in the transaction that
// committed the rest of its batch, so an op is always either applied (ledger) or kept here.
//
// One row per (sink, op id): the same op refused again (a redelivery, or a retry that fails the same
// way) updates its row. `op` is the op as it was validated, ready to enqueue again; `enqueued_at` the
// time of its original job, which a retry reuses so that "later op wins" still places it where the
// producer sent it. Rows stay until `viewkeeper rejected retry` re-enqueues them or `rejected drop`
// deletes them: nothing prunes them, since each is an acknowledged write not yet in the database.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .withSchema('viewkeeper')
    .createTable('rejected_ops')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('sink', 'text', (col) => col.notNull())
    .addColumn('op_id', 'text', (col) => col.notNull())
    .addColumn('op', 'jsonb', (col) => col.notNull())
    .addColumn('job_id', 'text')
    .addColumn('enqueued_at', 'timestamptz', (col) => col.notNull())
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('rejected_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('rejected_ops_sink_op_id_key', ['sink', 'op_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.withSchema('viewkeeper').dropTable('rejected_ops').ifExists().execute();
}
