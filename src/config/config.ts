import path from 'node:path';
import { ViewkeeperError } from '../errors.ts';
import { isClusterUrl, parseRedisTarget } from '../lib/redis-target.ts';
import { redactSecrets, rememberSecret, rememberUrlSecrets } from './redact.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Configuration after defaults and validation. Built only by {@link resolveConfig}; everything else
 * receives it instead of reading the environment.
 */
export interface ResolvedConfig {
  /** Postgres connection URL. @defaultValue `postgres://postgres@127.0.0.1:5432/viewkeeper` */
  databaseUrl: string;
  /**
   * A streaming (physical) standby of `databaseUrl` that full rebuilds read instead of the primary
   * (views/read-route.ts has the rule); `undefined` = every view query reads the primary.
   * @defaultValue unset
   */
  databaseReadUrl: string | undefined;
  /**
   * Longest a full rebuild waits for the standby to replay up to the primary's WAL position at the
   * run's start before it reads the primary instead; 0 = read the standby only when it is already
   * there. @defaultValue 5000
   */
  replicaWaitMs: number;
  /** Redis for views and events. @defaultValue `redis://127.0.0.1:6379/0` */
  redisUrl: string;
  /** Redis for the BullMQ queues. @defaultValue the value of `redisUrl` */
  queueRedisUrl: string;
  /** The variable `queueRedisUrl` came from, for messages: `REDIS_URL` when QUEUE_REDIS_URL is unset. */
  queueRedisVariable: 'QUEUE_REDIS_URL' | 'REDIS_URL';
  /** Namespace of queues, events and metadata keys. @defaultValue `vk` */
  prefix: string;
  /** Folder of view and sink definitions, absolute. @defaultValue `./jobs` */
  jobsDir: string;
  /** Interface the HTTP surface binds to. @defaultValue `127.0.0.1` */
  httpHost: string;
  /** Port of the HTTP surface; `undefined` = no HTTP server. @defaultValue unset */
  httpPort: number | undefined;
  /**
   * Bearer token every HTTP route but `/livez` and `/readyz` requires; `undefined` = open (allowed
   * on a loopback `httpHost` only). @defaultValue unset
   */
  httpToken: string | undefined;
  /** pino level. @defaultValue `info` */
  logLevel: LogLevel;
  /** Refresh jobs one daemon runs at once. @defaultValue 4 */
  refreshConcurrency: number;
  /**
   * Lifetime of a job's lock between renewals: a job held by a daemon that died is retried by
   * another after about this long. @defaultValue 15000
   */
  jobLockMs: number;
  /**
   * How often the daemon audits every view against its query (see views/audit.ts); 0 = never.
   * @defaultValue 600000 (10 minutes)
   */
  auditIntervalMs: number;
  /** Keys (or zset members) of each view compared per audit; views without params are compared whole. @defaultValue 20 */
  auditSample: number;
  /**
   * Longest wait between two looks at the change-capture outbox when no notification arrives (a
   * missed one, or a LISTEN connection down). @defaultValue 2000
   */
  capturePollMs: number;
}

export const CONFIG_DEFAULTS = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/viewkeeper',
  redisUrl: 'redis://127.0.0.1:6379/0',
  prefix: 'vk',
  jobsDir: './jobs',
  httpHost: '127.0.0.1',
  logLevel: 'info',
  refreshConcurrency: 4,
  jobLockMs: 15_000,
  auditIntervalMs: 600_000,
  auditSample: 20,
  capturePollMs: 2000,
  replicaWaitMs: 5000,
} as const satisfies Partial<ResolvedConfig>;

type Env = Record<string, string | undefined>;

function invalid(variable: string, value: string, expected: string): ViewkeeperError {
  return new ViewkeeperError(
    'E_CONFIG',
    `${variable}=${JSON.stringify(redactSecrets(value))} is invalid: expected ${expected}`,
  );
}

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function connectionUrl(env: Env, name: string, protocols: string[], fallback: string): string {
  const value = read(env, name) ?? fallback;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw invalid(name, value, `a URL like ${protocols[0]}//host:port/…`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw invalid(name, value, `a ${protocols.map((p) => `${p}//`).join(' or ')} URL`);
  }
  if (!parsed.hostname) throw invalid(name, value, 'a URL with a host name');
  return value;
}

/** Like {@link connectionUrl}, for a connection that is off unless its variable is set. */
function optionalUrl(env: Env, name: string, protocols: string[]): string | undefined {
  return read(env, name) === undefined ? undefined : connectionUrl(env, name, protocols, '');
}

function redisUrl(env: Env, name: string, fallback: string): string {
  const raw = read(env, name) ?? fallback;
  if (isClusterUrl(raw)) {
    // redis+cluster://host:port,host:port — not one WHATWG URL (several hosts): target.ts parses it.
    try {
      parseRedisTarget(raw);
    } catch (error) {
      throw invalid(
        name,
        raw,
        `a cluster URL like redis+cluster://host:port,host:port (${(error as Error).message})`,
      );
    }
    return raw;
  }
  const value = connectionUrl(env, name, ['redis:', 'rediss:'], fallback);
  const db = new URL(value).pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) {
    throw invalid(name, value, 'a database number after the host, like redis://host:6379/0');
  }
  return value;
}

function integer(env: Env, name: string, min: number, max: number): number | undefined {
  const value = read(env, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw invalid(name, value, `a whole number from ${min} to ${max}`);
  }
  return Number(value);
}

/**
 * True when `key` has a Redis Cluster hash tag: a `{` followed later by a `}` with something between
 * (Redis then hashes only that part).
 */
