import { ViewkeeperError } from '../errors.ts';
import { hasHashTag } from '../redis/slot.ts';
import { isClusterUrl, parseRedisTarget } from '../redis/target.ts';
import type { SinkDefinition } from '../sinks/define-sink.ts';
import type { NamedViewDescriptor, ViewMap } from './view-descriptors.ts';
import type { WriterOptions } from './write.ts';

/** What to do when a view key is missing: ask the daemon and wait for it, or answer `null`. */
export type OnMiss = 'refresh' | 'null';

/** Any pino-compatible logger; the client is silent without one. */
export interface ClientLogger {
  debug(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

export interface L1Options {
  /** @defaultValue 10000 */
  maxEntries?: number;
  /** Estimated bytes (JSON size of values). @defaultValue 67108864 (64 MiB) */
  maxBytes?: number;
  /**
   * How long an L1 copy is served without asking Redis, at most. Events drop copies as soon as the
   * data changes; this bounds the damage of an event that never arrives. @defaultValue 60000
   */
  ttlMs?: number;
}

/** Defaults of every `cached()` call; each can be overridden per call. */
export interface CacheDefaults {
  /** How long a value is fresh (ms). @defaultValue 60000 */
  ttl?: number;
  /** After `ttl`, how long a stale value may still be served while one process reloads it (ms). @defaultValue 0 */
  staleWhileRevalidate?: number;
  /**
   * XFetch probabilistic early refresh: `β` (higher = earlier), `true` = 1, `false`/0 = off. A read
   * at `now` reloads in the background when `now − δ·β·ln(rand()) ≥ expiry`, δ = the loader's
   * last duration. @defaultValue 1
   */
  earlyRefresh?: boolean | number;
  /** Each write shortens `ttl` by a random fraction up to this, so keys written together expire apart. @defaultValue 0.1 */
  jitter?: number;
  /** Lifetime of the single-flight lock; renewed while the loader runs, so it only matters after a crash (ms). @defaultValue 5000 */
  lockTtlMs?: number;
  /** How long a caller waits for another process's load before loading itself (ms). @defaultValue 10000 */
  lockWaitMs?: number;
  /** Entries larger than this (bytes of JSON) are deflated. @defaultValue 1024 */
  compressAbove?: number;
}

export interface ClientOptions<V extends ViewMap = ViewMap> {
  /**
   * Redis holding views, events and `cached()` entries (may carry a db number and credentials), or a
   * Redis Cluster: `redis+cluster://[user:password@]host:port[,host:port…]` (`rediss+cluster://` for
   * TLS). @defaultValue `redis://127.0.0.1:6379`
   */
  redisUrl?: string;
  /** Redis of the BullMQ queues (refresh, write-behind). @defaultValue `redisUrl` */
  queueRedisUrl?: string;
  /** The daemon's `VK_PREFIX`. @defaultValue `vk` */
  prefix?: string;
  /**
   * Views this client reads: `{ user_stats: { shape: 'hash', key: 'user_stats:{user_id}' } }`, or the
   * definitions from `jobs/` (a map or a list of `defineView` results).
   */
  views?: V | readonly NamedViewDescriptor[];
  /**
   * Sink definitions (from `jobs/`): `write()` validates ops against them and applies their cache
   * effects. Without them only the op envelope is checked and the daemon validates fields.
   */
  sinks?: readonly SinkDefinition[];
  /** Group commit of `write()`: window, ops and bytes per job (see src/client/write.ts). */
  write?: Pick<WriterOptions, 'windowMs' | 'maxOps' | 'maxBytes'>;
  /** What a view read does when the key is missing. @defaultValue `refresh` */
  onMiss?: OnMiss;
  /** How long a view read waits for the daemon after enqueueing a refresh on a miss (ms). @defaultValue 5000 */
  missTimeoutMs?: number;
  /** Every Redis command answers or fails within this (ms). @defaultValue 1000 */
  commandTimeoutMs?: number;
  /** TCP connect timeout (ms). @defaultValue 1000 */
  connectTimeoutMs?: number;
  breaker?: {
    /** Consecutive Redis failures that open the circuit breaker. @defaultValue 5 */
    failureThreshold?: number;
    /** How long it stays open before one probe goes through (ms). @defaultValue 2000 */
    cooldownMs?: number;
  };
  /** In-process L1 (`true` = defaults). @defaultValue false */
  l1?: boolean | L1Options;
  cache?: CacheDefaults;
  /** How often counters are added to `{prefix}:client:stats` (ms); 0 = only on close. @defaultValue 5000 */
  statsFlushMs?: number;
  /**
   * Fraction of reads (views and `cached()`) whose key is counted for the daemon's hot-key list,
   * added to `{prefix}:client:hot-keys` with the counters; 0 = off. @defaultValue 0.01
   */
  hotKeySampleRate?: number;
  /** Suffix of the connection names shown in `CLIENT LIST`. @defaultValue `process.pid` */
  name?: string;
  logger?: ClientLogger;
}

export interface ResolvedCacheDefaults {
  ttl: number;
  staleWhileRevalidate: number;
  beta: number;
  jitter: number;
  lockTtlMs: number;
  lockWaitMs: number;
  compressAbove: number;
}

export interface ResolvedClientOptions {
  redisUrl: string;
  queueRedisUrl: string;
  prefix: string;
  onMiss: OnMiss;
  missTimeoutMs: number;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  failureThreshold: number;
  cooldownMs: number;
  l1: Required<L1Options> | undefined;
  cache: ResolvedCacheDefaults;
  statsFlushMs: number;
  hotKeySampleRate: number;
  name: string;
  logger: ClientLogger;
}

/** Every default in one place. */
export const CLIENT_DEFAULTS = {
  redisUrl: 'redis://127.0.0.1:6379',
  prefix: 'vk',
  onMiss: 'refresh',
  missTimeoutMs: 5000,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 1000,
  failureThreshold: 5,
  cooldownMs: 2000,
  l1: { maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, ttlMs: 60_000 },
  cache: {
    ttl: 60_000,
    staleWhileRevalidate: 0,
    beta: 1,
    jitter: 0.1,
    lockTtlMs: 5000,
    lockWaitMs: 10_000,
    compressAbove: 1024,
  },
  statsFlushMs: 5000,
  hotKeySampleRate: 0.01,
} as const;

const SILENT: ClientLogger = { debug() {}, warn() {} };

function fail(option: string, value: unknown, expected: string): never {
  throw new ViewkeeperError(
    'E_CONFIG',
    `client option ${option}=${JSON.stringify(value)} is invalid: expected ${expected}`,
  );
}

/** `value` if it is a number in [min, max], the default if undefined; throws E_CONFIG otherwise. */
export function numberOption(
  option: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Infinity,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(option, value, `a number from ${min}${max === Infinity ? '' : ` to ${max}`}`);
  }
  return value;
}

/** `earlyRefresh` → β (0 = off). */
export function betaOf(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === true) return 1;
  if (value === false) return 0;
  return numberOption(option, value, fallback, 0, 100);
}

