import { type Kysely, sql, type Transaction } from 'kysely';
import { type RejectedOpInput, recordRejected } from '../db/rejected-ops.ts';
import { describeError } from '../errors.ts';
import { isTransient } from '../lib/transient.ts';
import { createSinkTools, type SinkTools } from './apply-helpers.ts';
import { type AppendRequest, type RefreshTargetRequest, refreshTargets } from './batch-refreshes.ts';
import type { SinkDefinition, SinkOp } from './define-sink.ts';
import { jobKey, recordJobs, recordOps } from './ledger.ts';
import { compareOrder, orderOf } from './op-order.ts';

export type { AppendRequest, RefreshTargetRequest } from './batch-refreshes.ts';

// One batch = the ops of many jobs, written in ONE Postgres transaction together with their ledger
// rows. An op that cannot be written (constraint violation, bad value, an exception in the sink's
// apply) is found by splitting its chunk in halves under savepoints until it stands alone; it is
// rejected with its reason — recorded in the dead-letter table (viewkeeper.rejected_ops) in the same
// transaction — and everything else commits. The happy path pays one savepoint per sink per batch;
// a batch with k refused ops among n pays about 2·k·log2(n) more, only when it has them.
//
// Halving rather than retrying op by op: a sink's apply is written for many ops at once (one upsert
// statement, one increment), so n single-op applies would cost n round trips where a few dozen
// savepoints find one bad op among thousands. Either way each good op is applied exactly once: a
// rolled-back savepoint undoes its ledger rows together with its writes.

/** The ops of one job, validated, with an opaque handle the caller gets its outcome back by. */
export interface BatchEntry<J> {
  job: J;
  /** The BullMQ job id, recorded with the job's rejected ops. */
  jobId: string | undefined;
  sink: SinkDefinition;
  /** In job order; each carries its order (see op-order.ts). */
  ops: SinkOp[];
}

export interface JobOutcome {
  applied: number;
  duplicates: number;
  /** Ops the sink or the database refused, with a one-line reason each (kept in rejected_ops). */
  rejected: { id: string; reason: string }[];
}

export interface BatchOutcome<J> {
  jobs: Map<J, JobOutcome>;
  /** Rows the committed ops (new or already applied) append to list views. */
  appends: AppendRequest[];
  /** Distinct (view, params) the committed ops (new or already applied) ask to refresh. */
  refreshes: RefreshTargetRequest[];
  /** Problems of refresh declarations (a lookup that threw): the view is refreshed whole instead. */
  warnings: string[];
  applied: number;
  duplicates: number;
  rejected: number;
  /** Savepoints rolled back while isolating failing ops. */
  splits: number;
}

interface Item<J> {
  op: SinkOp;
  job: J;
  jobId: string | undefined;
  /** The job's ledger key, for sinks with `idempotency: 'job'`. */
  jobKey: string | undefined;
  /** Jobs that carried the same op id again in this batch: they share this op's fate. */
  twins: J[];
}

/** pg errors carry a SQLSTATE and often a detail line naming the offending key. */
function opFailure(error: unknown): string {
  const { code, detail } = error as { code?: unknown; detail?: unknown };
  let reason = describeError(error);
  if (typeof detail === 'string' && detail) reason += `: ${detail.replace(/\s*\n\s*/g, ' ')}`;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) reason += ` (SQLSTATE ${code})`;
  return reason.length > 400 ? `${reason.slice(0, 397)}...` : reason;
}

export interface CommitBatchOptions {
  /**
   * Names of views not to refresh for this batch, asked inside its transaction after the writes:
   * views whose every table captures its changes, whose refreshes the batch's own captured changes
   * bring (change capture), so refreshing them here as well would run them twice.
   */
  // biome-ignore lint/suspicious/noExplicitAny: any database type
  leaveToCapture?: (trx: Transaction<any>) => Promise<Set<string>>;
}

/**
 * Writes `entries` in one transaction: ledger first (ops already recorded are skipped), then each
 * sink's `apply` over its new ops in enqueue order, then the refresh lookups; commit. Throws only
 * for transient failures (connection lost, deadlock, serialization): then nothing was committed and
 * the whole batch may be retried.
 */
