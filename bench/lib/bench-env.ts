import { mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import pg from 'pg';
import { migrateDemo } from '../../demo/migrate.ts';
import { SEED_DEFAULTS, seedDemo } from '../../demo/seed.ts';
import type { DbHandle } from '../../src/db/create-db.ts';

// Where the refresh benches run: their own database, Redis db and prefix, and the demo data set.

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
/**
 * BENCH_USERS=N: a smaller data set (N users, the seed's other defaults) in a database and a prefix
 * of its own (`vk_bench_u2000`, `vkbench_u2000`), for a short run on a busy machine; vk_bench and
 * its keys are left alone.
 */
export const USERS = process.env.BENCH_USERS ? Number(process.env.BENCH_USERS) : SEED_DEFAULTS.users;
if (!Number.isInteger(USERS) || USERS < 1)
  throw new Error(`BENCH_USERS=${process.env.BENCH_USERS}: expected a whole number ≥ 1`);
const SUFFIX = USERS === SEED_DEFAULTS.users ? '' : `_u${USERS}`;
export const DATABASE_URL = `${PG_BASE}/vk_bench${SUFFIX}`;
export const REDIS_URL = 'redis://127.0.0.1:6379/7';
export const PREFIX = `vkbench${SUFFIX}`;
export const POSTS = USERS * SEED_DEFAULTS.postsPerUser;
export const VOTES = POSTS * SEED_DEFAULTS.votesPerPost;
export const BIG_ROWS = 1_000_000;
/** trending reads the last 24 h of votes, and the seed spreads votes over 7 days from seeding time:
 * an hour-old seed already has ~4 % fewer rows in that window. Older data is reseeded. */
const MAX_SEED_AGE_MS = 3600_000;

export const log = (line: string) => process.stderr.write(`${line}\n`);

/**
 * `node demo/cli.ts migrate` (viewkeeper's schema, then the demo's tables) on the bench database.
 * The bench database is disposable: when its recorded migrations no longer match the folder (a
 * migration was inserted before one already applied), it is dropped and created again rather than
 * failing the bench.
 */
export async function migrateBenchDatabase(databaseUrl = DATABASE_URL): Promise<void> {
  try {
    await migrateDemo(databaseUrl);
  } catch (error) {
    if (!/corrupted migrations/.test(String((error as Error).message))) throw error;
    const url = new URL(databaseUrl);
    const name = url.pathname.slice(1);
    log(`${name} migrations are out of order with migrations/: dropping and recreating it`);
    url.pathname = '/postgres';
    const admin = new pg.Client({ connectionString: url.toString() });
    await admin.connect();
    try {
      await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
    } finally {
      await admin.end();
    }
    await migrateDemo(databaseUrl);
  }
  await migrateDemo(databaseUrl);
}

/**
 * Seeds the demo tables with seedDemo defaults unless they already hold exactly those counts (and
 * are fresh), and fills `bench_big` with BIG_ROWS rows unless it has them.
 */
export async function prepareDatabase(handle: DbHandle): Promise<{ seeded: boolean; trendingRows: number }> {
  const { rows } = await sql<{ users: string; posts: string; votes: string; newest: Date | null }>`
    select (select count(*) from users) as users, (select count(*) from posts) as posts,
           (select count(*) from votes) as votes, (select max(created_at) from votes) as newest`.execute(
    handle.db,
  );
  const counts = rows[0]!;
  const fresh = counts.newest !== null && Date.now() - counts.newest.getTime() < MAX_SEED_AGE_MS;
  let seeded = false;
  if (
    Number(counts.users) !== USERS ||
    Number(counts.posts) !== POSTS ||
    Number(counts.votes) !== VOTES ||
    !fresh
  ) {
    log(`seeding vk_bench (${USERS} users, ${POSTS} posts, ${VOTES} votes)…`);
    const result = await seedDemo(handle, { users: USERS });
    log(`  seeded in ${(result.ms / 1000).toFixed(1)} s`);
    seeded = true;
  }
  await sql`create table if not exists bench_big (id bigint primary key, score double precision)`.execute(
    handle.db,
  );
  const big = await sql<{ n: string }>`select count(*) as n from bench_big`.execute(handle.db);
  if (Number(big.rows[0]!.n) !== BIG_ROWS) {
    log(`filling bench_big with ${BIG_ROWS} rows…`);
    await sql`truncate bench_big`.execute(handle.db);
    await sql`insert into bench_big (id, score)
              select i, (i * 7919 % 1000003) / 1000.0 from generate_series(1, ${BIG_ROWS}::bigint) as i`.execute(
      handle.db,
    );
    await sql`analyze bench_big`.execute(handle.db);
  }
  // The state autovacuum reaches a minute after a bulk load (visibility map set: index-only scans),
  // reached now so it does not change plans halfway through the bench. Cheap when already done.
  await sql`vacuum (analyze) users, posts, votes, bench_big`.execute(handle.db);
  const trending = await sql<{ n: string }>`
    select count(distinct post_id) as n from votes where created_at > now() - interval '24 hours'`.execute(
    handle.db,
  );
  return { seeded, trendingRows: Number(trending.rows[0]!.n) };
}

const BIG_VIEW = (library: string) => `import { defineView } from ${JSON.stringify(library)};

// bench: a zset of 1,000,000 members, to measure the daemon's memory during a full rebuild.
export default defineView()({
  name: 'big',
  shape: 'zset',
  key: 'bench:big',
  member: '{id}',
  score: 'score',
  query: (db) => db.selectFrom('bench_big').select(['id', 'score']),
});
`;

export interface JobsDirOptions {
  /** Add the `big` view (over `bench_big`, which only vk_bench has). @defaultValue true */
  big?: boolean;
  /** Extra definition files, by file name; `library` is the path to import the library from. */
  extra?: Record<string, (library: string) => string>;
}

/**
 * The demo's view files (demo/jobs) plus `big`, in a temp folder, for VK_JOBS_DIR. Their `schedule` lines are
 * dropped so cron ticks (trending every minute) cannot land inside a measurement; nothing else
 * changes. node_modules is linked so their `kysely` import resolves to the same module as src's.
 */
export async function prepareJobsDir(root = ROOT, options: JobsDirOptions = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vkbench-jobs-'));
  const library = path.join(root, 'src/index.ts');
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const demoJobs = path.join(ROOT, 'demo/jobs');
  for (const file of await readdir(demoJobs)) {
    if (!file.endsWith('.ts')) continue;
    const text = (await readFile(path.join(demoJobs, file), 'utf8'))
      .replaceAll("'../../src/index.ts'", JSON.stringify(library))
      .replace(/^\s*schedule:.*\n/m, '');
    await writeFile(path.join(dir, file), text);
  }
  if (options.big ?? true) await writeFile(path.join(dir, 'big.ts'), BIG_VIEW(library));
  for (const [file, text] of Object.entries(options.extra ?? {}))
    await writeFile(path.join(dir, file), text(library));
  return dir;
}

/** Keys the demo views and `big` write: view keys come from their templates, not the prefix. */
const VIEW_KEY_PATTERNS = [
  'user_stats:*',
  'user:*',
  'post_votes:*',
  'trending:24h',
  'trending_posts',
  'user_recent_votes:*',
  'post_voters_today:*',
  'bench:big',
];

/**
 * Empties what the refresh benches own in Redis db 7: everything under `prefixes` and the view keys.
 * Not FLUSHDB: bench/client.ts keeps its own keys (`vkbench_client_*`) in the same database.
 */
export async function clearBenchKeys(redis: Redis, prefixes: string[], more: string[] = []): Promise<number> {
  let removed = 0;
  for (const pattern of [...prefixes.map((prefix) => `${prefix}:*`), ...VIEW_KEY_PATTERNS, ...more]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      if (keys.length > 0) removed += await redis.unlink(...keys);
    } while (cursor !== '0');
  }
  return removed;
}

/** The SQL text of a Kysely select builder (what the view's query runs), for the baselines. */
export function compiledSql(query: unknown): string {
  return (query as { compile(): { sql: string } }).compile().sql;
}
