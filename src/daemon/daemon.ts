import type { Queue } from 'bullmq';
import type { ResolvedConfig } from '../config/config.ts';
import { QUEUES } from '../contract.ts';
import { createDb } from '../db/create-db.ts';
import { describeError } from '../errors.ts';
import { packageVersion } from '../http/build-info.ts';
import { createHistory } from '../http/history.ts';
import { createLiveness } from '../http/liveness.ts';
import { createMemorySampler } from '../http/memory-sampler.ts';
import { createMetrics } from '../http/metrics.ts';
import { createProgress } from '../http/progress.ts';
import { createReadiness, type Readiness } from '../http/readiness.ts';
import { createHttpSurface, type HttpSurface } from '../http/surface.ts';
import type { Logger } from '../logging/create-logger.ts';
import { CHUNK_QUEUE } from '../queues/chunked-rebuild.ts';
import { createQueue } from '../queues/factories.ts';
import { createRefreshWorker } from '../queues/refresh-worker.ts';
import { createWriteBehindWorker, type WriteBehindObserver } from '../queues/write-behind-worker.ts';
import { closeRedis, connectRedis, createRedis, warnOnEvictionPolicy } from '../redis/connections.ts';
import { createScheduler } from '../scheduler/scheduler.ts';
import { observeEngine, type RefreshObserver } from '../views/observed-engine.ts';
import { createRefreshEngine } from '../views/refresh-engine.ts';
import { loadRegistry } from '../views/registry.ts';
import { createReleaseStack } from './release-stack.ts';
import { readStatus, STATUS_QUEUES } from './status.ts';

export interface DaemonOptions {
  config: ResolvedConfig;
  logger: Logger;
  /** How long a graceful stop waits for in-flight jobs before cancelling them. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
  /** A worker loop silent this long while it has work turns /readyz red. @defaultValue 60000 */
  stallMs?: number;
  /** How often the status page's charts get a point. @defaultValue 5000 */
  sampleIntervalMs?: number;
}

export interface Daemon {
  /** Connects everything and starts consuming. Rejects (after releasing what it opened) on failure. */
  start(): Promise<void>;
  /** Graceful stop: finish in-flight work within the timeout, then close every connection. Idempotent. */
  stop(): Promise<void>;
  /** The port the HTTP surface listens on (VK_HTTP_PORT), once started; undefined without one. */
  httpPort(): number | undefined;
}

export const DAEMON_DEFAULTS = {
  shutdownTimeoutMs: 30_000,
  stallMs: 60_000,
  sampleIntervalMs: 5000,
} as const;

/** Each method of every target, called in turn: one observer slot, several listeners. */
function fanOut<T extends object>(...targets: T[]): T {
  const keys = new Set(targets.flatMap((target) => Object.keys(target)));
  return Object.fromEntries(
    [...keys].map((key) => [
      key,
      (...args: unknown[]) => {
        for (const target of targets) (target as Record<string, (...a: unknown[]) => void>)[key]?.(...args);
      },
    ]),
  ) as T;
}

