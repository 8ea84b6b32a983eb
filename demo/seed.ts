import type { Kysely, Transaction } from 'kysely';
import { sql } from 'kysely';
import type { DbHandle } from '../src/db/create-db.ts';
import { ViewkeeperError } from '../src/errors.ts';
import type { Database } from './schema.ts';

/** Sizes of the demo data set; see `viewkeeper seed --help`. */
export interface SeedOptions {
  /** @defaultValue 20000 */
  users?: number;
  /** @defaultValue 10 */
  postsPerUser?: number;
  /** @defaultValue 10 */
  votesPerPost?: number;
  /** Same seed → same rows. @defaultValue 42 */
  seed?: number;
  /** The instant vote and post ages are measured from. @defaultValue now */
  now?: Date;
}

export interface SeedResult {
  users: number;
  posts: number;
  votes: number;
  ms: number;
}

export const SEED_DEFAULTS = { users: 20000, postsPerUser: 10, votesPerPost: 10, seed: 42 } as const;
export const SEED_LIMITS = {
  users: { min: 1, max: 10_000_000 },
  postsPerUser: { min: 0, max: 1000 },
  votesPerPost: { min: 0, max: 1000 },
  seed: { min: 0, max: 2_147_483_647 },
  /** Upper bound on posts × votes per post, to keep a typo from filling the disk. */
  totalVotes: 100_000_000,
} as const;

const WEEK_SECONDS = 7 * 24 * 3600;
const YEAR_SECONDS = 365 * 24 * 3600;

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ViewkeeperError(
      'E_USAGE',
      `${name} ${value} is out of range: expected a whole number from ${min} to ${max}`,
    );
  }
}

/**
 * Replaces the demo tables' contents with deterministic data, generated entirely inside Postgres
 * (`generate_series` + `hashtextextended` keyed by the seed: no rows travel from Node).
 *
 * - users get an org (1–100) and a creation time within the last year;
 * - each post's author is drawn by hash, so post counts per user vary and some users have none;
 * - each post gets `votesPerPost` votes from distinct users (a hashed start and a fixed stride over the
 *   user ids), 70 % up / 30 % down, cast within the last 7 days;
 * - `posts.upvotes` is the sum of the post's votes.
 */
