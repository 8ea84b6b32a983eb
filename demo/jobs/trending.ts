import { sql } from 'kysely';
import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// trending:24h → member = post id, score = sum of votes.value over the last 24 h; only posts with
// such votes.
export default defineView<Database>()({
  name: 'trending',
  shape: 'zset',
  key: 'trending:24h',
  member: '{post_id}',
  score: 'score',
  params: { post_id: 'bigint' },
  // Narrowing by the param = the full query's rows with that column: many keys, one query.
  batchPartials: true,
  capture: { votes: { columns: ['post_id'], map: (row) => ({ post_id: row.post_id }) } },
  schedule: '* * * * *',
  query: (db, params) => {
    let query = db
      .selectFrom('votes')
      .select(['post_id', sql<string>`sum(value)`.as('score')])
      .where('created_at', '>', sql<Date>`now() - interval '24 hours'`)
      .groupBy('post_id');
    if (params) query = query.where('post_id', '=', params.post_id);
    return query;
  },
});
