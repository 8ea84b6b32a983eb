import { sql } from 'kysely';
import { expect } from 'vitest';
import type { TestContext } from './context.ts';

/**
 * Guarantee 4's checks after a fault test's queues drained: the ledger holds each of `opIds` exactly
 * once (and nothing else), `votes` is exactly `expected` (pair `post:user` → the last value written),
 * and every post's upvotes equal its vote sum.
 */
export async function expectVotesAppliedOnce(
  db: TestContext['db'],
  opIds: string[],
  expected: Map<string, number>,
): Promise<void> {
  const { rows: ledger } = await sql<{ total: number; distinct_ops: number; ours: number }>`
    select count(*)::int as total, count(distinct op_id)::int as distinct_ops,
           count(*) filter (where op_id = any(${opIds}::text[]))::int as ours
    from viewkeeper.write_ledger where sink = 'votes'`.execute(db.db);
  const count = opIds.length;
  expect(ledger[0]).toEqual({ total: count, distinct_ops: count, ours: count });

  const { rows: votes } = await sql<{ post_id: string; user_id: string; value: number }>`
    select post_id, user_id, value from votes`.execute(db.db);
  const actual = new Map(votes.map((vote) => [`${vote.post_id}:${vote.user_id}`, vote.value]));
  expect(actual.size).toBe(expected.size);
  const wrong = [...expected].filter(([pair, value]) => actual.get(pair) !== value);
  expect(wrong.slice(0, 5)).toEqual([]);

  const { rows: drift } = await sql<{ n: number }>`
    select count(*)::int as n from posts p
    where p.upvotes <> (select coalesce(sum(value), 0) from votes v where v.post_id = p.id)`.execute(db.db);
  expect(drift[0]!.n).toBe(0);
}