// Any handle will do (tests pass viewkeeper-typed ones): the seed speaks raw SQL to the demo's tables.
// biome-ignore lint/suspicious/noExplicitAny: the handle's table types are not used
export async function seedDemo(handle: DbHandle<any>, options: SeedOptions = {}): Promise<SeedResult> {
  const db = handle.db as Kysely<Database>;
  const users = options.users ?? SEED_DEFAULTS.users;
  const postsPerUser = options.postsPerUser ?? SEED_DEFAULTS.postsPerUser;
  const votesPerPost = options.votesPerPost ?? SEED_DEFAULTS.votesPerPost;
  const seed = options.seed ?? SEED_DEFAULTS.seed;
  const now = options.now ?? new Date();
  checkRange('--users', users, SEED_LIMITS.users.min, SEED_LIMITS.users.max);
  checkRange('--posts-per-user', postsPerUser, SEED_LIMITS.postsPerUser.min, SEED_LIMITS.postsPerUser.max);
  checkRange(
    '--votes-per-post',
    votesPerPost,
    SEED_LIMITS.votesPerPost.min,
    Math.min(SEED_LIMITS.votesPerPost.max, users),
  );
  checkRange('--seed', seed, SEED_LIMITS.seed.min, SEED_LIMITS.seed.max);
  const posts = users * postsPerUser;
  if (posts * votesPerPost > SEED_LIMITS.totalVotes) {
    throw new ViewkeeperError(
      'E_USAGE',
      `${posts} posts × ${votesPerPost} votes is over the ${SEED_LIMITS.totalVotes} vote limit: lower --users, --posts-per-user or --votes-per-post`,
    );
  }
  const stride = votesPerPost > 0 ? Math.floor(users / votesPerPost) : 1;
  const started = performance.now();

  // h(tag, n) is a non-negative 63-bit hash of (tag, n) under the seed.
  const h = (tag: string, n: ReturnType<typeof sql>) =>
    sql`(hashtextextended(${tag}::text || (${n})::text, ${seed}::bigint) & 9223372036854775807)`;

  await db.transaction().execute(async (trx) => {
    await sql`truncate table votes, posts, users`.execute(trx);
    const restore = await dropSecondaryStructures(trx, ['users', 'posts', 'votes']);
    await sql`
      insert into users (id, name, email, org_id, created_at)
      select i, 'User ' || i, 'user' || i || '@example.com', 1 + ${h('org', sql`i`)} % 100,
             ${now}::timestamptz - make_interval(secs => ${h('uc', sql`i`)} % ${YEAR_SECONDS}::bigint)
      from generate_series(1, ${users}::bigint) as i`.execute(trx);
    // Votes are a pure function of (post, k), so the posts' vote sums can be computed from the same
    // generator before the votes exist: posts land with the right upvotes and no UPDATE pass is needed.
    const generatedVotes = sql`
      select p as post_id,
             1 + (${h('vs', sql`p`)} + k * ${stride}::bigint) % ${users}::bigint as user_id,
             case when ${h('vv', sql`p * 1000 + k`)} % 10 < 7 then 1 else -1 end as value,
             ${now}::timestamptz - make_interval(secs => ${h('vt', sql`p * 1000 + k`)} % ${WEEK_SECONDS}::bigint) as created_at
      from generate_series(1, ${posts}::bigint) as p, generate_series(0, ${votesPerPost - 1}::int) as k`;
    await sql`
      insert into posts (id, user_id, title, upvotes, created_at)
      select p, 1 + ${h('pa', sql`p`)} % ${users}::bigint, 'Post ' || p, coalesce(s.total, 0),
             ${now}::timestamptz - make_interval(secs => ${h('pc', sql`p`)} % ${YEAR_SECONDS}::bigint)
      from generate_series(1, ${posts}::bigint) as p
      left join (select post_id, sum(value) as total from (${generatedVotes}) v group by post_id) s on s.post_id = p`.execute(
      trx,
    );
    await sql`insert into votes (post_id, user_id, value, created_at) ${generatedVotes}`.execute(trx);
    await restore();
  });
  await sql`analyze users, posts, votes`.execute(db);
  return { users, posts, votes: posts * votesPerPost, ms: Math.round(performance.now() - started) };
}

/**
 * Drops the foreign keys and secondary indexes of `tables` and returns a function that recreates them
 * from their own catalog definitions (what pg_restore does). Loading 2M votes with the FK triggers
 * and three indexes live takes ~30 s on 2 cores; loading bare and validating/indexing once afterwards
 * takes ~8 s. Runs inside the caller's transaction, so a failure leaves the schema untouched.
 */
async function dropSecondaryStructures(
  trx: Transaction<Database>,
  tables: string[],
): Promise<() => Promise<void>> {
  const { rows: foreignKeys } = await sql<{ table: string; name: string; definition: string }>`
    select conrelid::regclass::text as table, conname as name, pg_get_constraintdef(oid) as definition
    from pg_constraint where contype = 'f' and conrelid = any(${tables}::regclass[])`.execute(trx);
  const { rows: indexes } = await sql<{ name: string; definition: string }>`
    select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as definition
    from pg_index i
    where i.indrelid = any(${tables}::regclass[])
      and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)`.execute(trx);
  for (const fk of foreignKeys) {
    await sql`alter table ${sql.id(fk.table)} drop constraint ${sql.id(fk.name)}`.execute(trx);
  }
  for (const index of indexes) await sql`drop index ${sql.raw(index.name)}`.execute(trx);
  return async () => {
    // Catalog text (pg_get_indexdef / pg_get_constraintdef), not user input.
    for (const index of indexes) await sql.raw(index.definition).execute(trx);
    for (const fk of foreignKeys) {
      await sql`alter table ${sql.id(fk.table)} add constraint ${sql.id(fk.name)} ${sql.raw(fk.definition)}`.execute(
        trx,
      );
    }
  };
}
