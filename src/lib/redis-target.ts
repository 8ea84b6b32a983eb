// What a Redis URL names: one server, or a Redis Cluster. The cluster form is a URL of its own so that
// one variable (REDIS_URL, QUEUE_REDIS_URL, the client's `redisUrl`) carries everything, and every
// command, daemon and app reading it agrees:
//
//   redis://[user:password@]host:port[/db]                   one server (db 0–15)
//   redis+cluster://[user:password@]host:port[,host:port…]   a cluster, reached through any seed nodes
//   rediss://… / rediss+cluster://…                          the same over TLS
//
// A cluster has only database 0, so a cluster URL with a database path is refused. Loaded by the
// client as well as the daemon: no daemon code here.

export interface RedisNode {
  host: string;
  port: number;
}

export type RedisTarget =
  | { kind: 'standalone'; url: string }
  | {
      kind: 'cluster';
      /** Seed nodes; the cluster's own topology is discovered from them. */
      nodes: RedisNode[];
      username?: string;
      password?: string;
      tls: boolean;
    };

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;

/** True when `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`). */
export function isClusterUrl(url: string): boolean {
  return CLUSTER_SCHEME.test(url.trim());
}

/**
 * Parses `url` into a target. Throws an Error with a one-line reason (never containing the password)
 * for a cluster URL without nodes, with a bad port, or with a database number.
 */
export function parseRedisTarget(url: string): RedisTarget {
  const trimmed = url.trim();
  const scheme = CLUSTER_SCHEME.exec(trimmed);
  if (!scheme) return { kind: 'standalone', url: trimmed };
  const rest = trimmed.slice(scheme[0].length);
  const at = rest.lastIndexOf('@');
  const credentials = at === -1 ? '' : rest.slice(0, at);
  const hostPart = rest.slice(at + 1);
  const [hosts = '', path = ''] = hostPart.split(/\/(.*)/s);
  if (path.replace(/\/$/, '') !== '' && path !== '0') {
    throw new Error(`a Redis Cluster has only database 0, but the URL selects /${path}; remove the path`);
  }
  const nodes = hosts
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
      const port = Number(match?.[2] ?? 6379);
      if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new Error(`cluster node "${entry}" is not host:port`);
      }
      return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
    });
  if (nodes.length === 0) throw new Error('a redis+cluster:// URL needs at least one host:port');
  const colon = credentials.indexOf(':');
  const decode = (text: string) => (text === '' ? undefined : decodeURIComponent(text));
  return {
    kind: 'cluster',
    nodes,
    username: decode(colon === -1 ? credentials : credentials.slice(0, colon)),
    password: colon === -1 ? undefined : decode(credentials.slice(colon + 1)),
    tls: scheme[1]!.toLowerCase() === 'rediss',
  };
}
