import { sql } from 'kysely';
import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// user_stats:{user_id} → post_count, total_upvotes, avg_upvotes (2 decimals, 0.00 without posts),
// for every user.
export default defineView<Database>()({
  name: 'user_stats',
  shape: 'hash',
  key: 'user_stats:{user_id}',
  params: { user_id: 'bigint' },
  // Narrowing by the param = the full query's rows with that column: many keys, one query.
  batchPartials: true,
  capture: {
    users: { columns: ['id'], map: (row) => ({ user_id: row.id }) },
    // A post moved to another author refreshes both authors (the old and the new row both count).
    posts: { columns: ['user_id'], map: (row) => ({ user_id: row.user_id }) },
  },
  schedule: '*/5 * * * *',
  // Beyond 50,000 user ids, full rebuilds split into ranges that run on whichever daemons are free.
  chunking: { table: 'users', column: 'id', size: 50_000 },
  query: (db, params, range) => {
    let query = db
      .selectFrom('users as u')
      // A chunk narrows the joined posts by the same key range: Postgres does not carry a range on
      // u.id across the join, and would otherwise scan every post for every chunk.
      .leftJoin('posts as p', (join) => {
        const on = join.onRef('p.user_id', '=', 'u.id');
        return range ? on.on('p.user_id', '>=', range.from).on('p.user_id', '<', range.to) : on;
      })
      .select([
        'u.id as user_id',
        sql<string>`count(p.id)`.as('post_count'),
        sql<string>`coalesce(sum(p.upvotes), 0)`.as('total_upvotes'),
        sql<string>`round(coalesce(avg(p.upvotes), 0), 2)`.as('avg_upvotes'),
      ])
      .groupBy('u.id');
    if (params) query = query.where('u.id', '=', params.user_id);
    if (range) query = query.where('u.id', '>=', range.from).where('u.id', '<', range.to);
    return query;
  },
});
