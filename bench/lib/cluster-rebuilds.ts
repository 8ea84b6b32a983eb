import trendingView from '../../demo/jobs/trending.ts';
import userStatsView from '../../demo/jobs/user-stats.ts';
import { createDb } from '../../src/db/create-db.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { closeRedis, connectRedis, createRedisConnection } from '../../src/redis/connections.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import { createRefreshEngine } from '../../src/views/refresh-engine.ts';
import { startThrowawayCluster } from '../../test/helpers/redis-cluster.ts';
import { startThrowawayRedis } from '../../test/helpers/redis-server.ts';
import { DATABASE_URL, log, migrateBenchDatabase, prepareDatabase, USERS } from './bench-env.ts';
import { summarize } from './stats.ts';

// `bench/refresh.ts --cluster`: the cost of a Redis Cluster for the views. Full rebuilds of
// user_stats (one hash per user: many slots) and trending (one zset: one slot) by the refresh engine
// in this process, against a private standalone redis-server and a private 3-master cluster (one
// replica each) started side by side on this machine, alternating run by run; the same Postgres data.
// Reported as medians and the cluster/standalone ratio. Private servers: nothing shared is flushed.

const VIEWS: ViewDefinition[] = [userStatsView, trendingView].map((view) => ({ ...view, coalesceMs: 0 }));

export async function runClusterBench(runs: number): Promise<void> {
  await migrateBenchDatabase();
  const handle = createDb(DATABASE_URL, { max: 4 });
  const standalone = await startThrowawayRedis();
  const cluster = await startThrowawayCluster(3);
  const targets = [
    { name: 'standalone', url: standalone.url },
    { name: 'cluster', url: `redis+cluster://${cluster.ports.map((port) => `127.0.0.1:${port}`).join(',')}` },
  ];
  const connections = targets.map((target) =>
    createRedisConnection(target.url, { role: 'views', name: 'bench' }),
  );
  try {
    await prepareDatabase(handle);
    for (const [i, redis] of connections.entries()) await connectRedis(redis, targets[i]!.url, 'REDIS_URL');
    const engines = connections.map((redis) =>
      createRefreshEngine({ db: handle.db, redis, prefix: '{vkbench}', logger: silentLogger() }),
    );
    const ms = new Map<string, number[]>();
    for (const view of VIEWS) {
      for (const engine of engines) await engine.refresh(view); // warm-up: keys exist, scripts loaded
      for (let run = 0; run < runs; run++) {
        for (const [i, engine] of engines.entries()) {
          const started = performance.now();
          const outcome = await engine.refresh(view);
          if (outcome.status !== 'done')
            throw new Error(`${view.name} on ${targets[i]!.name}: ${outcome.status}`);
          const key = `${view.name} ${targets[i]!.name}`;
          ms.set(key, [...(ms.get(key) ?? []), performance.now() - started]);
        }
      }
    }
    const lines = [
      `cluster bench — ${new Date().toISOString()} — ${USERS} users, medians of ${runs} full rebuilds (ms)`,
      'view         standalone   cluster   cluster/standalone',
    ];
    for (const view of VIEWS) {
      const one = summarize(ms.get(`${view.name} standalone`)!, 'ms').median;
      const many = summarize(ms.get(`${view.name} cluster`)!, 'ms').median;
      lines.push(
        `${view.name.padEnd(12)} ${one.toFixed(0).padStart(10)} ${many.toFixed(0).padStart(9)}   ${(many / one).toFixed(2)}×`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const redis of connections) await closeRedis(redis).catch(() => undefined);
    await cluster.stop();
    await standalone.kill();
    await handle.close();
  }
  log('cluster bench done');
}
