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
import type { Logger } from '../logging/create-logger.ts';
import { createQueue } from '../queues/factories.ts';
import { createRefreshWorker } from '../queues/refresh-worker.ts';
import { createWriteBehindWorker } from '../queues/write-behind-worker.ts';
import { closeRedis, connectRedis, createRedis, warnOnEvictionPolicy } from '../redis/connections.ts';
import { createScheduler } from '../scheduler/scheduler.ts';
import { createRefreshBacklog } from '../sinks/refresh-backlog.ts';
import { createAuditor } from '../views/audit.ts';
import { startAuditLoop } from '../views/audit-loop.ts';
import { createRefreshEngine } from '../views/refresh-engine.ts';
import { loadRegistry } from '../views/registry.ts';
import { createReleaseStack } from './release-stack.ts';

export interface DaemonOptions {
  config: ResolvedConfig;
  logger: Logger;
  /** How long a graceful stop waits for in-flight jobs before cancelling them. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
}

export interface Daemon {
  /** Connects everything and starts consuming. Rejects (after releasing what it opened) on failure. */
  start(): Promise<void>;
  /** Graceful stop: finish in-flight work within the timeout, then close every connection. Idempotent. */
  stop(): Promise<void>;
}

export const DAEMON_DEFAULTS = { shutdownTimeoutMs: 30_000 } as const;

/** The composition root: the only place concrete dependencies are created and wired together. */
export function createDaemon(options: DaemonOptions): Daemon {
  const { config, logger } = options;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DAEMON_DEFAULTS.shutdownTimeoutMs;
  const releases = createReleaseStack(logger);
  let stopping: Promise<void> | undefined;

  return {
    async start() {
      try {
        // Definitions first: a broken view file should stop start-up before anything connects.
        const registry = await loadRegistry(config.jobsDir);

        const db = createDb(config.databaseUrl, {
          applicationName: 'viewkeeper-daemon',
          // refresh jobs + backlog refreshes (2 × concurrency) + one write-behind commit + the capture
          // drain and its lookups + spare
          max: Math.max(4, config.refreshConcurrency * 3 + 4),
        });
        releases.push('postgres pool', () => db.close());
        await db.ping();

        const views = createRedis(config.redisUrl, { role: 'views', name: `${config.prefix}:views` });
        releases.push('views redis', () => closeRedis(views));
        await connectRedis(views, config.redisUrl, 'REDIS_URL');
        await warnOnEvictionPolicy(views, logger, 'views');

        const queue = createRedis(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:queue` });
        releases.push('queue redis', () => closeRedis(queue));
        await connectRedis(queue, config.queueRedisUrl, 'QUEUE_REDIS_URL');
        await warnOnEvictionPolicy(queue, logger, 'queue');

        // Run locks share the job lock lifetime: a dead daemon's (view, params) is free again as soon as
        // its jobs are (write-behind refreshes retry on a held lock).
        const engine = createRefreshEngine({
          db: db.db,
          redis: views,
          prefix: config.prefix,
          logger,
          lockTtlMs: config.jobLockMs,
        });
        const worker = createRefreshWorker({
          connection: queue,
          prefix: config.prefix,
          registry,
          engine,
          concurrency: config.refreshConcurrency,
          lockDurationMs: config.jobLockMs,
          logger,
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

        const refreshQueue = createQueue(QUEUES.refresh, queue, config.prefix);
        releases.push('refresh queue', () => refreshQueue.close());
        const scheduler = createScheduler({
          registry,
          queue: refreshQueue,
          claims: queue,
          views,
          prefix: config.prefix,
          logger,
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

        logger.info(
          {
            prefix: config.prefix,
            views: [...registry.views.keys()],
            sinks: [...registry.others.values()].filter((d) => d.kind === 'sink').map((d) => d.name),
            concurrency: config.refreshConcurrency,
            captured: [...tables.keys()],
          },
          'daemon started',
        );
      } catch (error) {
        await releases.release();
        throw error;
      }
    },
    stop() {
      stopping ??= (async () => {
        logger.info('daemon stopping');
        await releases.release();
        logger.info('daemon stopped');
      })();
      return stopping;
    },
  };
}
