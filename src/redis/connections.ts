import { Redis, type RedisOptions } from 'ioredis';
import { connectFailure, databaseNumber, failureKind } from '../connect-failure.ts';
import type { Logger } from '../logging/create-logger.ts';

/**
 * What a connection is for decides how it behaves when Redis goes away:
 * - `views`: reads and writes of view keys; commands fail after a few retries instead of piling up.
 * - `queue`: BullMQ workers and queues; BullMQ requires `maxRetriesPerRequest: null` (wait forever).
 * - `subscriber`: pub/sub; reconnects forever and resubscribes.
 */
export type ConnectionRole = 'views' | 'queue' | 'subscriber';

export interface RedisConnectionOptions {
  role: ConnectionRole;
  /** Shown in `CLIENT LIST`. */
  name: string;
  /** @defaultValue 5000 */
  connectTimeoutMs?: number;
}

const ROLE_OPTIONS: Record<ConnectionRole, RedisOptions> = {
  views: { maxRetriesPerRequest: 3 },
  queue: { maxRetriesPerRequest: null },
  subscriber: { maxRetriesPerRequest: null },
};

/** A new ioredis connection for `url` (which may carry a db number and credentials). Not yet connected. */
export function createRedis(url: string, options: RedisConnectionOptions): Redis {
  const redis = new Redis(url, {
    ...ROLE_OPTIONS[options.role],
    connectionName: options.name,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    lazyConnect: true,
    // RESP2 reply shapes everywhere: BullMQ and our Lua scripts expect them.
    protocol: 2,
  });
  // Errors surface through commands and `ready`; an 'error' with no listener would crash the process.
  redis.on('error', () => {});
  return redis;
}

/**
 * Connects `redis` or fails within `timeoutMs` with one line naming what failed, the variable and the
 * host, never the password (see connect-failure.ts): `E_CONNECT` for an unreachable server or refused
 * authentication (at once, not after the timeout), `E_CONFIG` for a database number the server does
 * not have. ioredis only emits an error when its SELECT fails and carries on in database 0, so the
 * number is checked here with a SELECT of our own: viewkeeper never writes into another database.
 * On failure the connection is disconnected (no background reconnect loop is left behind).
 */
export async function connectRedis(
  redis: Redis,
  url: string,
  variable: string,
  timeoutMs = 5000,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  // connect() rejects with a generic "Connection is closed"; the 'error' event has the real reason.
  let lastError: unknown;
  let refuse: ((error: unknown) => void) | undefined;
  const refused = new Promise<never>((_, reject) => {
    refuse = reject;
  });
  refused.catch(() => {}); // may be refused after the race is over
  const onError = (error: unknown) => {
    lastError = error;
    // Retrying cannot fix a refused password or a missing database: fail now, not at the timeout.
    if (failureKind(error) !== 'unreachable') refuse?.(error);
  };
  redis.on('error', onError);
  try {
    await Promise.race([
      (async () => {
        if (redis.status !== 'ready') await (redis.status === 'wait' ? redis.connect() : waitReady(redis));
        const db = databaseNumber(url);
        if (db !== 0) await redis.select(db);
      })(),
      refused,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    redis.disconnect();
    const cause = failureKind(error) !== 'unreachable' ? error : (lastError ?? error);
    throw connectFailure('Redis', url, variable, cause);
  } finally {
    clearTimeout(timer);
    redis.off('error', onError);
  }
}

function waitReady(redis: Redis): Promise<void> {
  return new Promise((resolve, reject) => {
    redis.once('ready', () => resolve());
    redis.once('end', () => reject(new Error('connection closed')));
  });
}

/** Quits politely, or drops the socket when Redis is gone. Safe to call more than once. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  await redis.quit().catch(() => redis.disconnect());
}

/**
 * Logs one warning line when a Redis's eviction policy can lose what viewkeeper keeps there:
 * - `queue`: BullMQ keeps jobs and locks in keys with TTLs; any policy but `noeviction` can silently
 *   drop jobs.
 * - `views`: an `allkeys-*` policy can evict viewkeeper's own bookkeeping, which has no TTL: a view's
 *   metadata (version, last run; its sequence is recovered from the indexes) and its key index,
 *   without which a full rebuild cannot find the keys of vanished rows, so they stay. `volatile-*`
 *   policies evict only keys with a TTL (views with `ttl`, `cached()` entries) and are safe.
 * Managed Redis services that hide `INFO` are skipped with a debug line. Returns the policy.
 */
export async function warnOnEvictionPolicy(
  redis: Redis,
  logger: Logger,
  role: 'queue' | 'views' = 'queue',
): Promise<string | undefined> {
  try {
    const info = await redis.info('memory');
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    if (role === 'queue' && policy && policy !== 'noeviction') {
      logger.warn(
        { policy },
        `queue redis maxmemory-policy is ${policy}, not noeviction: queued jobs can be evicted and lost; set maxmemory-policy noeviction on QUEUE_REDIS_URL`,
      );
    }
    if (role === 'views' && policy?.startsWith('allkeys-')) {
      logger.warn(
        { policy },
        `views redis maxmemory-policy is ${policy}: it can evict viewkeeper's view metadata and key indexes (no TTL), after which keys of deleted rows are never removed; set maxmemory-policy volatile-lru (evicts keys with a TTL: give views a ttl) or noeviction on REDIS_URL`,
      );
    }
    return policy;
  } catch (error) {
    logger.debug({ err: error }, 'could not read maxmemory-policy');
    return undefined;
  }
}
