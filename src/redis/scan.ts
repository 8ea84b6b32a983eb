import { isCluster, type RedisConnection } from './connections.ts';

// SCAN walks one server's keyspace; a cluster's keys are spread over its masters, so every scan of
// the daemon goes through here and walks each master in turn.

/** Every key matching `pattern`, in batches, on every master of `redis`. */
export async function* scanKeys(
  redis: RedisConnection,
  pattern: string,
  count = 100,
): AsyncGenerator<string[]> {
  const nodes = isCluster(redis) ? redis.nodes('master') : [redis];
  for (const node of nodes) {
    for await (const keys of node.scanStream({ match: pattern, count })) {
      if ((keys as string[]).length > 0) yield keys as string[];
    }
  }
}
