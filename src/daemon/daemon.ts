import type { ResolvedConfig } from '../config/config.ts';
import { createDb } from '../db/create-db.ts';
import type { Logger } from '../logging/create-logger.ts';
import { closeRedis, connectRedis, createRedis, warnOnEvictionPolicy } from '../redis/connections.ts';
import { createReleaseStack } from './release-stack.ts';

export interface DaemonOptions {
  config: ResolvedConfig;
  logger: Logger;
  /** How long a graceful stop waits for in-flight work before forcing. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
}

export interface Daemon {
  /** Connects everything and starts consuming. Rejects (after releasing what it opened) on failure. */
  start(): Promise<void>;
  /** Graceful stop: finish in-flight work within the timeout, then close every connection. Idempotent. */
  stop(options?: { force?: boolean }): Promise<void>;
}

/** The composition root: the only place concrete dependencies are created and wired together. */
export function createDaemon(options: DaemonOptions): Daemon {
  const { config, logger } = options;
  const releases = createReleaseStack(logger);
  let stopping: Promise<void> | undefined;

  return {
    async start() {
      try {
        const db = createDb(config.databaseUrl, { applicationName: 'viewkeeper-daemon' });
        releases.push('postgres pool', () => db.close());
        await db.ping();

        const views = createRedis(config.redisUrl, { role: 'views', name: `${config.prefix}:views` });
        releases.push('views redis', () => closeRedis(views));
        await connectRedis(views, config.redisUrl, 'REDIS_URL');

        const queue = createRedis(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:queue` });
        releases.push('queue redis', () => closeRedis(queue));
        await connectRedis(queue, config.queueRedisUrl, 'QUEUE_REDIS_URL');
        await warnOnEvictionPolicy(queue, logger);

        logger.info({ prefix: config.prefix, jobsDir: config.jobsDir }, 'daemon started');
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
