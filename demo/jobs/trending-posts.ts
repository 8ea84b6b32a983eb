import { sql } from 'kysely';
import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// trending_posts → JSON array of the top 100 {id, title, vote_count} by 24 h vote sum desc, id asc.
export default defineView<Database>()({
  name: 'trending_posts',
  shape: 'json',
  key: 'trending_posts',
  // A top-100 list: any vote or post change may reorder it, so it is rebuilt whole (once per drained
  // batch, however many rows changed).
  capture: { votes: 'full', posts: 'full' },
  schedule: '* * * * *',
  query: (db) =>
    db
      .selectFrom((eb) =>
        eb
          .selectFrom('votes')
          .select(['post_id', sql<string>`sum(value)`.as('vote_count')])
          .where('created_at', '>', sql<Date>`now() - interval '24 hours'`)
          .groupBy('post_id')
          .orderBy('vote_count', 'desc')
          .orderBy('post_id', 'asc')
          .limit(100)
          .as('top'),
      )
      .innerJoin('posts', 'posts.id', 'top.post_id')
      .select(['posts.id', 'posts.title', 'top.vote_count'])
      .orderBy('top.vote_count', 'desc')
      .orderBy('posts.id', 'asc'),
  map: (row) => ({ id: Number(row.id), title: row.title, vote_count: Number(row.vote_count) }),
});
