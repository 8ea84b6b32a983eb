import { Cluster, Redis } from 'ioredis';
import { endpointOf } from '../config/redact.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import { within } from '../lib/within.ts';
import { isClusterUrl } from '../redis/target.ts';
import { type Breaker, type BreakerState, createBreaker } from './breaker.ts';
import { clusterEndpoints, createFailFastCluster } from './cluster.ts';
import { createClusterSubscriber } from './cluster-subscriber.ts';
import type { SubscriberConnection } from './events.ts';

/** The client's command connection: one server, or a Redis Cluster (`redis+cluster://` URLs). */
export type ClientRedis = Redis | Cluster;

export interface FailFastOptions {
  /** Shown in `CLIENT LIST`. */
  name: string;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  /** Subscriber connections keep their offline queue (SUBSCRIBE is sent on every `ready`). */
  subscriber?: boolean;
}

/** Reconnect quickly at first, then once a second: a restarted Redis is found within ~1 s. */
function retryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1000);
}

/**
 * A connection that never makes a caller wait for a Redis that is gone: no offline queue (a command
 * sent while disconnected fails at once), no per-request retries, and a `commandTimeout` for a Redis
 * that is connected but does not answer. It reconnects in the background forever, so the breaker's
 * probe finds it ready once Redis is back. Not yet connected (lazy).
 */
export function createFailFastRedis(url: string, options: FailFastOptions): ClientRedis {
  if (isClusterUrl(url)) {
    if (options.subscriber) throw new Error('a cluster subscriber is made by createEventsSubscriber');
    return createFailFastCluster(url, options);
  }
  const redis = new Redis(url, {
    connectionName: options.name,
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs,
    retryStrategy,
    // RESP2: the reply shapes the scripts expect.
    protocol: 2,
    ...(options.subscriber
      ? { maxRetriesPerRequest: null, autoResubscribe: false }
      : {
          commandTimeout: options.commandTimeoutMs,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
        }),
  });
  // Errors surface through commands; an 'error' with no listener would crash the process.
  redis.on('error', () => {});
  return redis;
}

/**
 * The events subscriber: a connection of its own to the same server, or on a cluster one that moves
 * between nodes and reports each move (cluster-subscriber.ts). Not yet connected.
 */
export function createEventsSubscriber(
  url: string,
  redis: ClientRedis,
  options: Omit<FailFastOptions, 'subscriber'>,
): SubscriberConnection {
  if (redis instanceof Cluster) return createClusterSubscriber(redis, url, options);
  return createFailFastRedis(url, { ...options, subscriber: true }) as Redis;
}

/** "Redis at host:port" or "Redis Cluster at host:port,host:port": never a credential. */
export function describeRedis(url: string): string {
  return isClusterUrl(url)
    ? `Redis Cluster at ${clusterEndpoints(url)}`
    : `Redis at ${endpointOf(url, 6379)}`;
}

/** One pending "next ready" per connection, shared by every caller waiting on it (no listener pile-up). */
const nextReady = new WeakMap<ClientRedis, Promise<void>>();

function readyPromise(redis: ClientRedis): Promise<void> {
  let pending = nextReady.get(redis);
  if (!pending) {
    pending = new Promise<void>((resolve, reject) => {
      const onReady = () => settle();
      const onEnd = () => settle(new Error('connection is closed'));
      const settle = (error?: Error) => {
        redis.off('ready', onReady);
        redis.off('end', onEnd);
        nextReady.delete(redis);
        if (error) reject(error);
        else resolve();
      };
      redis.once('ready', onReady);
      redis.once('end', onEnd);
    });
    pending.catch(() => {});
    nextReady.set(redis, pending);
  }
  return pending;
}

