import { type Kysely, sql } from 'kysely';

// write_ledger_jobs: for sinks declaring `idempotency: 'job'` (counters: many ops on few keys), one
// row per applied BullMQ job instead of one per op, written in the transaction that applies the
// job's ops. A job is delivered whole and committed whole (all of its ops are in one batch), so a
// redelivered job — the daemon killed between commit and completion, a lock lost — is recognised by
// its key and skipped whole. The key is the job id and its enqueue timestamp: job ids are a Redis
// counter that restarts if the queue's Redis loses its data, and a reused id with the same
// millisecond timestamp is not a concern. Pruned like write_ledger (BRIN on applied_at).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .withSchema('viewkeeper')
    .createTable('write_ledger_jobs')
    .ifNotExists()
    .addColumn('sink', 'text', (col) => col.notNull())
    .addColumn('job_key', 'text', (col) => col.notNull())
    .addColumn('ops', 'integer', (col) => col.notNull())
    .addColumn('applied_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('write_ledger_jobs_pkey', ['sink', 'job_key'])
    .execute();
  await sql`create index if not exists write_ledger_jobs_applied_at_idx
            on viewkeeper.write_ledger_jobs using brin (applied_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.withSchema('viewkeeper').dropTable('write_ledger_jobs').ifExists().execute();
}
