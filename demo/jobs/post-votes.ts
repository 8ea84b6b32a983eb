import { sql } from 'kysely';
import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// post_votes:{post_id} → the sum of votes.value, for every post that has votes.
export default defineView<Database>()({
  name: 'post_votes',
  shape: 'value',
  key: 'post_votes:{post_id}',
  value: 'votes',
  params: { post_id: 'bigint' },
  // Narrowing by the param = the full query's rows with that column: many keys, one query.
  batchPartials: true,
  capture: { votes: { columns: ['post_id'], map: (row) => ({ post_id: row.post_id }) } },
  query: (db, params) => {
    let query = db
      .selectFrom('votes')
      .select(['post_id', sql<string>`sum(value)`.as('votes')])
      .groupBy('post_id');
    if (params) query = query.where('post_id', '=', params.post_id);
    return query;
  },
});
