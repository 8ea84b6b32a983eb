import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { RejectedOpsTable } from './schema.ts';

// viewkeeper.rejected_ops (migration 0005): write-behind ops the sink or the database refused. Rows
// are written by the batch commit, in its transaction; read, re-enqueued and deleted by the operator
// (`viewkeeper rejected …`).

/** A refused op, as the batch commit records it. */
export interface RejectedOpInput {
  sink: string;
  opId: string;
  /** The validated op: `id` and the sink's fields. */
  op: Record<string, unknown>;
  jobId: string | undefined;
  /** When the op's job was enqueued (its timestamp). */
  enqueuedAt: Date;
  reason: string;
}

/** A row of the dead-letter table. */
export interface RejectedOp {
  /** The row's id: what `rejected retry` and `rejected drop` take. */
  id: string;
  sink: string;
  opId: string;
  op: Record<string, unknown>;
  jobId: string | null;
  enqueuedAt: Date;
  reason: string;
  rejectedAt: Date;
}

type Row = Selectable<RejectedOpsTable>;

const fromRow = (row: Row): RejectedOp => ({
  id: row.id,
  sink: row.sink,
  opId: row.op_id,
  op: row.op,
  jobId: row.job_id,
  enqueuedAt: row.enqueued_at,
  reason: row.reason,
  rejectedAt: row.rejected_at,
});

/**
 * Records refused ops in one statement. An op refused again (same sink and op id) replaces its row:
 * one row per op, with the latest reason.
 */
// biome-ignore lint/suspicious/noExplicitAny: runs inside transactions of any database type
export async function recordRejected(trx: Transaction<any>, rows: RejectedOpInput[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    insert into viewkeeper.rejected_ops (sink, op_id, op, job_id, enqueued_at, reason)
    select u.sink, u.op_id, u.op::jsonb, u.job_id, u.enqueued_at, u.reason
    from unnest(${rows.map((row) => row.sink)}::text[], ${rows.map((row) => row.opId)}::text[],
                ${rows.map((row) => JSON.stringify(row.op))}::text[], ${rows.map((row) => row.jobId ?? null)}::text[],
                ${rows.map((row) => row.enqueuedAt.toISOString())}::timestamptz[], ${rows.map((row) => row.reason)}::text[])
      as u(sink, op_id, op, job_id, enqueued_at, reason)
    on conflict (sink, op_id) do update
      set op = excluded.op, job_id = excluded.job_id, enqueued_at = excluded.enqueued_at,
          reason = excluded.reason, rejected_at = now()`.execute(trx);
}

/** Which rows an operator command acts on: these ids, or every row (of one sink, if given). */
export type RejectedSelection = { ids: string[] } | { all: true; sink?: string };

function where(selection: RejectedSelection) {
  if ('ids' in selection) return sql`id = any(${selection.ids}::bigint[])`;
  return selection.sink === undefined ? sql`true` : sql`sink = ${selection.sink}`;
}

/**
 * The rows `selection` names, oldest first, and the database's clock when they were read (as text:
 * microseconds, which a JS Date would lose), for `deleteRejected(…, at)`.
 */
export async function listRejected(
  // biome-ignore lint/suspicious/noExplicitAny: any database type
  db: Kysely<any>,
  selection: RejectedSelection,
): Promise<{ rows: RejectedOp[]; at: string }> {
  const { rows } = await sql<Row & { read_at: string }>`
    select id, sink, op_id, op, job_id, enqueued_at, reason, rejected_at, statement_timestamp()::text as read_at
    from viewkeeper.rejected_ops where ${where(selection)} order by id`.execute(db);
  const at = rows[0]?.read_at ?? new Date().toISOString();
  return { rows: rows.map(fromRow), at };
}

/**
 * Deletes the rows `selection` names; with `unchangedSince`, only those not refused again after that
 * moment. Returns the ids deleted.
 */
export async function deleteRejected(
  // biome-ignore lint/suspicious/noExplicitAny: any database type
  db: Kysely<any>,
  selection: RejectedSelection,
  unchangedSince?: string,
): Promise<string[]> {
  const unchanged =
    unchangedSince === undefined ? sql`true` : sql`rejected_at <= ${unchangedSince}::timestamptz`;
  const { rows } = await sql<{ id: string }>`
    delete from viewkeeper.rejected_ops where ${where(selection)} and ${unchanged} returning id`.execute(db);
  return rows.map((row) => row.id).sort((a, b) => Number(BigInt(a) - BigInt(b)));
}