export function resolveCacheOptions(
  raw: CacheDefaults | undefined,
  base: ResolvedCacheDefaults,
  where: string,
): ResolvedCacheDefaults {
  const options = raw ?? {};
  return {
    ttl: numberOption(`${where}ttl`, options.ttl, base.ttl, 1),
    staleWhileRevalidate: numberOption(
      `${where}staleWhileRevalidate`,
      options.staleWhileRevalidate,
      base.staleWhileRevalidate,
      0,
    ),
    beta: betaOf(`${where}earlyRefresh`, options.earlyRefresh, base.beta),
    jitter: numberOption(`${where}jitter`, options.jitter, base.jitter, 0, 0.9),
    lockTtlMs: numberOption(`${where}lockTtlMs`, options.lockTtlMs, base.lockTtlMs, 100),
    lockWaitMs: numberOption(`${where}lockWaitMs`, options.lockWaitMs, base.lockWaitMs, 0),
    compressAbove: numberOption(`${where}compressAbove`, options.compressAbove, base.compressAbove, 0),
  };
}

const URL_KINDS = 'a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL';

function urlOption(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^rediss?(\+cluster)?:\/\//i.test(value.trim()))
    fail(option, '***', URL_KINDS);
  if (isClusterUrl(value)) {
    try {
      parseRedisTarget(value);
    } catch (error) {
      // The parser's reason never contains the password.
      throw new ViewkeeperError(
        'E_CONFIG',
        `client option ${option} is invalid: ${(error as Error).message}`,
      );
    }
    return value;
  }
  try {
    new URL(value);
  } catch {
    fail(option, '***', URL_KINDS);
  }
  return value;
}

