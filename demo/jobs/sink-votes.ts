import { sql } from 'kysely';
import { defineSink } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// votes: upsert votes by (post_id, user_id) — the latest op for a pair wins — and keep
// posts.upvotes equal to the post's vote sum, recomputed (not incremented) so that sign changes,
// several ops for one pair in a batch and redeliveries can never make it drift.
export default defineSink<Database>()({
  name: 'votes',
  fields: {
    post_id: 'bigint',
    user_id: 'bigint',
    value: { type: 'integer', oneOf: [1, -1] },
  },
  apply: async (trx, ops, { upsert }) => {
    // One votes batch at a time across daemons: a concurrent batch (another daemon) waits here until
    // this one commits, so its recount below sees this batch's votes. One lock per batch rather than a
    // row lock per post (which dirtied every post's page before the recount dirtied it again).
    await sql`select pg_advisory_xact_lock(hashtextextended('demo.sink.votes', 0))`.execute(trx);
    const written = await upsert(ops, {
      table: 'votes',
      key: ['post_id', 'user_id'],
      columns: { post_id: 'bigint', user_id: 'bigint', value: 'smallint', created_at: 'timestamptz' },
      // created_at = when the vote was cast (enqueued), not when the batch happened to commit.
      row: (op) => ({ post_id: op.post_id, user_id: op.user_id, value: op.value, created_at: op.at }),
      // The row itself says which op it holds: "latest wins" needs no second table per vote.
      order: 'write_order',
    });
    const changed = [...new Set(written.map((row) => row.post_id as string))];
    if (changed.length === 0) return;
    // One aggregate over the changed posts' votes (planned as a scan + hash, not one probe per post).
    await sql`
      update posts p set upvotes = coalesce(s.total, 0)
      from unnest(${changed}::bigint[]) as c(id)
      left join (select post_id, sum(value)::int as total from votes
                 where post_id = any(${changed}::bigint[]) group by post_id) s on s.post_id = c.id
      where p.id = c.id and p.upvotes is distinct from coalesce(s.total, 0)`.execute(trx);
  },
  refresh: {
    post_votes: (op) => ({ post_id: op.post_id }),
    trending: (op) => ({ post_id: op.post_id }),
    trending_posts: 'full',
    // user_stats is keyed by the post's author, which the op does not carry.
    user_stats: {
      lookup: async (trx, ops) => {
        const postIds = [...new Set(ops.map((op) => op.post_id))];
        const { rows } = await sql<{ user_id: string }>`
          select distinct user_id from posts where id = any(${postIds}::bigint[])`.execute(trx);
        return rows;
      },
    },
    // A vote is an upsert (a second vote on a post replaces the first), so the voter's list is
    // re-queried rather than appended to: an append cannot take the replaced vote out.
    user_recent_votes: (op) => ({ user_id: op.user_id }),
    post_voters_today: (op) => ({ post_id: op.post_id }),
  },
});
