import type { ColumnType, Generated } from 'kysely';

/** bigint columns come back from pg as strings (no precision loss); accept numbers on the way in. */
export type BigIntColumn = ColumnType<string, string | number | bigint, string | number | bigint>;

export interface RefreshRunsTable {
  id: Generated<string>;
  view: string;
  kind: 'full' | 'chunk';
  /** What started it: `schedule`, `catch-up`, `queue`, … */
  trigger: string;
  /** The cron slot a scheduled run belongs to. */
  slot: Date | null;
  /** `from..to` of a chunk. */
  chunk: string | null;
  seq: BigIntColumn;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  rows: BigIntColumn | null;
  status: 'done' | 'failed';
  error: string | null;
  /** `hostname:pid` of the daemon that ran it. */
  worker: string;
}

/** One applied write-behind op (migration 0003): a redelivered op finds its id here and is skipped. */
export interface WriteLedgerTable {
  sink: string;
  op_id: string;
  applied_at: Generated<Date>;
}

/** Per applied job of a sink with `idempotency: 'job'` (counters): the job, not each op, is recorded. */
export interface WriteLedgerJobsTable {
  sink: string;
  /** `{job id}@{job timestamp}`. */
  job_key: string;
  ops: number;
  applied_at: Generated<Date>;
}

/** Per upserted key, the order of the op whose value it holds (latest wins across batches). */
export interface WriteVersionsTable {
  sink: string;
  key: string;
  ts: BigIntColumn;
  seq: BigIntColumn;
  applied_at: Generated<Date>;
}

/** A write-behind op the sink or the database refused (migration 0005), kept until retried or dropped. */
export interface RejectedOpsTable {
  id: Generated<string>;
  sink: string;
  op_id: string;
  /** The op as validated (`id` and the sink's fields). */
  op: ColumnType<Record<string, unknown>, string, string>;
  job_id: string | null;
  /** When the op's original job was enqueued. */
  enqueued_at: Date;
  reason: string;
  rejected_at: Generated<Date>;
}

/** One captured statement (migration 0006): the distinct key columns of the rows it changed, as text. */
export interface CaptureOutboxTable {
  id: Generated<string>;
  table_name: string;
  op: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE';
  columns: string[];
  /** One array of values (in `columns` order) per distinct key. */
  keys: (string | null)[][];
  txid: Generated<string>;
  created_at: Generated<Date>;
}

/** A captured row whose mapping failed for one view (its view was rebuilt whole instead). */
export interface CaptureFailuresTable {
  id: Generated<string>;
  view: string;
  table_name: string;
  row: Record<string, string | null>;
  reason: string;
  captured_at: Date;
  failed_at: Generated<Date>;
}

/**
 * viewkeeper's own tables, in the `viewkeeper` schema, added here as migrations create them. A user's
 * tables are theirs: view and sink definitions name them through `defineView<DB>()`.
 */
export interface ViewkeeperDatabase {
  'viewkeeper.refresh_runs': RefreshRunsTable;
  'viewkeeper.write_ledger': WriteLedgerTable;
  'viewkeeper.write_ledger_jobs': WriteLedgerJobsTable;
  'viewkeeper.write_versions': WriteVersionsTable;
  'viewkeeper.rejected_ops': RejectedOpsTable;
  'viewkeeper.capture_outbox': CaptureOutboxTable;
  'viewkeeper.capture_failures': CaptureFailuresTable;
}
