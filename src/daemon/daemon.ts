import type { Queue } from 'bullmq';
import { createCaptureDrainer } from '../capture/drainer.ts';
import { captureProblems } from '../capture/install.ts';
import { capturedTables, fullyCapturedViews } from '../capture/tables.ts';
import { activeCaptureTables } from '../capture/triggers.ts';
import type { ResolvedConfig } from '../config/config.ts';
import { QUEUES } from '../contract.ts';
import { CAPTURE_CHANNEL } from '../db/capture-outbox.ts';
import { createDb } from '../db/create-db.ts';
import { createListener } from '../db/listen.ts';
import { describeError } from '../errors.ts';
import { STATUS_QUEUES } from '../http/status-document.ts';
import type { Logger } from '../logging/create-logger.ts';
import { CHUNK_QUEUE } from '../queues/chunked-rebuild.ts';
import { createQueue } from '../queues/factories.ts';
import { createRefreshWorker } from '../queues/refresh-worker.ts';
import { createWriteBehindWorker } from '../queues/write-behind-worker.ts';
import {
  closeRedis,
  connectRedis,
  createRedisConnection,
  warnOnEvictionPolicy,
} from '../redis/connections.ts';
import { createScheduler } from '../scheduler/scheduler.ts';
import { createRefreshBacklog } from '../sinks/refresh-backlog.ts';
import { createAuditor } from '../views/audit.ts';
import { startAuditLoop } from '../views/audit-loop.ts';
import { observeEngine } from '../views/observed-engine.ts';
import { createRefreshEngine } from '../views/refresh-engine.ts';
import { loadRegistry } from '../views/registry.ts';
import type { Operations } from './operations.ts';
import { createReleaseStack } from './release-stack.ts';
import { connectReplica } from './replica.ts';

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
}

export const DAEMON_DEFAULTS = {
  shutdownTimeoutMs: 30_000,
  stallMs: 60_000,
  sampleIntervalMs: 5000,
} as const;

