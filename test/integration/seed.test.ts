import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../demo/seed.ts';
import type { DbHandle } from '../../src/db/create-db.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.cleanup());

const now = new Date('2026-11-01T12:00:00Z');

/** A fingerprint of every row of the demo tables. */
async function fingerprint(handle: DbHandle): Promise<string> {
  const { rows } = await sql<{ digest: string }>`
    select md5(
      (select string_agg(u::text, '|' order by id) from users u) ||
      (select string_agg(p::text, '|' order by id) from posts p) ||
      (select string_agg(v::text, '|' order by post_id, user_id) from votes v)
    ) as digest`.execute(handle.db);
  return rows[0]!.digest;
}

describe('seedDemo', () => {
  it('creates the requested counts with upvotes equal to each post vote sum', async () => {
    const result = await seedDemo(ctx.db, { users: 300, postsPerUser: 4, votesPerPost: 7, seed: 1, now });
    expect(result).toMatchObject({ users: 300, posts: 1200, votes: 8400 });
    const { rows } = await sql<{
      users: number;
      posts: number;
      votes: number;
      mismatched: number;
      outside: number;
    }>`
      select (select count(*)::int from users) as users,
             (select count(*)::int from posts) as posts,
             (select count(*)::int from votes) as votes,
             (select count(*)::int from posts p
               where p.upvotes <> coalesce((select sum(v.value) from votes v where v.post_id = p.id), 0)) as mismatched,
             (select count(*)::int from votes
               where created_at > ${now}::timestamptz or created_at <= ${now}::timestamptz - interval '7 days') as outside
    `.execute(ctx.db.db);
    expect(rows[0]).toEqual({ users: 300, posts: 1200, votes: 8400, mismatched: 0, outside: 0 });
  });

  it('gives identical data for the same seed and different data for another', async () => {
    await seedDemo(ctx.db, { users: 200, postsPerUser: 3, votesPerPost: 5, seed: 7, now });
    const first = await fingerprint(ctx.db);
    await seedDemo(ctx.db, { users: 200, postsPerUser: 3, votesPerPost: 5, seed: 7, now });
    expect(await fingerprint(ctx.db)).toBe(first);
    await seedDemo(ctx.db, { users: 200, postsPerUser: 3, votesPerPost: 5, seed: 8, now });
    expect(await fingerprint(ctx.db)).not.toBe(first);
  });

  it('leaves the schema as the migrations made it (constraints and indexes restored)', async () => {
    await seedDemo(ctx.db, { users: 50, postsPerUser: 2, votesPerPost: 3, seed: 3, now });
    const { rows } = await sql<{ name: string }>`
      select conname as name from pg_constraint where conrelid in ('posts'::regclass, 'votes'::regclass)
      union all
      select indexname from pg_indexes where tablename in ('posts', 'votes')
      order by 1`.execute(ctx.db.db);
    expect(rows.map((row) => row.name)).toEqual([
      'posts_pkey',
      'posts_pkey',
      'posts_user_id_fkey',
      'posts_user_id_idx',
      'votes_created_at_idx',
      'votes_pkey',
      'votes_pkey',
      'votes_post_id_fkey',
      'votes_user_id_fkey',
      'votes_user_id_idx',
      'votes_value_check',
    ]);
    await expect(
      sql`insert into votes (post_id, user_id, value) values (1, 999999, 1)`.execute(ctx.db.db),
    ).rejects.toThrow(/foreign key/);
  });

  it('refuses more votes per post than there are users, writing nothing', async () => {
    await seedDemo(ctx.db, { users: 20, postsPerUser: 1, votesPerPost: 1, seed: 1, now });
    const before = await fingerprint(ctx.db);
    await expect(seedDemo(ctx.db, { users: 5, votesPerPost: 6 })).rejects.toThrow(
      '--votes-per-post 6 is out of range: expected a whole number from 0 to 5',
    );
    expect(await fingerprint(ctx.db)).toBe(before);
  });
});
