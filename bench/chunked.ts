// Scale-out: a full rebuild of user_stats on 500,000 users, split into 50,000-id chunks that run as
// separate jobs, on 1, 2 and 3 daemon processes — against the same rebuild unchunked on one daemon,
// in the same run. Usage: node bench/chunked.ts [--runs 3] [--users 500000]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { QueueEvents } from 'bullmq';
import { sql } from 'kysely';
import { seedDemo } from '../demo/seed.ts';
import { enqueueRefresh, waitForRefresh } from '../src/client/refresh.ts';
import { QUEUES } from '../src/contract.ts';
import { createDb } from '../src/db/create-db.ts';
import { migrate } from '../src/db/migrate.ts';
import { createQueue } from '../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../src/redis/connections.ts';
import { type DaemonProcess, startDaemon } from './lib/daemon-process.ts';
import { printTable, type Summary, summarize } from './lib/stats.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '3' }, users: { type: 'string', default: '500000' } },
});
const RUNS = Number(values.runs);
const USERS = Number(values.users);
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/vk_bench_chunked';
const REDIS_URL = 'redis://127.0.0.1:6379/6';
const PREFIX = 'vkbc';
const REPO = path.resolve(import.meta.dirname, '..');

function jobsDir(name: string, chunked: boolean): string {
  const dir = path.join(REPO, 'bench', 'results', `jobs-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'user-stats.ts'),
    `import base from ${JSON.stringify(path.join(REPO, 'jobs', 'user-stats.ts'))};
export default { ...base, chunking: ${chunked ? '{ table: "users", column: "id", size: 50000 }' : 'undefined'} };
`,
  );
  return dir;
}

async function main(): Promise<void> {
  await migrate(DATABASE_URL);
  const handle = createDb(DATABASE_URL);
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from users`.execute(handle.db);
  if (rows[0]!.n !== USERS) {
    process.stdout.write(`seeding ${USERS} users …\n`);
    await seedDemo(handle, { users: USERS, postsPerUser: 2, votesPerPost: 2, seed: 9 });
  }
  await handle.close();

  const redis = createRedis(REDIS_URL, { role: 'queue', name: 'bench' });
  await connectRedis(redis, REDIS_URL, 'REDIS_URL');
  await redis.flushdb();
  const queue = createQueue(QUEUES.refresh, redis, PREFIX);
  const events = new QueueEvents(QUEUES.refresh, { connection: redis.duplicate(), prefix: PREFIX });
  await events.waitUntilReady();

  async function measure(label: string, daemons: number, dir: string): Promise<Summary> {
    const env = { DATABASE_URL, REDIS_URL, VK_PREFIX: PREFIX, LOG_LEVEL: 'warn', VK_JOBS_DIR: dir };
    const fleet: DaemonProcess[] = Array.from({ length: daemons }, () => startDaemon(env));
    await new Promise((resolve) => setTimeout(resolve, 2500)); // start-up (and any catch-up) settles
    const samples: number[] = [];
    try {
      for (let run = 0; run < RUNS + 1; run++) {
        await redis.del(`${PREFIX}:window:user_stats|*`); // measure the rebuild, not the coalescing window
        const started = performance.now();
        const job = await enqueueRefresh(queue, 'user_stats', undefined, { coalesce: false });
        const result = await fleet[0]!.guard(waitForRefresh(job, events, 300_000));
        const ms = performance.now() - started;
        if (result.rows !== USERS)
          throw new Error(`${label}: rebuilt ${result.rows} rows, expected ${USERS}`);
        if (run > 0) samples.push(ms); // the first run warms caches
      }
    } finally {
      await Promise.all(fleet.map((daemon) => daemon.stop()));
    }
    return summarize(samples, 'ms');
  }

  const unchunked = await measure('unchunked', 1, jobsDir('unchunked', false));
  const chunked = jobsDir('chunked', true);
  const one = await measure('chunked×1', 1, chunked);
  const two = await measure('chunked×2', 2, chunked);
  const three = await measure('chunked×3', 3, chunked);

  process.stdout.write(
    `\nuser_stats full rebuild, ${USERS} users, ${Math.ceil(USERS / 50000)} chunks, median of ${RUNS}\n`,
  );
  process.stdout.write(
    printTable([
      ['unchunked, 1 daemon', unchunked],
      ['chunked, 1 daemon', one],
      ['chunked, 2 daemons', two],
      ['chunked, 3 daemons', three],
    ]),
  );
  const ratio = (a: Summary, b: Summary) => (a.median / b.median).toFixed(2);
  process.stdout.write(
    `\nchunked×1 / unchunked: ${ratio(one, unchunked)}   chunked×2 / chunked×1: ${ratio(two, one)}   chunked×3 / chunked×1: ${ratio(three, one)}\n`,
  );
  await events.close();
  await queue.close();
  await closeRedis(redis);
}

await main();
