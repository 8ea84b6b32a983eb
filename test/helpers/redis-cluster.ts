import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, startThrowawayRedis, type ThrowawayRedis } from './redis-server.ts';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  role: 'master' | 'replica';
  server: ThrowawayRedis;
}

export interface ThrowawayCluster {
  /** `redis://127.0.0.1:<first master>`: any node serves as a seed for ioredis `Cluster`. */
  url: string;
  /** `redis+cluster://127.0.0.1:<master>,…` (no credentials): the URL viewkeeper takes. */
  clusterUrl: string;
  /** Every node's port, masters first. */
  ports: number[];
  nodes: ClusterNode[];
  /** The node currently serving `key`'s slot as master (asks the cluster, so it follows failovers). */
  masterOf(key: string): Promise<ClusterNode>;
  /** SIGKILLs one node (it stays dead until `restart`). */
  kill(node: ClusterNode): Promise<void>;
  /** Starts a killed node again on its port, with its old cluster config; it rejoins as it can. */
  restart(node: ClusterNode): Promise<void>;
  /** Resolves once every live node reports `cluster_state:ok` and all 16384 slots are served. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes the config directory. */
  stop(): Promise<void>;
}

/** The password of `--requirepass` in server args, for redis-cli (through its environment, not argv). */
function passwordIn(args: readonly string[]): string | undefined {
  const at = args.indexOf('--requirepass');
  return at === -1 ? undefined : args[at + 1];
}

function cliEnv(password: string | undefined): NodeJS.ProcessEnv {
  return password === undefined ? process.env : { ...process.env, REDISCLI_AUTH: password };
}

interface NodeEntry {
  port: number;
  master: boolean;
  failed: boolean;
  ranges: Array<[number, number]>;
  slots: number;
}

/** `CLUSTER NODES` lines: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges…>`. */
function parseNodes(text: string): NodeEntry[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [, address, flags, , , , , , ...ranges] = line.trim().split(' ');
      const slotRanges = ranges
        .filter((range) => !range.startsWith('['))
        .map((range) => {
          const [from, to = from] = range.split('-').map(Number);
          return [from!, to!] as [number, number];
        });
      return {
        port: Number(address!.split('@')[0]!.split(':')[1]),
        master: flags!.split(',').includes('master'),
        failed: /fail/.test(flags!),
        ranges: slotRanges,
        slots: slotRanges.reduce((sum, [from, to]) => sum + to - from + 1, 0),
      };
    });
}

function nodeArgs(dir: string, port: number): string[] {
  return [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dir, `nodes-${port}.conf`),
    // Short enough that the failover test does not wait long, long enough not to flap under load.
    '--cluster-node-timeout',
    '2000',
    '--dir',
    dir,
  ];
}

/**
 * A private Redis Cluster on loopback ports: `masters` masters, each with one replica (so a killed
 * master fails over), created with `redis-cli --cluster create`, healthy before it resolves. The
 * caller stops it (also on failure: put `stop()` in `afterAll`).
 */
export async function startThrowawayCluster(
  masters = 3,
  /** Extra server flags for every node; with `--requirepass`, replicas get the same `--masterauth`. */
  args: string[] = [],
): Promise<ThrowawayCluster> {
  const password = passwordIn(args);
  const extra = password === undefined ? args : [...args, '--masterauth', password];
  const cli = async (port: number, ...command: string[]): Promise<string> => {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...command], {
      timeout: 30_000,
      env: cliEnv(password),
    });
    return stdout;
  };
  const dir = await mkdtemp(join(tmpdir(), 'vk-cluster-'));
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.server.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let index = 0; index < masters * 2; index++) {
      const port = await freePort();
      const server = await startThrowawayRedis(port, [...nodeArgs(dir, port), ...extra]);
      nodes.push({ port, role: index < masters ? 'master' : 'replica', server });
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { timeout: 60_000, env: cliEnv(password) },
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const live = () =>
    nodes.filter((node) => node.server.child.exitCode === null && node.server.child.signalCode === null);

  const cluster: ThrowawayCluster = {
    url: `redis://127.0.0.1:${nodes[0]!.port}`,
    clusterUrl: `redis+cluster://${nodes
      .slice(0, masters)
      .map((node) => `127.0.0.1:${node.port}`)
      .join(',')}`,
    ports: nodes.map((node) => node.port),
    nodes,
    async masterOf(key) {
      const seed = live()[0]!;
      const slot = Number((await cli(seed.port, 'cluster', 'keyslot', key)).trim());
      for (const entry of parseNodes(await cli(seed.port, 'cluster', 'nodes'))) {
        if (!entry.master || entry.failed) continue;
        if (entry.ranges.some(([from, to]) => slot >= from && slot <= to)) {
          return nodes.find((node) => node.port === entry.port)!;
        }
      }
      throw new Error(`no master serves slot ${slot} of ${key}`);
    },
    async kill(node) {
      await node.server.kill();
    },
    async restart(node) {
      node.server = await startThrowawayRedis(node.port, [...nodeArgs(dir, node.port), ...extra]);
    },
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const alive = new Set(live().map((node) => node.port));
        const views = await Promise.all(
          live().map(async (node) => {
            try {
              const info = await cli(node.port, 'cluster', 'info');
              if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
              // A replica that has not finished its first sync cannot take over its master.
              const replication = await cli(node.port, 'info', 'replication');
              if (
                /role:slave/.test(replication) &&
                alive.has(Number(/master_port:(\d+)/.exec(replication)?.[1]))
              ) {
                if (!/master_link_status:up/.test(replication)) return false;
              }
              // Healthy means every slot's master is a live node in this node's view: right after a
              // kill the cluster still reports ok until the node timeout has passed.
              return parseNodes(await cli(node.port, 'cluster', 'nodes')).every(
                (entry) => entry.slots === 0 || (entry.master && alive.has(entry.port)),
              );
            } catch {
              return false;
            }
          }),
        );
        if (views.every(Boolean)) break;
        if (Date.now() > deadline) throw new Error(`cluster not healthy within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (const entry of parseNodes(await cli(live()[0]!.port, 'cluster', 'nodes'))) {
        const node = nodes.find((candidate) => candidate.port === entry.port);
        if (node && !entry.failed) node.role = entry.master ? 'master' : 'replica';
      }
    },
    stop,
  };
  try {
    await cluster.waitHealthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}
