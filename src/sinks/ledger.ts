import { type Kysely, sql, type Transaction } from 'kysely';

// The idempotency ledger (viewkeeper.write_ledger): op ids recorded in the transaction that applies
// the ops, so "applied" and "recorded" can never disagree.

/**
 * Records `ids` of `sink` and returns those that were not recorded before: the ops to apply. One
 * statement for the whole batch; ids already present (a redelivery) are left alone.
 */
// biome-ignore lint/suspicious/noExplicitAny: runs inside transactions of any database type
export async function recordOps(trx: Transaction<any>, sink: string, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await sql<{ op_id: string }>`
    insert into viewkeeper.write_ledger (sink, op_id)
    select ${sink}, u.id from unnest(${ids}::text[]) as u(id) order by u.id
    on conflict do nothing
    returning op_id`.execute(trx);
  return new Set(rows.map((row) => row.op_id));
}

/**
 * Records the jobs `jobs` (key → op count) of a sink with `idempotency: 'job'` and returns the keys
 * not recorded before: the jobs whose ops to apply. One statement for the whole batch.
 */
export async function recordJobs(
  // biome-ignore lint/suspicious/noExplicitAny: runs inside transactions of any database type
  trx: Transaction<any>,
  sink: string,
  jobs: Map<string, number>,
): Promise<Set<string>> {
  if (jobs.size === 0) return new Set();
  const keys = [...jobs.keys()].sort();
  const { rows } = await sql<{ job_key: string }>`
    insert into viewkeeper.write_ledger_jobs (sink, job_key, ops)
    select ${sink}, u.key, u.ops from unnest(${keys}::text[], ${keys.map((key) => jobs.get(key)!)}::int[]) as u(key, ops)
    on conflict do nothing
    returning job_key`.execute(trx);
  return new Set(rows.map((row) => row.job_key));
}

/** The ledger key of a job: its id and enqueue time (ids restart if the queue's Redis loses its data). */
export function jobKey(jobId: string | undefined, timestamp: number): string {
  return `${jobId ?? ''}@${timestamp}`;
}

/**
 * Deletes ledger and version rows older than `retentionMs`, at most `limit` of each per call (the
 * worker calls it periodically). Returns how many rows went.
 */
// biome-ignore lint/suspicious/noExplicitAny: any database type
export async function pruneLedger(db: Kysely<any>, retentionMs: number, limit = 50_000): Promise<number> {
  const cutoff = new Date(Date.now() - retentionMs);
  let removed = 0;
  for (const table of [
    sql`viewkeeper.write_ledger`,
    sql`viewkeeper.write_ledger_jobs`,
    sql`viewkeeper.write_versions`,
  ]) {
    const result = await sql`
      delete from ${table} where ctid = any(array(
        select ctid from ${table} where applied_at < ${cutoff} limit ${limit}))`.execute(db);
    removed += Number(result.numAffectedRows ?? 0n);
  }
  return removed;
}
