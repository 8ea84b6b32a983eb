import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// user_recent_votes:{user_id} → the last 20 votes the user cast, newest first, each element the JSON
// of { created_at, post_id, value }. A user with no votes has no list.
export default defineView<Database>()({
  name: 'user_recent_votes',
  shape: 'list',
  key: 'user_recent_votes:{user_id}',
  // post_id breaks ties between votes cast at the same instant: each list has one order.
  orderBy: ['created_at', 'post_id'],
  order: 'desc',
  maxLength: 20,
  params: { user_id: 'bigint' },
  // Narrowing by the param = the full query's rows with that column: many users, one query.
  batchPartials: true,
  dependsOn: ['votes'],
  query: (db, params) => {
    let query = db.selectFrom('votes').select(['user_id', 'post_id', 'value', 'created_at']);
    if (params) query = query.where('user_id', '=', params.user_id);
    return query;
  },
});