/** The composition root: the only place concrete dependencies are created and wired together. */
export function createDaemon(options: DaemonOptions): Daemon {
  const { config, logger } = options;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DAEMON_DEFAULTS.shutdownTimeoutMs;
  const stallMs = options.stallMs ?? DAEMON_DEFAULTS.stallMs;
  const releases = createReleaseStack(logger);
  let stopping: Promise<void> | undefined;
  let readiness: Readiness | undefined;
  let listening: number | undefined;

  return {
    httpPort: () => listening,
    async start() {
      try {
        // Definitions first: a broken view file should stop start-up before anything connects.
        const registry = await loadRegistry(config.jobsDir);

        // The HTTP surface listens before anything connects: a taken port stops start-up at once,
        // and /livez answers (and /readyz says "starting") while the rest comes up.
        const probes: Record<string, () => Promise<unknown>> = {};
        const progress = {
          refresh: createProgress({ stallMs, backlog: async () => 0 }),
          'write-behind fetch': createProgress({ stallMs }),
          'write-behind commit': createProgress({ stallMs }),
        };
        let surface: HttpSurface | undefined;
        if (config.httpPort !== undefined) {
          const liveness = createLiveness();
          releases.push('liveness', async () => liveness.stop());
          readiness = createReadiness({ probes, workers: progress });
          surface = createHttpSurface({
            host: config.httpHost,
            port: config.httpPort,
            token: config.httpToken,
            liveness,
            readiness,
            logger,
          });
          releases.push('http server', () => surface!.close());
          listening = await surface.listen();
        }

        const db = createDb(config.databaseUrl, {
          applicationName: 'viewkeeper-daemon',
          // refresh jobs + write-behind refreshes (2 × concurrency) + one write-behind commit + spare
          max: Math.max(4, config.refreshConcurrency * 3 + 2),
        });
        releases.push('postgres pool', () => db.close());
        await db.ping();
        probes.postgres = () => db.ping();

        const views = createRedis(config.redisUrl, { role: 'views', name: `${config.prefix}:views` });
        releases.push('views redis', () => closeRedis(views));
        await connectRedis(views, config.redisUrl, 'REDIS_URL');
        await warnOnEvictionPolicy(views, logger, 'views');
        probes['views redis'] = () => views.ping();

        const queue = createRedis(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:queue` });
        releases.push('queue redis', () => closeRedis(queue));
        await connectRedis(queue, config.queueRedisUrl, 'QUEUE_REDIS_URL');
        await warnOnEvictionPolicy(queue, logger, 'queue');
        probes['queue redis'] = () => queue.ping();

        // A Queue without an 'error' listener prints raw stacks while Redis is away: log one line.
        const watched = (handle: Queue) =>
          handle.on('error', (error) =>
            logger.warn({ queue: handle.name, reason: describeError(error) }, 'queue connection error'),
          );
        const refreshQueue = watched(createQueue(QUEUES.refresh, queue, config.prefix));
        releases.push('refresh queue', () => refreshQueue.close());
        const statusQueues: Record<string, Queue> = { [QUEUES.refresh]: refreshQueue };
        for (const name of STATUS_QUEUES) {
          if (statusQueues[name]) continue;
          const handle = watched(createQueue(name, queue, config.prefix));
          releases.push(`${name} queue`, () => handle.close());
          statusQueues[name] = handle;
        }
        progress.refresh = createProgress({ stallMs, backlog: () => refreshQueue.getWaitingCount() });

        // Metrics and the page's history only exist with the HTTP surface.
        let refreshObserver: RefreshObserver | undefined;
        let writeObserver: WriteBehindObserver | undefined;
        let onTick: ((view: string, outcome: string) => void) | undefined;
        let attach: (() => void) | undefined;
        if (surface) {
          const memory = createMemorySampler({ definitions: registry, views, prefix: config.prefix });
          releases.push('memory sampler', async () => memory.stop());
          const writeBehindQueue = statusQueues[QUEUES.writeBehind]!;
          const metrics = createMetrics({
            definitions: registry,
            views,
            queue,
            queues: statusQueues,
            writeBehindQueue,
            prefix: config.prefix,
            memory: () => memory.bytes(),
            version: packageVersion(),
          });
          const history = createHistory({
            queues: statusQueues,
            writeBehindQueue,
            views,
            prefix: config.prefix,
            intervalMs: options.sampleIntervalMs ?? DAEMON_DEFAULTS.sampleIntervalMs,
          });
          releases.push('history', async () => history.stop());
          refreshObserver = fanOut(metrics.refresh, history.refresh);
          writeObserver = fanOut(metrics.writeBehind, history.writeBehind);
          onTick = metrics.tick;
          const chunkQueue = watched(createQueue(CHUNK_QUEUE, queue, config.prefix));
          releases.push('chunk queue (board)', () => chunkQueue.close());
          const active = surface;
          attach = () => {
            active.attach({
              definitions: registry,
              metrics,
              status: () =>
                readStatus({
                  registry,
                  views,
                  queue,
                  queues: statusQueues,
                  db: db.db,
                  prefix: config.prefix,
                }),
              history,
              memory,
              views,
              prefix: config.prefix,
              refreshQueue,
              boardQueues: [...Object.values(statusQueues), chunkQueue],
            });
            history.start();
            memory.start();
          };
        }

        // Run locks share the job lock lifetime: a dead daemon's (view, params) is free again as soon as
        // its jobs are (write-behind refreshes retry on a held lock).
        const bare = createRefreshEngine({
          db: db.db,
          redis: views,
          prefix: config.prefix,
          logger,
          lockTtlMs: config.jobLockMs,
        });
        const engine = refreshObserver ? observeEngine(bare, refreshObserver) : bare;
        const worker = createRefreshWorker({
          connection: queue,
          prefix: config.prefix,
          registry,
          engine,
          concurrency: config.refreshConcurrency,
          lockDurationMs: config.jobLockMs,
          logger,
          onActivity: () => progress.refresh.beat(),
        });
        releases.push('refresh worker', () => worker.close(shutdownTimeoutMs));

        // Released before the refresh worker: stop() commits its open batch while everything is up.
        const writeBehind = createWriteBehindWorker({
          connection: queue,
          prefix: config.prefix,
          registry,
          db: db.db,
          engine,
          lockDurationMs: config.jobLockMs,
          refreshConcurrency: config.refreshConcurrency * 2,
          logger,
          observer: writeObserver,
          heartbeat: (loop) =>
            progress[loop === 'fetch' ? 'write-behind fetch' : 'write-behind commit'].beat(),
        });
        releases.push('write-behind worker', () => writeBehind.close(shutdownTimeoutMs));

        const scheduler = createScheduler({
          registry,
          queue: refreshQueue,
          claims: queue,
          views,
          prefix: config.prefix,
          logger,
          onTick,
        });
        releases.push('scheduler', () => scheduler.stop());
        await scheduler.start();

        attach?.();
        readiness?.started();
        logger.info(
          {
            prefix: config.prefix,
            views: [...registry.views.keys()],
            sinks: [...registry.others.values()].filter((d) => d.kind === 'sink').map((d) => d.name),
            concurrency: config.refreshConcurrency,
            http: listening === undefined ? undefined : `${config.httpHost}:${listening}`,
          },
          'daemon started',
        );
      } catch (error) {
        await releases.release();
        throw error;
      }
    },
    stop() {
      // Not ready from the first signal on, while everything still runs: load balancers drain first.
      readiness?.stopping();
      stopping ??= (async () => {
        logger.info('daemon stopping');
        await releases.release();
        logger.info('daemon stopped');
      })();
      return stopping;
    },
  };
}