/** The composition root: the only place concrete dependencies are created and wired together. */
export function createDaemon(options: DaemonOptions): Daemon {
  const { config, logger } = options;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DAEMON_DEFAULTS.shutdownTimeoutMs;
  const releases = createReleaseStack(logger);
  let stopping: Promise<void> | undefined;
  let ops: Operations | undefined;

  return {
    async start() {
      try {
        // Definitions first: a broken view file should stop start-up before anything connects.
        const registry = await loadRegistry(config.jobsDir);

        // The HTTP surface listens before anything connects (a taken port stops start-up at once);
        // its modules load only when it is configured.
        const { httpPort } = config;
        if (httpPort !== undefined) {
          const { startOperations } = await import('./operations.ts');
          ops = await startOperations({
            config: { ...config, httpPort },
            logger,
            releases,
            stallMs: options.stallMs ?? DAEMON_DEFAULTS.stallMs,
            sampleIntervalMs: options.sampleIntervalMs ?? DAEMON_DEFAULTS.sampleIntervalMs,
          });
        }

        const db = createDb(config.databaseUrl, {
          applicationName: 'viewkeeper-daemon',
          // refresh jobs + backlog refreshes (2 × concurrency) + one write-behind commit + the capture
          // drain and its lookups + spare
          max: Math.max(4, config.refreshConcurrency * 3 + 4),
          // The work that used the connection fails transiently and is retried; the pool reconnects.
          onConnectionError: (error) =>
            logger.warn(
              { reason: describeError(error) },
              'postgres connection lost; work on it will be retried',
            ),
        });
        releases.push('postgres pool', () => db.close());
        await db.ping();
        const replica =
          config.databaseReadUrl === undefined
            ? undefined
            : await connectReplica({
                url: config.databaseReadUrl,
                primary: db.db,
                concurrency: config.refreshConcurrency,
                logger,
                releases,
              });

        const views = createRedisConnection(config.redisUrl, {
          role: 'views',
          name: `${config.prefix}:views`,
        });
        releases.push('views redis', () => closeRedis(views));
        await connectRedis(views, config.redisUrl, 'REDIS_URL');
        await warnOnEvictionPolicy(views, logger, 'views');

        const queue = createRedisConnection(config.queueRedisUrl, {
          role: 'queue',
          name: `${config.prefix}:queue`,
        });
        releases.push('queue redis', () => closeRedis(queue));
        await connectRedis(queue, config.queueRedisUrl, config.queueRedisVariable);
        await warnOnEvictionPolicy(queue, logger, 'queue');

        // A Queue without an 'error' listener prints raw stacks while Redis is away: log one line.
        const watched = (handle: Queue) =>
          handle.on('error', (error) =>
            logger.warn({ queue: handle.name, reason: describeError(error) }, 'queue connection error'),
          );
        const refreshQueue = watched(createQueue(QUEUES.refresh, queue, config.prefix));
        releases.push('refresh queue', () => refreshQueue.close());

        let instruments: ReturnType<Operations['instrument']> | undefined;
        if (ops) {
          ops.probes.postgres = () => db.ping();
          ops.probes['views redis'] = () => views.ping();
          ops.probes['queue redis'] = () => queue.ping();
          if (replica) ops.degradable['postgres replica'] = () => replica.healthy();
          ops.setRefreshBacklog(() => refreshQueue.getWaitingCount());
          // Metrics and the page also watch the write-behind queue, and bull-board the chunk queue.
          const queues: Record<string, Queue> = { [QUEUES.refresh]: refreshQueue };
          for (const name of STATUS_QUEUES.filter((name) => name !== QUEUES.refresh)) {
            const handle = watched(createQueue(name, queue, config.prefix));
            releases.push(`${name} queue`, () => handle.close());
            queues[name] = handle;
          }
          const chunkQueue = watched(createQueue(CHUNK_QUEUE, queue, config.prefix));
          releases.push('chunk queue (board)', () => chunkQueue.close());
          instruments = ops.instrument({
            registry,
            views,
            queue,
            db: db.db,
            replica,
            queues,
            internalQueues: [chunkQueue],
          });
        }
        const progress = ops?.progress;

        // Run locks share the job lock lifetime: a dead daemon's (view, params) is free again as soon as
        // its jobs are (write-behind refreshes retry on a held lock).
        const bare = createRefreshEngine({
          db: db.db,
          redis: views,
          prefix: config.prefix,
          logger,
          lockTtlMs: config.jobLockMs,
          replica,
          replicaWaitMs: config.replicaWaitMs,
        });
        const engine = instruments ? observeEngine(bare, instruments.refresh) : bare;
        const worker = createRefreshWorker({
          connection: queue,
          prefix: config.prefix,
          registry,
          engine,
          concurrency: config.refreshConcurrency,
          lockDurationMs: config.jobLockMs,
          logger,
          onActivity: progress && (() => progress.refresh.beat()),
        });
        releases.push('refresh worker', () => worker.close(shutdownTimeoutMs));

        // The refreshes owed after writes — write-behind commits and captured changes alike — in one
        // durable backlog, so the same (view, params) from both is one entry and one run.
        const backlog = createRefreshBacklog({
          redis: queue,
          prefix: config.prefix,
          views: (name) => registry.view(name),
          engine,
          logger,
          concurrency: config.refreshConcurrency * 2,
          // A dead daemon's claimed refreshes are taken over about as soon as its jobs are.
          leaseMs: config.jobLockMs,
        });
        releases.push('refresh backlog', () => backlog.close(shutdownTimeoutMs));
        backlog.start();

        const tables = capturedTables(registry.views.values());
        const captured = fullyCapturedViews(registry.views.values());
        const capturedNames = [...new Set([...captured.values()].flat())];

        // Released before the refresh worker: stop() commits its open batch while everything is up.
        const writeBehind = createWriteBehindWorker({
          backlog,
          leaveToCapture:
            captured.size === 0
              ? undefined
              : async (trx) => {
                  const active = await activeCaptureTables(trx, capturedNames);
                  return new Set(
                    [...captured].filter(([, names]) => names.every((t) => active.has(t))).map(([v]) => v),
                  );
                },
          connection: queue,
          prefix: config.prefix,
          registry,
          db: db.db,
          engine,
          lockDurationMs: config.jobLockMs,
          refreshConcurrency: config.refreshConcurrency * 2,
          logger,
          observer: instruments?.writeBehind,
          heartbeat: progress && ((loop) => progress[`write-behind ${loop}`].beat()),
        });
        releases.push('write-behind worker', () => writeBehind.close(shutdownTimeoutMs));

        if (tables.size > 0) {
          // Start-up says what is wrong with capture in one line each; it never stops the daemon.
          try {
            for (const problem of await captureProblems(db.db, tables))
              logger.warn({ problem }, `capture: ${problem}`);
          } catch (error) {
            logger.warn({ reason: describeError(error) }, 'capture: could not check the triggers');
          }
          const drainer = createCaptureDrainer({
            db: db.db,
            tables,
            backlog,
            redis: queue,
            prefix: config.prefix,
            logger,
            pollMs: config.capturePollMs,
            observer: instruments?.capture,
          });
          releases.push('capture drainer', () => drainer.close(shutdownTimeoutMs));
          const listener = createListener({
            databaseUrl: config.databaseUrl,
            channel: CAPTURE_CHANNEL,
            onNotify: () => drainer.wake(),
            // Notifications sent while the connection was away are lost: look now.
            onConnect: () => drainer.wake(),
            logger,
          });
          releases.push('capture listen connection', () => listener.close());
          await listener.start();
          drainer.start();
        }

        const scheduler = createScheduler({
          registry,
          queue: refreshQueue,
          claims: queue,
          views,
          prefix: config.prefix,
          logger,
          onTick: instruments?.tick,
        });
        releases.push('scheduler', () => scheduler.stop());
        await scheduler.start();

        if (config.auditIntervalMs > 0) {
          const auditor = createAuditor({ db: db.db, redis: views, prefix: config.prefix, engine, logger });
          const audits = startAuditLoop({
            auditor,
            views: () => registry.views.values(),
            intervalMs: config.auditIntervalMs,
            sample: config.auditSample,
            logger,
          });
          releases.push('drift audit', () => audits.stop());
        }

        instruments?.attach();
        ops?.readiness.started();
        logger.info(
          {
            prefix: config.prefix,
            views: [...registry.views.keys()],
            sinks: [...registry.others.values()].filter((d) => d.kind === 'sink').map((d) => d.name),
            concurrency: config.refreshConcurrency,
            captured: [...tables.keys()],
            http: ops ? `${config.httpHost}:${ops.port}` : undefined,
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
      ops?.readiness.stopping();
      stopping ??= (async () => {
        logger.info('daemon stopping');
        await releases.release();
        logger.info('daemon stopped');
      })();
      return stopping;
    },
  };
}
