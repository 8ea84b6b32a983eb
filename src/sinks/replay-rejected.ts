import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import { WRITE_PAYLOAD_LIMIT_BYTES } from '../contract.ts';
import { deleteRejected, listRejected, type RejectedOp, type RejectedSelection } from '../db/rejected-ops.ts';
import { describeError } from '../errors.ts';
import type { SinkDefinition } from './define-sink.ts';
import { validateOp } from './fields.ts';

// `viewkeeper rejected retry`: dead-letter rows back onto the write-behind queue. Each op is
// validated again against the sink as it is defined now (the fix may have been a definition
// change), then enqueued with its original job's timestamp, so "later op wins" still orders it where
// its producer sent it; rows are deleted only once their job is in Redis. An op that is refused again
// comes back as a new row; one that was applied meanwhile (a retry run twice) is skipped by the
// ledger: at most once, whatever happens.

/** What a retry did with each row. */
export interface RetryOutcome {
  /** Rows whose ops were re-enqueued (and deleted from the table): row id → job id. */
  enqueued: { id: string; sink: string; opId: string; jobId: string }[];
  /** Rows left in the table: their sink is gone or their op no longer validates. */
  kept: { id: string; sink: string; opId: string; reason: string }[];
}

/** At most this many ops, and this many JSON bytes (under the 1 MB job limit), per retry job. */
const OPS_PER_JOB = 500;
const BYTES_PER_JOB = WRITE_PAYLOAD_LIMIT_BYTES / 2;

/** Splits rows into jobs' worth: one op alone is always small enough (it was accepted once). */
function jobsOf(rows: RejectedOp[]): RejectedOp[][] {
  const parts: RejectedOp[][] = [];
  let part: RejectedOp[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = Buffer.byteLength(JSON.stringify(row.op));
    if (part.length > 0 && (part.length >= OPS_PER_JOB || bytes + size > BYTES_PER_JOB)) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(row);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

export async function retryRejected(
  // biome-ignore lint/suspicious/noExplicitAny: any database type
  db: Kysely<any>,
  queue: Queue,
  sinks: ReadonlyMap<string, SinkDefinition>,
  selection: RejectedSelection,
): Promise<RetryOutcome> {
  const { rows, at } = await listRejected(db, selection);
  const outcome: RetryOutcome = { enqueued: [], kept: [] };
  // Ops of one original job go back as one job (same sink and timestamp), in row order.
  const groups = new Map<string, { sink: string; timestamp: number; rows: RejectedOp[] }>();
  for (const row of rows) {
    const sink = sinks.get(row.sink);
    const keep = (reason: string) =>
      outcome.kept.push({ id: row.id, sink: row.sink, opId: row.opId, reason });
    if (!sink) {
      keep(`sink ${JSON.stringify(row.sink)} is not defined in the jobs folder`);
      continue;
    }
    try {
      validateOp(sink.name, sink.fields, row.op, `op ${JSON.stringify(row.opId)}`);
    } catch (error) {
      keep(describeError(error));
      continue;
    }
    const timestamp = row.enqueuedAt.getTime();
    const key = `${row.sink}\u0000${timestamp}`;
    let group = groups.get(key);
    if (!group) {
      group = { sink: row.sink, timestamp, rows: [] };
      groups.set(key, group);
    }
    group.rows.push(row);
  }
  for (const group of groups.values()) {
    for (const part of jobsOf(group.rows)) {
      const job = await queue.add(
        group.sink,
        { ops: part.map((row) => row.op) },
        { timestamp: group.timestamp },
      );
      // Only rows not refused again since they were read: a fresh refusal (of this very job, by a
      // fast daemon) is newer than `at` and stays.
      await deleteRejected(db, { ids: part.map((row) => row.id) }, at);
      for (const row of part)
        outcome.enqueued.push({ id: row.id, sink: row.sink, opId: row.opId, jobId: job.id! });
    }
  }
  return outcome;
}
