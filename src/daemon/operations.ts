import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import type { CaptureObserver } from '../capture/drainer.ts';
import type { ResolvedConfig } from '../config/config.ts';
import { QUEUES } from '../contract.ts';
import type { ReadReplica } from '../db/read-replica.ts';
import type { ViewkeeperDatabase } from '../db/schema.ts';
import { packageVersion } from '../http/build-info.ts';
import { createHistory } from '../http/history.ts';
import { createLiveness } from '../http/liveness.ts';
import { createMemorySampler } from '../http/memory-sampler.ts';
import { createMetrics } from '../http/metrics.ts';
import { createProgress, type Progress } from '../http/progress.ts';
import { createReadiness, type Readiness } from '../http/readiness.ts';
import { readStatus } from '../http/status-document.ts';
import { createHttpSurface } from '../http/surface.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { WriteBehindObserver } from '../queues/write-behind-worker.ts';
import type { RedisConnection } from '../redis/connections.ts';
import type { RefreshObserver } from '../views/observed-engine.ts';
import type { Registry } from '../views/registry.ts';
import type { ReleaseStack } from './release-stack.ts';

export interface OperationsOptions {
  config: ResolvedConfig & { httpPort: number };
  logger: Logger;
  releases: ReleaseStack;
  stallMs: number;
  sampleIntervalMs: number;
}

/** What the daemon connects once its own parts exist. */
export interface InstrumentParts {
  registry: Registry;
  views: RedisConnection;
  queue: RedisConnection;
  db: Kysely<ViewkeeperDatabase>;
  /** The read replica, when DATABASE_READ_URL is set: its state and lag go into the status. */
  replica: ReadReplica | undefined;
  /** `refresh` and `write-behind`, by name. */
  queues: Record<string, Queue>;
  /** Internal queues bull-board shows too. */
  internalQueues: Queue[];
}

export interface Operations {
  readiness: Readiness;
  /** Dependencies /readyz probes, filled in by the daemon as it connects them. */
  probes: Record<string, () => Promise<unknown>>;
  /** Dependencies /readyz reports as `degraded` when they fail, staying ready. */
  degradable: Record<string, () => Promise<unknown>>;
  /** Worker loops /readyz watches. */
  progress: { refresh: Progress; 'write-behind fetch': Progress; 'write-behind commit': Progress };
  /** Until the refresh queue exists there is nothing waiting. */
  setRefreshBacklog(backlog: () => Promise<number>): void;
  port: number;
  /** Metrics, chart history and memory sampling over the daemon's parts; `attach()` opens the routes. */
  instrument(parts: InstrumentParts): {
    refresh: RefreshObserver;
    writeBehind: WriteBehindObserver;
    capture: CaptureObserver;
    tick(view: string, outcome: string): void;
    attach(): void;
  };
}

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

/**
 * The operations surface's wiring, loaded by the daemon only when VK_HTTP_PORT is set (prom-client,
 * bull-board and Hono then stay out of a daemon that serves no HTTP). Listens at once, so a taken
 * port stops start-up before anything connects; everything it creates goes on `releases`.
 */
export async function startOperations(options: OperationsOptions): Promise<Operations> {
  const { config, logger, releases, stallMs } = options;
  const liveness = createLiveness();
  releases.push('liveness', async () => liveness.stop());
  const probes: Operations['probes'] = {};
  const degradable: Operations['degradable'] = {};
  let refreshBacklog: () => Promise<number> = async () => 0;
  const progress: Operations['progress'] = {
    refresh: createProgress({ stallMs, backlog: () => refreshBacklog() }),
    'write-behind fetch': createProgress({ stallMs }),
    'write-behind commit': createProgress({ stallMs }),
  };
  const readiness = createReadiness({ probes, degradable, workers: progress });
  const surface = createHttpSurface({
    host: config.httpHost,
    port: config.httpPort,
    token: config.httpToken,
    liveness,
    readiness,
    logger,
  });
  releases.push('http server', () => surface.close());
  const port = await surface.listen();

  return {
    readiness,
    probes,
    degradable,
    progress,
    port,
    setRefreshBacklog(backlog) {
      refreshBacklog = backlog;
    },
    instrument(parts) {
      const memory = createMemorySampler({
        definitions: parts.registry,
        views: parts.views,
        prefix: config.prefix,
      });
      releases.push('memory sampler', async () => memory.stop());
      const writeBehindQueue = parts.queues[QUEUES.writeBehind]!;
      const metrics = createMetrics({
        definitions: parts.registry,
        views: parts.views,
        queue: parts.queue,
        queues: parts.queues,
        writeBehindQueue,
        prefix: config.prefix,
        memory: () => memory.bytes(),
        version: packageVersion(),
        replica: parts.replica,
        db: parts.db,
      });
      const history = createHistory({
        queues: parts.queues,
        writeBehindQueue,
        views: parts.views,
        prefix: config.prefix,
        intervalMs: options.sampleIntervalMs,
      });
      releases.push('history', async () => history.stop());
      return {
        refresh: fanOut(metrics.refresh, history.refresh),
        writeBehind: fanOut(metrics.writeBehind, history.writeBehind),
        capture: metrics.capture,
        tick: metrics.tick,
        attach() {
          surface.attach({
            definitions: parts.registry,
            metrics,
            status: () =>
              readStatus({
                registry: parts.registry,
                views: parts.views,
                queue: parts.queue,
                queues: parts.queues,
                db: parts.db,
                replica: parts.replica,
                prefix: config.prefix,
              }),
            history,
            memory,
            views: parts.views,
            prefix: config.prefix,
            refreshQueue: parts.queues[QUEUES.refresh]!,
            boardQueues: [...Object.values(parts.queues), ...parts.internalQueues],
          });
          history.start();
          memory.start();
        },
      };
    },
  };
}
