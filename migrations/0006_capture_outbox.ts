import { type Kysely, sql } from 'kysely';

// Change capture (trigger mode). `viewkeeper capture install` puts statement-level triggers on the
// tables views declare; each statement appends ONE row here holding the distinct key projections of
// the rows it changed (old and new rows of an UPDATE both): `columns` names them, `keys` is a
// two-dimensional text array, one row of values (as text) per distinct key. One row per statement, not per changed row: a 1,000-row
// UPDATE writes one outbox tuple, which keeps the writers' cost near that of their own statement.
//
// capture_outbox: id is the drain order (assigned at insert; a transaction's rows become visible at
//   its commit, and a drain only ever deletes the rows it read, so a late commit is drained later,
//   never skipped). txid lets a write-behind commit see what its own transaction captured.
// capture_failures: captured rows whose mapping threw or produced params the view refused, kept for
//   an operator (the view was rebuilt whole instead).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .withSchema('viewkeeper')
    .createTable('capture_outbox')
    .addColumn('id', 'bigint', (col) => col.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('table_name', 'text', (col) => col.notNull())
    .addColumn('op', 'text', (col) =>
      col.notNull().check(sql`op in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')`),
    )
    .addColumn('columns', sql`text[]`, (col) => col.notNull())
    .addColumn('keys', sql`text[]`, (col) => col.notNull())
    .addColumn('txid', sql`xid8`, (col) => col.notNull().defaultTo(sql`pg_current_xact_id()`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`clock_timestamp()`))
    .execute();

  await db.schema
    .withSchema('viewkeeper')
    .createTable('capture_failures')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('view', 'text', (col) => col.notNull())
    .addColumn('table_name', 'text', (col) => col.notNull())
    .addColumn('row', 'jsonb', (col) => col.notNull())
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('captured_at', 'timestamptz', (col) => col.notNull())
    .addColumn('failed_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.withSchema('viewkeeper').dropTable('capture_failures').ifExists().execute();
  await db.schema.withSchema('viewkeeper').dropTable('capture_outbox').ifExists().execute();
}
