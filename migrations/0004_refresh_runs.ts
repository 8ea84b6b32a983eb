import { type Kysely, sql } from 'kysely';

// History of full rebuilds (and rebuild chunks): what ran, why, when, for how long, with what outcome.
// Partial refreshes are not recorded here — there can be thousands per second; their trace is the
// view's metadata hash and the events stream.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .withSchema('viewkeeper')
    .createTable('refresh_runs')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('view', 'text', (col) => col.notNull())
    .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('full', 'chunk')`))
    .addColumn('trigger', 'text', (col) => col.notNull())
    .addColumn('slot', 'timestamptz')
    .addColumn('chunk', 'text')
    .addColumn('seq', 'bigint', (col) => col.notNull())
    .addColumn('started_at', 'timestamptz', (col) => col.notNull())
    .addColumn('finished_at', 'timestamptz', (col) => col.notNull())
    .addColumn('duration_ms', 'integer', (col) => col.notNull())
    .addColumn('rows', 'bigint')
    .addColumn('status', 'text', (col) => col.notNull().check(sql`status in ('done', 'failed')`))
    .addColumn('error', 'text')
    .addColumn('worker', 'text', (col) => col.notNull())
    .execute();
  await sql`create index refresh_runs_view_started_idx on viewkeeper.refresh_runs (view, started_at desc)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.withSchema('viewkeeper').dropTable('refresh_runs').ifExists().execute();
}