export function hasHashTag(key: string): boolean {
  const open = key.indexOf('{');
  if (open === -1) return false;
  const close = key.indexOf('}', open + 1);
  return close > open + 1;
}

/** 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/**
 * Turns environment variables into a validated {@link ResolvedConfig}. Throws `E_CONFIG` with one line
 * naming the variable and its (password-masked) value.
 */
export function resolveConfig(env: Env, cwd: string = process.cwd()): ResolvedConfig {
  const redis = redisUrl(env, 'REDIS_URL', CONFIG_DEFAULTS.redisUrl);

  const prefix = read(env, 'VK_PREFIX') ?? CONFIG_DEFAULTS.prefix;
  if (!/^[A-Za-z0-9_.{}-]{1,64}$/.test(prefix)) {
    throw invalid('VK_PREFIX', prefix, '1–64 characters from A–Z a–z 0–9 _ . - { }');
  }

  const logLevel = (read(env, 'LOG_LEVEL') ?? CONFIG_DEFAULTS.logLevel).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw invalid('LOG_LEVEL', logLevel, `one of ${LOG_LEVELS.join(', ')}`);
  }

  const httpHost = read(env, 'VK_HTTP_HOST') ?? CONFIG_DEFAULTS.httpHost;
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(httpHost)) {
    throw invalid('VK_HTTP_HOST', httpHost, 'a host name or IP address');
  }

  const httpPort = integer(env, 'VK_HTTP_PORT', 1, 65535);
  const httpToken = read(env, 'VK_HTTP_TOKEN');
  // The token's value is never echoed, not even masked: a near-miss would give most of it away.
  if (httpToken !== undefined && !/^[\x21-\x7e]{16,512}$/.test(httpToken)) {
    throw new ViewkeeperError(
      'E_CONFIG',
      'VK_HTTP_TOKEN is invalid: expected 16 to 512 printable characters without spaces (value not shown)',
    );
  }
  if (httpPort !== undefined && httpToken === undefined && !isLoopback(httpHost)) {
    throw new ViewkeeperError(
      'E_CONFIG',
      `VK_HTTP_HOST=${JSON.stringify(httpHost)} is not a loopback address: set VK_HTTP_TOKEN to serve HTTP on it, or bind 127.0.0.1`,
    );
  }

  const queueRedis = redisUrl(env, 'QUEUE_REDIS_URL', redis);
  if (isClusterUrl(queueRedis) && !hasHashTag(prefix)) {
    // BullMQ's scripts touch several keys of one queue ({prefix}:{queue}:…) in one call, and so do
    // viewkeeper's own queue-side scripts: on a cluster they must all hash to one slot.
    const variable = read(env, 'QUEUE_REDIS_URL') === undefined ? 'REDIS_URL' : 'QUEUE_REDIS_URL';
    throw new ViewkeeperError(
      'E_CONFIG',
      `VK_PREFIX=${JSON.stringify(prefix)} has no hash tag, but ${variable} is a Redis Cluster, where every queue key must share one slot: set VK_PREFIX={${prefix.replace(/[{}]/g, '')}}, or point QUEUE_REDIS_URL at a standalone Redis`,
    );
  }

  return {
    databaseUrl: connectionUrl(
      env,
      'DATABASE_URL',
      ['postgres:', 'postgresql:'],
      CONFIG_DEFAULTS.databaseUrl,
    ),
    databaseReadUrl: optionalUrl(env, 'DATABASE_READ_URL', ['postgres:', 'postgresql:']),
    replicaWaitMs: integer(env, 'VK_REPLICA_WAIT_MS', 0, 600_000) ?? CONFIG_DEFAULTS.replicaWaitMs,
    redisUrl: redis,
    queueRedisUrl: queueRedis,
    queueRedisVariable: read(env, 'QUEUE_REDIS_URL') === undefined ? 'REDIS_URL' : 'QUEUE_REDIS_URL',
    prefix,
    jobsDir: path.resolve(cwd, read(env, 'VK_JOBS_DIR') ?? CONFIG_DEFAULTS.jobsDir),
    httpHost,
    httpPort,
    httpToken,
    logLevel: logLevel as LogLevel,
    refreshConcurrency: integer(env, 'VK_REFRESH_CONCURRENCY', 1, 256) ?? CONFIG_DEFAULTS.refreshConcurrency,
    jobLockMs: integer(env, 'VK_JOB_LOCK_MS', 1000, 600_000) ?? CONFIG_DEFAULTS.jobLockMs,
    auditIntervalMs:
      integer(env, 'VK_AUDIT_INTERVAL_MS', 0, 7 * 24 * 3600 * 1000) ?? CONFIG_DEFAULTS.auditIntervalMs,
    auditSample: integer(env, 'VK_AUDIT_SAMPLE', 1, 10_000) ?? CONFIG_DEFAULTS.auditSample,
    capturePollMs: integer(env, 'VK_CAPTURE_POLL_MS', 100, 600_000) ?? CONFIG_DEFAULTS.capturePollMs,
  };
}

/**
 * Remembers the credentials the environment carries (URL passwords, the HTTP token) so that no output
 * of this process shows them, whether or not the rest of the configuration is valid.
 */
export function rememberEnvSecrets(env: Env = process.env): void {
  rememberUrlSecrets([env.DATABASE_URL, env.DATABASE_READ_URL, env.REDIS_URL, env.QUEUE_REDIS_URL]);
  rememberSecret(env.VK_HTTP_TOKEN?.trim());
}

/** Reads `process.env` once. The only place in the code base that does. */
export function loadConfig(): ResolvedConfig {
  rememberEnvSecrets(process.env);
  return resolveConfig(process.env);
}
