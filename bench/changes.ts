// Change capture: (a) freshness from an external writer's COMMIT to the view's event at a steady
// rate of single-row transactions, (b) what the triggers cost the writers (the same UPDATEs with and
// without them, single-row and 1,000-row statements, as ratios), (c) drain throughput in changed
// rows per second.
//
// Usage: node bench/changes.ts [--rate 1000] [--seconds 20] [--single 2000] [--bulk 40] [--drain 20000]
//
// Everything runs on this machine: Postgres, a private redis-server on a free loopback port (started
// and killed by the bench), the daemon (`viewkeeper start`, a child process) and the writers (plain pg
// clients in this process: no viewkeeper code on the writing side). Database vk_bench_changes
// (reseeded every run: 25,000 users, 125,000 posts, 500,000 votes), prefix vkbch.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrateDemo } from '../demo/migrate.ts';
import { seedDemo } from '../demo/seed.ts';
import { applyChanges, planInstall, planUninstall } from '../src/capture/install.ts';
import { capturedTables } from '../src/capture/tables.ts';
import { createDb } from '../src/db/create-db.ts';
import { eventsKey } from '../src/redis/keys.ts';
import { refreshBacklogKey } from '../src/sinks/refresh-backlog.ts';
import { loadRegistry } from '../src/views/registry.ts';
import { startThrowawayRedis } from '../test/helpers/redis-server.ts';
import { startDaemon } from './lib/daemon-process.ts';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    single: { type: 'string', default: '2000' },
    bulk: { type: 'string', default: '40' },
    drain: { type: 'string', default: '20000' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const SINGLE = Number(values.single);
const BULK = Number(values.bulk);
const DRAIN = Number(values.drain);
const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const DATABASE_URL = `${PG_BASE}/vk_bench_changes`;
const PREFIX = 'vkbch';
const REPO = path.resolve(import.meta.dirname, '..');
const USERS = 25_000;
/** Writer connections: a commit waits for its WAL flush, so the rate needs several in flight. */
const WRITERS = 32;

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The demo's views without cron schedules, so no scheduled rebuild lands inside a measurement. */
function jobsDir(): string {
  const dir = path.join(REPO, 'bench', 'results', 'jobs-changes');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const file of ['user.ts', 'user-stats.ts', 'post-votes.ts', 'trending.ts', 'trending-posts.ts']) {
    writeFileSync(
      path.join(dir, file),
      `import base from ${JSON.stringify(path.join(REPO, 'demo', 'jobs', file))};\nexport default { ...base, schedule: undefined };\n`,
    );
  }
  return dir;
}

async function waitDrained(pool: pg.Pool, redis: Redis, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query('select count(*)::int as n from viewkeeper.capture_outbox');
    if (rows[0].n === 0 && (await redis.zcard(refreshBacklogKey(PREFIX))) === 0) return;
    if (Date.now() > deadline) throw new Error('capture did not drain in time');
    await sleep(20);
  }
}

/** Mean ms per statement of `count` runs of `statement(i)` on one connection, autocommit. */
async function timeStatements(
  client: pg.Client,
  count: number,
  statement: (i: number) => [string, unknown[]],
) {
  const started = performance.now();
  for (let i = 0; i < count; i++) await client.query(...statement(i));
  return (performance.now() - started) / count;
}