/** Applies defaults and validates everything at construction, not at first use. */
export function resolveClientOptions(options: ClientOptions<ViewMap>): ResolvedClientOptions {
  const redisUrl = urlOption('redisUrl', options.redisUrl, CLIENT_DEFAULTS.redisUrl);
  const prefix = options.prefix ?? CLIENT_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.{}-]{1,64}$/.test(prefix)) {
    fail('prefix', prefix, '1–64 of A-Z a-z 0-9 _ . - { }');
  }
  const onMiss = options.onMiss ?? CLIENT_DEFAULTS.onMiss;
  if (onMiss !== 'refresh' && onMiss !== 'null') fail('onMiss', onMiss, "'refresh' or 'null'");
  let l1: Required<L1Options> | undefined;
  if (options.l1) {
    const raw = options.l1 === true ? {} : options.l1;
    const d = CLIENT_DEFAULTS.l1;
    l1 = {
      maxEntries: numberOption('l1.maxEntries', raw.maxEntries, d.maxEntries, 1),
      maxBytes: numberOption('l1.maxBytes', raw.maxBytes, d.maxBytes, 1),
      ttlMs: numberOption('l1.ttlMs', raw.ttlMs, d.ttlMs, 1),
    };
  }
  const queueRedisUrl = urlOption('queueRedisUrl', options.queueRedisUrl, redisUrl);
  if (isClusterUrl(queueRedisUrl) && !hasHashTag(prefix)) {
    // BullMQ's scripts touch several keys of a queue at once: on a cluster they must share a slot.
    throw new ViewkeeperError(
      'E_CONFIG',
      `client option prefix=${JSON.stringify(prefix)} needs a hash tag such as "{${prefix}}" when the queues are on a Redis Cluster (queueRedisUrl, or redisUrl when it is not set, is a cluster URL); use the daemon's VK_PREFIX, which needs the same`,
    );
  }
  return {
    redisUrl,
    queueRedisUrl,
    prefix,
    onMiss,
    missTimeoutMs: numberOption('missTimeoutMs', options.missTimeoutMs, CLIENT_DEFAULTS.missTimeoutMs, 1),
    commandTimeoutMs: numberOption(
      'commandTimeoutMs',
      options.commandTimeoutMs,
      CLIENT_DEFAULTS.commandTimeoutMs,
      1,
    ),
    connectTimeoutMs: numberOption(
      'connectTimeoutMs',
      options.connectTimeoutMs,
      CLIENT_DEFAULTS.connectTimeoutMs,
      1,
    ),
    failureThreshold: numberOption(
      'breaker.failureThreshold',
      options.breaker?.failureThreshold,
      CLIENT_DEFAULTS.failureThreshold,
      1,
    ),
    cooldownMs: numberOption(
      'breaker.cooldownMs',
      options.breaker?.cooldownMs,
      CLIENT_DEFAULTS.cooldownMs,
      0,
    ),
    l1,
    cache: resolveCacheOptions(options.cache, CLIENT_DEFAULTS.cache, 'cache.'),
    statsFlushMs: numberOption('statsFlushMs', options.statsFlushMs, CLIENT_DEFAULTS.statsFlushMs, 0),
    hotKeySampleRate: numberOption(
      'hotKeySampleRate',
      options.hotKeySampleRate,
      CLIENT_DEFAULTS.hotKeySampleRate,
      0,
      1,
    ),
    name: options.name ?? String(process.pid),
    logger: options.logger ?? SILENT,
  };
}