/** Waits for `redis` to be ready, at most `timeoutMs`; starts connecting a lazy connection. */
export async function waitReady(redis: ClientRedis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  if (redis.status === 'end') throw new Error('connection is closed');
  const ready = readyPromise(redis);
  if (redis.status === 'wait') redis.connect().catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not connected within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Error replies that say the server cannot serve the key now rather than that the command was wrong:
 * a cluster without a master for the slot, mid-failover or mid-migration, or a server still loading.
 */
const UNAVAILABLE_REPLY = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK|MASTERDOWN|LOADING)\b/;

/** A Redis error reply (WRONGTYPE, NOSCRIPT, …): Redis is up, the command was wrong. */
export function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(error.message);
}

export interface GuardOptions {
  url: string;
  commandTimeoutMs: number;
  failureThreshold: number;
  cooldownMs: number;
  /** Called for every failure that counts against Redis availability. */
  onFailure?: (error: unknown) => void;
}

export interface Guard {
  /**
   * Runs `fn` against Redis within the command timeout, or throws `E_UNAVAILABLE` — at once while the
   * breaker is open. Error replies from Redis are rethrown as they are and do not trip the breaker.
   */
  run<T>(fn: (redis: ClientRedis) => Promise<T>): Promise<T>;
  breaker(): BreakerState;
  /** Makes every later call throw `E_UNAVAILABLE` ("client is closed"). */
  close(): void;
}

export function createGuard(redis: ClientRedis, options: GuardOptions): Guard {
  const breaker: Breaker = createBreaker(options);
  const endpoint = describeRedis(options.url);
  // On one server each command times out by itself. A Cluster retries a command while a slot fails
  // over (each try with its own timeout), so there the whole call is bounded instead.
  const bounded = redis instanceof Cluster;
  const call = <T>(fn: (redis: ClientRedis) => Promise<T>): Promise<T> =>
    bounded
      ? within(
          fn(redis),
          options.commandTimeoutMs,
          () => new Error(`no answer within ${options.commandTimeoutMs} ms`),
        )
      : fn(redis);
  let closed = false;
  // Until the first connection attempt has come to something, a call waits for it (bounded by the
  // command timeout): a client used right after createClient() is not "down". From then on a
  // connection that is not ready fails every call at once; ioredis reconnects in the background.
  let firstAttempt = true;
  const attempted = () => {
    firstAttempt = false;
  };
  for (const event of ['ready', 'error', 'close', 'end']) redis.once(event, attempted);

  function unavailable(reason: string, cause?: unknown): ViewkeeperError {
    return new ViewkeeperError('E_UNAVAILABLE', `${endpoint} is unavailable: ${reason}`, { cause });
  }

  function failed(error: unknown): ViewkeeperError {
    options.onFailure?.(error);
    return unavailable(describeError(error), error);
  }

  return {
    async run(fn) {
      if (closed) throw new ViewkeeperError('E_UNAVAILABLE', 'the viewkeeper client is closed');
      if (redis.status !== 'ready') {
        if (!firstAttempt || redis.status === 'end') {
          // Counts towards opening the breaker, but never re-opens one waiting for its probe: the
          // probe goes out as soon as the connection is back (and the cool-down is over).
          if (breaker.state() === 'closed') breaker.failure();
          throw failed(new Error(`not connected (${redis.status}); reconnecting in the background`));
        }
        try {
          await waitReady(redis, options.commandTimeoutMs);
        } catch (error) {
          breaker.failure();
          throw failed(error);
        }
      }
      // Ready: one real command with the normal timeout, whether the breaker is closed or this is
      // its half-open probe.
      if (!breaker.allow()) {
        throw unavailable(`circuit breaker open after ${options.failureThreshold} failures in a row`);
      }
      try {
        const result = await call(fn);
        breaker.success();
        return result;
      } catch (error) {
        if (isReplyError(error)) {
          breaker.success();
          throw error;
        }
        breaker.failure();
        throw failed(error);
      }
    },
    breaker: () => breaker.state(),
    close() {
      closed = true;
    },
  };
}
