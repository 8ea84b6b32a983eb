import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ClientOptions } from '../../src/client/options.ts';
import type { ViewMap } from '../../src/client/view-descriptors.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { testRedisUrl } from './env.ts';
import { startThrowawayCluster, type ThrowawayCluster } from './redis-cluster.ts';

// What the client's cluster tests share: a private password-protected 3-master cluster (one replica
// each), the client URL for it, an admin connection and ways to look at one node.

export interface ClientClusterContext {
  cluster: ThrowawayCluster;
  password: string;
  /** `redis+cluster://:<password>@127.0.0.1:<master>,…`: what the client is given. */
  url: string;
  /** Reads and writes keys wherever they live. */
  admin: Cluster;
  /** Another Cluster connection (e.g. for a BullMQ worker: `{ maxRetriesPerRequest: null }`); caller closes it. */
  connect(options?: RedisOptions): Cluster;
  /** Runs `work` on a connection to one node only (CLIENT LIST/KILL, PUBLISH on that node). */
  onNode<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T>;
  /** The port of the node holding the events subscription of the client named `name` under `prefix`. */
  subscriberPort(prefix: string, name: string): Promise<number>;
  /**
   * A client of the cluster with `onMiss: 'null'` unless told otherwise, and its queues on the suite's
   * standalone Redis (never used unless asked): a prefix without a hash tag spreads the client's keys.
   */
  client<const V extends ViewMap>(options: ClientOptions<V>): ViewkeeperClient<V>;
  /** Disconnects admin and stops the cluster. */
  stop(): Promise<void>;
}

const PASSWORD = 'cluster-secret-8d1f';

export async function startClientCluster(): Promise<ClientClusterContext> {
  const cluster = await startThrowawayCluster(3, ['--requirepass', PASSWORD]);
  const seeds = cluster.ports.slice(0, 3).map((port) => ({ host: '127.0.0.1', port }));
  const connect = (options: RedisOptions = {}) => {
    const connection = new Cluster(seeds, { redisOptions: { password: PASSWORD, ...options } });
    connection.on('error', () => {});
    return connection;
  };
  const admin = connect();

  async function onNode<T>(port: number, work: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis({ port, host: '127.0.0.1', password: PASSWORD, lazyConnect: true });
    redis.on('error', () => {});
    try {
      await redis.connect();
      return await work(redis);
    } finally {
      redis.disconnect();
    }
  }

  const url = cluster.clusterUrl.replace('redis+cluster://', `redis+cluster://:${PASSWORD}@`);
  return {
    cluster,
    password: PASSWORD,
    url,
    admin,
    connect,
    onNode,
    async subscriberPort(prefix, name) {
      for (const node of cluster.nodes) {
        if (node.server.child.exitCode !== null || node.server.child.signalCode !== null) continue;
        const list = String(await onNode(node.port, (redis) => redis.client('LIST')));
        if (list.includes(`name=${prefix}:client-events:${name} `)) return node.port;
      }
      throw new Error(`no node holds the events subscription of ${prefix}:client-events:${name}`);
    },
    client: (options) =>
      createClient({ redisUrl: url, queueRedisUrl: testRedisUrl(), onMiss: 'null', ...options }),
    async stop() {
      admin.disconnect();
      await cluster.stop();
    },
  };
}
