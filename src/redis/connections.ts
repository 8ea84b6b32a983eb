import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { connectFailure, databaseNumber, failureKind } from '../connect-failure.ts';
import type { Logger } from '../logging/create-logger.ts';
import { isClusterUrl, parseRedisTarget } from './target.ts';

/**
 * A connection to a views or queue Redis: one server or a Redis Cluster (`redis+cluster://`, see
 * target.ts). Both classes share ioredis' command interface, so code that sends commands takes this
 * type; what differs (scans, slots) goes through redis/placement.ts and redis/scan.ts.
 */
export type RedisConnection = Redis | Cluster;

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

/** A new connection to the single server `url` names (with its db number and credentials). Not yet connected. */
export function createRedis(url: string, options: RedisConnectionOptions): Redis {
  if (isClusterUrl(url)) {
    throw new Error('a redis+cluster:// URL needs createRedisConnection(), which returns a Cluster');
  }
  const redis = new Redis(url, { ...nodeOptions(options), lazyConnect: true });
  // Errors surface through commands and `ready`; an 'error' with no listener would crash the process.
  redis.on('error', () => {});
  return redis;
}

/**
 * A new connection for `url`: a single server, or an ioredis `Cluster` for a `redis+cluster://` URL
 * (target.ts), with the role's options on every node. Not yet connected.
 */
export function createRedisConnection(url: string, options: RedisConnectionOptions): RedisConnection {
  const target = parseRedisTarget(url);
  if (target.kind === 'standalone') return createRedis(target.url, options);
  const cluster = new Cluster(target.nodes, {
    lazyConnect: true,
    // No auto-pipelining: ioredis routes an auto-pipelined EVALSHA by its first argument (the SHA),
    // not its first key (redis/ioredis#2109), and every write here is a script. Per-slot calls are
    // still issued together, so their round trips overlap.
    enableAutoPipelining: false,
    // A failover takes a few seconds (the replica waits out cluster-node-timeout, then is elected):
    // queue and subscriber commands wait for the new topology, up to about 15 s, as a standalone
    // queue connection waits for its server; a views command gives up after about 5 s, so the run
    // fails with one line and is retried (views commands fail after a few retries on one server too).
    retryDelayOnFailover: 300,
    retryDelayOnClusterDown: 300,
    maxRedirections: options.role === 'views' ? 16 : 50,
    redisOptions: {
      ...nodeOptions(options),
      username: target.username,
      password: target.password,
      ...(target.tls ? { tls: {} } : {}),
    },
  });
  cluster.on('error', () => {});
  return cluster;
}

function nodeOptions(options: RedisConnectionOptions): RedisOptions {
  return {
    ...ROLE_OPTIONS[options.role],
    connectionName: options.name,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    // RESP2 reply shapes everywhere: BullMQ and our Lua scripts expect them.
    protocol: 2,
  };
}

/** A new connection with the same target and options as `redis` (not yet connected, errors muted). */
export function duplicateConnection(redis: RedisConnection): RedisConnection {
  const copy = isCluster(redis) ? redis.duplicate() : redis.duplicate();
  copy.on('error', () => {});
  return copy;
}

/** True when `redis` is a Redis Cluster connection. */
export function isCluster(redis: RedisConnection): redis is Cluster {
  return redis instanceof Cluster;
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
  redis: RedisConnection,
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
        // A cluster has only database 0 (target.ts refuses a path): nothing to check.
        const db = isCluster(redis) ? 0 : databaseNumber(url);
        if (db !== 0) await (redis as Redis).select(db);
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

function waitReady(redis: RedisConnection): Promise<void> {
  return new Promise((resolve, reject) => {
    redis.once('ready', () => resolve());
    redis.once('end', () => reject(new Error('connection closed')));
  });
}

/** Quits politely, or drops the socket when Redis is gone. Safe to call more than once. */
export async function closeRedis(redis: RedisConnection): Promise<void> {
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
  redis: RedisConnection,
  logger: Logger,
  role: 'queue' | 'views' = 'queue',
): Promise<string | undefined> {
  try {
    // On a cluster every master has its own setting; the first one stands for all (they are
    // configured alike in practice, and one line per node would repeat the same advice).
    const node = isCluster(redis) ? redis.nodes('master')[0] : redis;
    const info = node ? await node.info('memory') : '';
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
