import type pg from 'pg';
import type { VoteOp } from './vote-ops.ts';

// The yardstick of the write-behind bench: what a careful engineer writes by hand to persist vote ops
// exactly once with no queue in between. One consumer, batches in order, each batch one transaction:
// op ids into a ledger of its own (the ids already there are skipped), the newest op per (post, user)
// upserted into votes, the changed posts' upvotes recounted. Ordering across batches needs nothing
// stored: there is one consumer and it commits batches in order.

export const HAND_LEDGER_DDL = 'create table if not exists bench_hand_ledger (op_id text primary key)';

/** Persists `ops` in batches of `batchSize`; resolves once the last batch has committed. */
export async function handWrittenVotes(
  client: pg.Client,
  ops: readonly VoteOp[],
  batchSize: number,
): Promise<void> {
  for (let start = 0; start < ops.length; start += batchSize) {
    const batch = ops.slice(start, start + batchSize);
    await client.query('begin');
    try {
      await client.query('set local jit = off');
      const { rows } = await client.query<{ op_id: string }>(
        `insert into bench_hand_ledger (op_id) select unnest($1::text[]) on conflict do nothing returning op_id`,
        [batch.map((op) => op.id)],
      );
      const fresh = new Set(rows.map((row) => row.op_id));
      // Newest op per (post, user): later in the batch wins.
      const latest = new Map<string, VoteOp>();
      for (const op of batch) if (fresh.has(op.id)) latest.set(`${op.post_id}:${op.user_id}`, op);
      const winners = [...latest.values()].sort((a, b) => a.post_id - b.post_id || a.user_id - b.user_id);
      if (winners.length > 0) {
        await client.query(
          `insert into votes (post_id, user_id, value, created_at)
           select u.post_id, u.user_id, u.value, now()
           from unnest($1::bigint[], $2::bigint[], $3::smallint[]) as u(post_id, user_id, value)
           on conflict (post_id, user_id) do update set value = excluded.value, created_at = excluded.created_at`,
          [winners.map((op) => op.post_id), winners.map((op) => op.user_id), winners.map((op) => op.value)],
        );
        const posts = [...new Set(winners.map((op) => op.post_id))];
        await client.query(
          `update posts p set upvotes = coalesce(s.total, 0)
           from unnest($1::bigint[]) as c(id)
           left join (select post_id, sum(value)::int as total from votes
                      where post_id = any($1::bigint[]) group by post_id) s on s.post_id = c.id
           where p.id = c.id and p.upvotes is distinct from coalesce(s.total, 0)`,
          [posts],
        );
      }
      await client.query('commit');
    } catch (error) {
      await client.query('rollback');
      throw error;
    }
  }
}