export async function commitBatch<J>(
  // biome-ignore lint/suspicious/noExplicitAny: sinks bring their own database types
  db: Kysely<any>,
  entries: BatchEntry<J>[],
  options: CommitBatchOptions = {},
): Promise<BatchOutcome<J>> {
  const ordered = entries
    .filter((entry) => entry.ops.length > 0)
    .sort((a, b) => compareOrder(orderOf(a.ops[0]!)!, orderOf(b.ops[0]!)!));
  const bySink = new Map<SinkDefinition, Item<J>[]>();
  const firstSeen = new Map<string, Item<J>>();
  for (const entry of ordered) {
    let items = bySink.get(entry.sink);
    if (!items) {
      items = [];
      bySink.set(entry.sink, items);
    }
    if (entry.sink.idempotency === 'job') {
      // The job is the unit of idempotency: its ops stand on their own, even with an id another job
      // of the batch carries too.
      const key = jobKey(entry.jobId, entry.ops[0]!.at.getTime());
      for (const op of entry.ops)
        items.push({ op, job: entry.job, jobId: entry.jobId, jobKey: key, twins: [] });
      continue;
    }
    for (const op of entry.ops) {
      const id = `${entry.sink.name}\u0000${op.id}`;
      const seen = firstSeen.get(id);
      if (seen) {
        seen.twins.push(entry.job);
        continue;
      }
      const item: Item<J> = { op, job: entry.job, jobId: entry.jobId, jobKey: undefined, twins: [] };
      firstSeen.set(id, item);
      items.push(item);
    }
  }

  const outcome = (): BatchOutcome<J> => ({
    jobs: new Map(entries.map((entry) => [entry.job, { applied: 0, duplicates: 0, rejected: [] }])),
    appends: [],
    refreshes: [],
    warnings: [],
    applied: 0,
    duplicates: 0,
    rejected: 0,
    splits: 0,
  });
  let result = outcome();

  await db.transaction().execute(async (trx) => {
    result = outcome(); // a retried transaction starts from scratch
    // Batch statements over thousands of keys cross jit_above_cost, and compiling them costs more
    // than running them.
    await sql`set local jit = off`.execute(trx);
    let savepoints = 0;
    const done = new Map<SinkDefinition, Item<J>[]>();
    const refused: RejectedOpInput[] = [];
    const tools = new Map<SinkDefinition, SinkTools>();

    /** `recorded`: the items' jobs are in the ledger already (idempotency 'job'): every item is new. */
    async function attempt(sink: SinkDefinition, items: Item<J>[], recorded = false): Promise<void> {
      const savepoint = sql.raw(`vk_batch_${++savepoints}`); // generated name, not input
      await sql`savepoint ${savepoint}`.execute(trx);
      let fresh: Set<string> | undefined;
      try {
        fresh = recorded
          ? undefined
          : await recordOps(
              trx,
              sink.name,
              items.map((item) => item.op.id),
            );
        const toApply = fresh
          ? items.filter((item) => fresh!.has(item.op.id)).map((item) => item.op)
          : items.map((item) => item.op);
        if (toApply.length > 0) {
          let bound = tools.get(sink);
          if (!bound) {
            bound = createSinkTools(trx, sink.name);
            tools.set(sink, bound);
          }
          await sink.apply(trx, toApply, bound);
        }
        await sql`release savepoint ${savepoint}`.execute(trx);
      } catch (error) {
        if (isTransient(error)) throw error;
        await sql`rollback to savepoint ${savepoint}`.execute(trx);
        result.splits += 1;
        if (items.length === 1) {
          const item = items[0]!;
          const reason = `op ${JSON.stringify(item.op.id)}: ${opFailure(error)}`;
          for (const job of [item.job, ...item.twins])
            result.jobs.get(job)!.rejected.push({ id: item.op.id, reason });
          result.rejected += 1;
          refused.push({
            sink: sink.name,
            opId: item.op.id,
            op: { ...item.op },
            jobId: item.jobId,
            enqueuedAt: item.op.at,
            reason,
          });
          return;
        }
        const middle = Math.ceil(items.length / 2);
        await attempt(sink, items.slice(0, middle), recorded);
        await attempt(sink, items.slice(middle), recorded);
        return;
      }
      const list = doneList(sink);
      for (const item of items) {
        const isNew = fresh ? fresh.has(item.op.id) : true;
        result.jobs.get(item.job)![isNew ? 'applied' : 'duplicates'] += 1;
        for (const twin of item.twins) result.jobs.get(twin)!.duplicates += 1;
        result[isNew ? 'applied' : 'duplicates'] += 1;
        result.duplicates += item.twins.length;
        list.push(item);
      }
    }

    function doneList(sink: SinkDefinition): Item<J>[] {
      let list = done.get(sink);
      if (!list) {
        list = [];
        done.set(sink, list);
      }
      return list;
    }

    for (const [sink, items] of bySink) {
      if (sink.idempotency !== 'job') {
        await attempt(sink, items);
        continue;
      }
      // One ledger row per job, recorded before (and outside) the savepoints that isolate refused
      // ops: a job split over several attempts is recorded once, and rolls back only with the batch.
      const jobs = new Map<string, number>();
      for (const item of items) jobs.set(item.jobKey!, (jobs.get(item.jobKey!) ?? 0) + 1);
      const fresh = await recordJobs(trx, sink.name, jobs);
      const toApply: Item<J>[] = [];
      for (const item of items) {
        if (fresh.has(item.jobKey!)) {
          toApply.push(item);
          continue;
        }
        // A job delivered again: its ops are in the database; they still owe their refreshes.
        result.jobs.get(item.job)!.duplicates += 1;
        result.duplicates += 1;
        doneList(sink).push(item);
      }
      if (toApply.length > 0) await attempt(sink, toApply, true);
    }
    await recordRejected(trx, refused);
    const doneOps = new Map([...done].map(([sink, items]) => [sink, items.map((item) => item.op)]));
    result.refreshes = await refreshTargets(trx, doneOps, result.warnings, result.appends, () =>
      sql.raw(`vk_batch_${++savepoints}`),
    );
    if (options.leaveToCapture && result.refreshes.length > 0) {
      const captured = await options.leaveToCapture(trx);
      result.refreshes = result.refreshes.filter((target) => !captured.has(target.view));
    }
  });
  return result;
}