async function main(): Promise<void> {
  const redisServer = await startThrowawayRedis();
  const redisUrl = `${redisServer.url}/0`;
  const redis = new Redis(redisUrl);
  const subscriber = new Redis(redisUrl);
  const dir = jobsDir();
  const handle = createDb(DATABASE_URL, { max: 4, applicationName: 'bench-writer' });
  const registry = await loadRegistry(dir);
  const tables = capturedTables(registry.views.values());
  const env = {
    DATABASE_URL,
    REDIS_URL: redisUrl,
    VK_PREFIX: PREFIX,
    VK_JOBS_DIR: dir,
    LOG_LEVEL: 'warn',
  };
  let daemon: ReturnType<typeof startDaemon> | undefined;
  try {
    await migrateDemo(DATABASE_URL);
    log(`seeding vk_bench_changes (${USERS} users)…`);
    await seedDemo(handle, { users: USERS, postsPerUser: 5, votesPerPost: 4, seed: 7 });
    await handle.pool.query('vacuum analyze users, posts, votes');
    await handle.pool.query('truncate viewkeeper.capture_outbox, viewkeeper.capture_failures');
    const install = () => planInstall(handle.db, tables).then((changes) => applyChanges(handle.db, changes));
    const uninstall = () => planUninstall(handle.db).then((changes) => applyChanges(handle.db, changes));

    // (b) writer overhead, daemon not running: A/B interleaved, the outbox emptied between runs.
    const writer = new pg.Client({ connectionString: DATABASE_URL });
    await writer.connect();
    const { rows: bounds } = await writer.query('select min(id)::int as lo, max(id)::int as hi from posts');
    const { lo, hi } = bounds[0] as { lo: number; hi: number };
    const single = (i: number): [string, unknown[]] => [
      'update posts set upvotes = upvotes + 1 where id = $1',
      [lo + ((i * 7919) % (hi - lo))],
    ];
    const bulk = (i: number): [string, unknown[]] => [
      'update posts set upvotes = upvotes + 1 where id >= $1 and id < $1 + 1000',
      [lo + ((i * 1000) % (hi - lo - 1000))],
    ];
    const overhead = {
      single: { off: [] as number[], on: [] as number[] },
      bulk: { off: [] as number[], on: [] as number[] },
    };
    for (let round = 0; round < 3; round++) {
      for (const mode of ['off', 'on'] as const) {
        await (mode === 'on' ? install() : uninstall());
        overhead.single[mode].push(await timeStatements(writer, SINGLE, single));
        overhead.bulk[mode].push(await timeStatements(writer, BULK, bulk));
        await writer.query('delete from viewkeeper.capture_outbox');
      }
    }
    await writer.end();
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    await install();

    // The daemon starts from views equal to the data (its first drains are not the bench's).
    daemon = startDaemon(env);
    const events: { at: number; keys: string[] | null; view: string }[] = [];
    subscriber.on('message', (_channel, message) => {
      const event = JSON.parse(message) as { view: string; keys: string[] | null };
      events.push({ at: performance.now(), keys: event.keys, view: event.view });
    });
    await subscriber.subscribe(eventsKey(PREFIX));
    await sleep(3000);
    await daemon.guard(waitDrained(handle.pool, redis));

    // (c) drain throughput: one UPDATE changing DRAIN votes rows of distinct posts, daemon running.
    const { rows: postRange } = await handle.pool.query('select min(post_id)::int as lo from votes');
    const drainStarted = performance.now();
    await handle.pool.query(`update votes set value = -value where post_id >= $1 and post_id < $1 + $2`, [
      postRange[0].lo,
      DRAIN,
    ]);
    const { rows: drainCount } = await handle.pool.query(
      'select coalesce(sum(array_length(keys, 1)), 0)::int as n from viewkeeper.capture_outbox',
    );
    const captured = drainCount[0].n as number;
    let outboxEmptyMs = 0;
    for (;;) {
      const { rows } = await handle.pool.query('select count(*)::int as n from viewkeeper.capture_outbox');
      if (rows[0].n === 0) {
        outboxEmptyMs = performance.now() - drainStarted;
        break;
      }
      await sleep(20);
    }
    await daemon.guard(waitDrained(handle.pool, redis));
    const refreshedMs = performance.now() - drainStarted;

    // (a) freshness: RATE single-row transactions/s for SECONDS, each on a user id of its own.
    events.length = 0;
    const { rows: users } = await handle.pool.query('select id from users order by id');
    const ids = users.map((row) => String(row.id));
    const total = Math.min(ids.length, RATE * SECONDS);
    const committed = new Map<string, number>();
    const clients = await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        const client = new pg.Client({ connectionString: DATABASE_URL });
        await client.connect();
        return client;
      }),
    );
    const started = performance.now();
    let next = 0;
    let late = 0;
    await Promise.all(
      clients.map(async (client) => {
        for (;;) {
          const i = next++;
          if (i >= total) return;
          const due = started + (i * 1000) / RATE;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          else if (wait < -50) late += 1;
          await client.query('update users set name = $1 where id = $2', [`fresh ${i}`, ids[i]]);
          committed.set(`user:${ids[i]}`, performance.now());
        }
      }),
    );
    const writeSeconds = (performance.now() - started) / 1000;
    await Promise.all(clients.map((client) => client.end()));
    await daemon.guard(waitDrained(handle.pool, redis));
    const latencies: number[] = [];
    const seen = new Set<string>();
    for (const event of events) {
      if (event.view !== 'user' || !event.keys) continue;
      for (const key of event.keys) {
        const at = committed.get(key);
        if (at === undefined || seen.has(key)) continue;
        seen.add(key);
        latencies.push(event.at - at);
      }
    }
    latencies.sort((a, b) => a - b);

    const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
    const lines = [
      `(a) freshness, COMMIT → event on ${PREFIX}:events (view user), ${total} single-row transactions at ${RATE}/s target (${(total / writeSeconds).toFixed(0)}/s achieved, ${late} sent >50 ms late):`,
      `    matched ${latencies.length}/${total}; p50 ${fmt(percentile(latencies, 50))} ms, p90 ${fmt(percentile(latencies, 90))} ms, p99 ${fmt(percentile(latencies, 99))} ms, max ${fmt(latencies.at(-1) ?? Number.NaN)} ms`,
      `(b) writer overhead (median of 3 interleaved rounds, ms per statement, autocommit):`,
      `    single-row UPDATE posts: without ${fmt(median(overhead.single.off))}, with ${fmt(median(overhead.single.on))} → ${(median(overhead.single.on) / median(overhead.single.off)).toFixed(2)}×`,
      `    1,000-row UPDATE posts:  without ${fmt(median(overhead.bulk.off))}, with ${fmt(median(overhead.bulk.on))} → ${(median(overhead.bulk.on) / median(overhead.bulk.off)).toFixed(2)}×`,
      `(c) drain: one UPDATE of ${DRAIN} votes (distinct posts) → ${captured} changed keys in the outbox; outbox empty after ${fmt(outboxEmptyMs)} ms (${((captured / outboxEmptyMs) * 1000).toFixed(0)} rows/s), every refresh written after ${fmt(refreshedMs)} ms (${((captured / refreshedMs) * 1000).toFixed(0)} changed rows/s end to end)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await daemon?.stop();
    subscriber.disconnect();
    redis.disconnect();
    await handle.close();
    await redisServer.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
