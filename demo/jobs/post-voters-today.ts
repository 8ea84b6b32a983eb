import { sql } from 'kysely';
import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// post_voters_today:{post_id} → the ids of the users who voted on the post in the last 24 h; posts
// without such votes have no set. Rebuilt every minute, as votes leave the window.
export default defineView<Database>()({
  name: 'post_voters_today',
  shape: 'set',
  key: 'post_voters_today:{post_id}',
  member: '{user_id}',
  params: { post_id: 'bigint' },
  batchPartials: true,
  dependsOn: ['votes'],
  schedule: '* * * * *',
  query: (db, params) => {
    let query = db
      .selectFrom('votes')
      .select(['post_id', 'user_id'])
      .where('created_at', '>', sql<Date>`now() - interval '24 hours'`);
    if (params) query = query.where('post_id', '=', params.post_id);
    return query;
  },
});
