import { EventEmitter } from 'node:events';
import { type Cluster, Redis } from 'ioredis';
import type { RedisNode } from '../redis/target.ts';
import { clusterTarget, nodeOptions } from './cluster.ts';
import type { SubscriberConnection } from './events.ts';

// The events subscriber on a Redis Cluster. A cluster delivers a plain PUBLISH to every node, master
// or replica, so one subscription on any live node hears every event. ioredis' Cluster has such a
// subscriber, but when its node goes it re-subscribes on another one without telling anyone
// (ioredis 6, cluster/ClusterSubscriber.js): the client could not know it missed events, and its L1
// would go on serving what they invalidated. This one is a plain connection to one node at a time;
// when it drops it moves to the next node and says so ('close', then 'ready' on the new node), which
// the event bus treats like a reconnect on one server: it subscribes again and clears the L1.
//
// A node that hangs keeps its socket open: a PING every `heartbeatMs` that gets no answer within the
// command timeout drops the connection, so a hung node cannot keep the L1 trusted either.

export interface ClusterSubscriberOptions {
  name: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** @defaultValue max(1000, commandTimeoutMs) */
  heartbeatMs?: number;
}

const retryDelay = (times: number) => Math.min(25 * 2 ** Math.min(times, 5), 1000);

/** A subscriber for `url` (a cluster URL) that moves between the nodes `cluster` knows of. */
export function createClusterSubscriber(
  cluster: Cluster,
  url: string,
  options: ClusterSubscriberOptions,
): SubscriberConnection {
  const target = clusterTarget(url);
  const emitter = new EventEmitter();
  let status = 'wait';
  let current: Redis | undefined;
  let attempts = 0;
  let turn = 0;
  let retry: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  /** The nodes the command connection currently knows (masters and replicas), then the seeds. */
  function candidates(): RedisNode[] {
    const seen = new Set<string>();
    const nodes: RedisNode[] = [];
    const known = cluster.status === 'ready' ? cluster.nodes('all') : [];
    for (const node of [...known.map((redis) => redis.options as RedisNode), ...target.nodes]) {
      const id = `${node.host}:${node.port}`;
      if (!seen.has(id)) {
        seen.add(id);
        nodes.push({ host: node.host, port: node.port });
      }
    }
    return nodes;
  }

  function open(): void {
    if (status === 'end') return;
    const nodes = candidates();
    const node = nodes[turn++ % nodes.length]!;
    status = 'connecting';
    const redis = new Redis({
      ...nodeOptions(target),
      host: node.host,
      port: node.port,
      connectionName: options.name,
      connectTimeout: options.connectTimeoutMs,
      lazyConnect: true,
      // One node per connection: when it goes, the next node is tried (below), not this one again.
      retryStrategy: () => null,
      maxRetriesPerRequest: null,
      autoResubscribe: false,
    });
    current = redis;
    redis.on('error', () => {});
    redis.on('ready', () => {
      if (current !== redis) return;
      attempts = 0;
      status = 'ready';
      beat(redis);
      emitter.emit('ready');
    });
    redis.on('message', (channel: string, message: string) => {
      if (current === redis) emitter.emit('message', channel, message);
    });
    redis.once('end', () => {
      if (current !== redis) return;
      const wasReady = status === 'ready';
      clearTimeout(heartbeat);
      current = undefined;
      if (status === 'end') return;
      status = 'reconnecting';
      if (wasReady) emitter.emit('close');
      retry = setTimeout(open, retryDelay(attempts++));
      retry.unref();
    });
    redis.connect().catch(() => {});
  }

  function beat(redis: Redis): void {
    const every = options.heartbeatMs ?? Math.max(1000, options.commandTimeoutMs);
    heartbeat = setTimeout(() => {
      const timer = setTimeout(() => redis.disconnect(), options.commandTimeoutMs);
      redis.ping().then(
        () => {
          clearTimeout(timer);
          if (current === redis && status === 'ready') beat(redis);
        },
        () => {
          clearTimeout(timer);
          redis.disconnect();
        },
      );
    }, every);
    heartbeat.unref();
  }

  function stop(): void {
    status = 'end';
    clearTimeout(retry);
    clearTimeout(heartbeat);
  }

  return {
    get status() {
      return status;
    },
    on(event: string, listener: (...args: string[]) => void) {
      emitter.on(event, listener);
      return this;
    },
    subscribe(channel) {
      return current ? current.subscribe(channel) : Promise.reject(new Error('not connected'));
    },
    async connect() {
      if (status === 'wait') open();
    },
    disconnect() {
      const redis = current;
      stop();
      redis?.disconnect();
    },
    async quit() {
      const redis = current;
      stop();
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}
