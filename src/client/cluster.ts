import { Cluster, type ClusterOptions } from 'ioredis';
import { parseRedisTarget, type RedisTarget } from '../redis/target.ts';

// The client's connections to a Redis Cluster (`redis+cluster://…` URLs, see redis/target.ts).

type ClusterTarget = Extract<RedisTarget, { kind: 'cluster' }>;

export interface ClusterConnectionOptions {
  /** Shown in `CLIENT LIST` on every node. */
  name: string;
  connectTimeoutMs: number;
  /** Commands fail after this (ms); omit for BullMQ, whose blocking reads wait for ever. */
  commandTimeoutMs?: number;
}

/** Parses a cluster URL; throws for a standalone one (a caller bug, not bad input). */
export function clusterTarget(url: string): ClusterTarget {
  const target = parseRedisTarget(url);
  if (target.kind !== 'cluster') throw new Error('not a redis+cluster:// URL');
  return target;
}

/** `host:port,host:port` of a cluster URL's seed nodes, for messages that must name nothing secret. */
export function clusterEndpoints(url: string): string {
  try {
    return clusterTarget(url)
      .nodes.map((node) => `${node.host.includes(':') ? `[${node.host}]` : node.host}:${node.port}`)
      .join(',');
  } catch {
    return 'the configured cluster';
  }
}

/** Credentials, TLS and RESP2 for every node connection (commands, and the events subscriber). */
export function nodeOptions(target: ClusterTarget) {
  return {
    username: target.username,
    password: target.password,
    tls: target.tls ? {} : undefined,
    // RESP2: the reply shapes the scripts and BullMQ expect.
    protocol: 2 as const,
  };
}

/** Reconnect quickly at first, then once a second, for ever (the same pace as one server). */
function clusterRetryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1000);
}

/**
 * A fail-fast Cluster, like createFailFastRedis for one server: no offline queue (a command sent
 * while the cluster is not ready fails at once), a command timeout on every node, reconnection in
 * the background for ever. Reads go to masters (`scaleReads: 'master'`): a replica lags, and a read
 * there could miss a tag bump or a view write whose event has already dropped the L1 copy. A command
 * for a slot whose master just died is retried by ioredis while the cluster fails over (every 100 ms,
 * following MOVED replies); the guard bounds the whole call by the command timeout. Not yet connected.
 */
export function createFailFastCluster(url: string, options: ClusterConnectionOptions): Cluster {
  const target = clusterTarget(url);
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    scaleReads: 'master',
    clusterRetryStrategy,
    slotsRefreshTimeout: options.connectTimeoutMs,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    redisOptions: {
      ...nodeOptions(target),
      connectionName: options.name,
      connectTimeout: options.connectTimeoutMs,
      commandTimeout: options.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    },
  };
  const cluster = new Cluster(target.nodes, clusterOptions);
  // Errors surface through commands; an 'error' with no listener would crash the process.
  cluster.on('error', () => {});
  return cluster;
}

/**
 * The Cluster for BullMQ (refresh and write-behind queues): it wants `maxRetriesPerRequest: null`
 * and an offline queue, as on one server (the client bounds each queue call with its own timeout).
 */
export function createQueueCluster(url: string, options: ClusterConnectionOptions): Cluster {
  const target = clusterTarget(url);
  const cluster = new Cluster(target.nodes, {
    lazyConnect: true,
    clusterRetryStrategy,
    slotsRefreshTimeout: options.connectTimeoutMs,
    redisOptions: {
      ...nodeOptions(target),
      connectionName: options.name,
      connectTimeout: options.connectTimeoutMs,
      maxRetriesPerRequest: null,
    },
  });
  cluster.on('error', () => {});
  return cluster;
}
