import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { seedDemo } from '../../demo/seed.ts';
import { createWriter, type Writer } from '../../src/client/write.ts';
import { QUEUES } from '../../src/contract.ts';
import { createDb, type DbHandle } from '../../src/db/create-db.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { sinksOf } from '../../src/queues/write-behind-payload.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { clearBenchKeys, log, migrateBenchDatabase, PG_BASE, prepareJobsDir, ROOT } from './bench-env.ts';
import { type DaemonProcess, startDaemon } from './daemon-process.ts';
import { sleep } from './stats.ts';

// Where the write-behind benches run: database vk_bench_wb (demo schema, `seed --users 10000`),
// Redis db 5 (BENCH_WB_REDIS_URL) under prefix vkbwb, and a daemon child process whose jobs folder
// is the demo's (schedules dropped) with the bench's own definitions laid over it.

export const WB_DATABASE_URL = `${PG_BASE}/vk_bench_wb`;
export const WB_REDIS_URL = process.env.BENCH_WB_REDIS_URL ?? 'redis://127.0.0.1:6379/5';
export const WB_PREFIX = 'vkbwb';
export const WB_USERS = 10_000;
export const WB_POSTS = WB_USERS * 10;

/** Keys the demo views write outside the prefix, plus the benches' own. */
const EXTRA_KEYS = ['vkbwb_*'];

export interface WriteBehindEnv {
  handle: DbHandle;
  redis: Redis;
  /** Starts a daemon on this database and prefix with `definitions` laid over demo/jobs. */
  startDaemon(
    definitions: Record<string, (library: string) => string>,
    nodeOptions?: string,
  ): Promise<{ daemon: DaemonProcess; writer: Writer; stop(): Promise<void> }>;
  close(): Promise<void>;
}

/** Migrates like `node demo/cli.ts migrate`, reseeds, empties the ledgers and the bench's Redis keys. */
export async function prepareWriteBehindEnv({ seed = true } = {}): Promise<WriteBehindEnv> {
  log('preparing vk_bench_wb …');
  await migrateBenchDatabase(WB_DATABASE_URL);
  const handle = createDb(WB_DATABASE_URL, { max: 4, applicationName: 'vkbwb-bench' });
  if (seed) {
    const seeded = await seedDemo(handle, { users: WB_USERS, seed: 7 });
    await sql`vacuum (analyze) users, posts, votes`.execute(handle.db);
    log(`  seeded ${seeded.votes} votes in ${(seeded.ms / 1000).toFixed(1)} s`);
  }
  await sql`truncate viewkeeper.write_ledger, viewkeeper.write_ledger_jobs, viewkeeper.write_versions,
                viewkeeper.rejected_ops`.execute(handle.db);
  const redis = createRedis(WB_REDIS_URL, { role: 'queue', name: 'vkbwb-producer' });
  await connectRedis(redis, WB_REDIS_URL, 'BENCH_WB_REDIS_URL');
  await clearBenchKeys(redis, [WB_PREFIX], EXTRA_KEYS);
  return {
    handle,
    redis,
    async startDaemon(definitions, nodeOptions) {
      const jobsDir = await prepareJobsDir(ROOT, { big: false, extra: definitions });
      const env: Record<string, string> = {
        DATABASE_URL: WB_DATABASE_URL,
        REDIS_URL: WB_REDIS_URL,
        VK_PREFIX: WB_PREFIX,
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
        VK_JOBS_DIR: jobsDir,
      };
      if (nodeOptions) env.NODE_OPTIONS = nodeOptions;
      const daemon = startDaemon(env);
      const registry = await loadRegistry(jobsDir);
      const queue = createQueue(QUEUES.writeBehind, redis, WB_PREFIX);
      const writer = createWriter({ queue, sinks: [...sinksOf(registry.others.values()).values()] });
      // The caller's warm-up write says when it is ready (its first batch committed).
      return {
        daemon,
        writer,
        async stop() {
          await writer.close();
          await daemon.stop();
          await queue.close();
          if (process.env.BENCH_LOG_LEVEL) {
            const file = path.join(ROOT, 'bench', 'results', `daemon-${Date.now()}.log`);
            await mkdir(path.dirname(file), { recursive: true });
            await writeFile(file, daemon.output());
            log(`  daemon output: ${file}`);
          }
        },
      };
    },
    async close() {
      await closeRedis(redis);
      await handle.close();
    },
  };
}

/** Polls `check` every `everyMs` until it returns true; fails the bench if the daemon dies. */
export async function until(
  daemon: DaemonProcess,
  check: () => Promise<boolean>,
  everyMs = 10,
): Promise<void> {
  await daemon.guard(
    (async () => {
      while (!(await check())) await sleep(everyMs);
    })(),
  );
}
