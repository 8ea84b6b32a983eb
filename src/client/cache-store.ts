import type { clientKeys } from '../redis/keys.ts';
import { groupBySlot, inSlot, slotOf } from '../redis/slot.ts';
import type { ClientRedis } from './connection.ts';
import type { ClientScripts } from './scripts.ts';

// The Redis side of cached(): one method per atomic step, on one server or on a Redis Cluster.
//
// A cluster runs a script only when all its keys are in one slot. An entry and its lock are per key,
// so they are put together: on a cluster the lock is named into the entry's slot (a hash tag after
// `{prefix}:cache-lock:` when the plain name hashes elsewhere). Tags are shared by many entries, so
// their version counters cannot follow every entry: the versions in the entry's slot ride along with
// the entry's script, and the others are read with one call per slot, at the same time. On one
// server every key is in "the entry's slot", so each step stays one round trip.
//
// Why reading the versions apart from the entry keeps every guarantee of DESIGN.md and the README:
// - An invalidated tag is never served. invalidateTag returns after the INCR on the tag's master. A
//   read that starts afterwards reads that counter afterwards too, sees the new version (or a later
//   one), and rejects an entry that remembers an older one — whichever of its calls answers first. A
//   read running while invalidateTag runs may serve the old value: it is concurrent with the
//   invalidation, as it would be on one server when its script ran first.
// - Entries never claim a version newer than they are. The versions an entry remembers are read
//   before its loader starts (with the lock), never after, so an invalidation that lands during the
//   load leaves the entry built under the old version, and it misses on its next read.
// - Stampede protection and early refresh live in the entry's slot: the lock is taken, checked on
//   write and released in scripts touching only the entry and its lock, exactly as on one server.
// - Missing versions are created from the server clock before a load (as on one server), so an
//   evicted counter never reads as a version some entry was built under.

type Reply = (Buffer | string | number | null)[];

export interface CacheRead {
  raw: Buffer | null;
  /** The current version of each tag, in the order of the tags given. */
  versions: Reply;
}

export interface CacheStore {
  read(key: string, tags: readonly string[]): Promise<CacheRead>;
  /** Takes the lock if free and reads the entry and versions (creating missing ones) in the same step. */
  acquire(
    key: string,
    tags: readonly string[],
    token: string,
    lockTtlMs: number,
  ): Promise<CacheRead & { acquired: boolean }>;
  /** Stores `encoded` unless another process holds the lock; releases ours; publishes `event`. */
  write(key: string, token: string, encoded: Buffer, pttl: number, event: string): Promise<boolean>;
  release(key: string, token: string): Promise<void>;
  extend(key: string, token: string, lockTtlMs: number): Promise<void>;
  /** Deletes the entry and publishes `event`; resolves with whether it existed. */
  invalidateKey(key: string, event: string): Promise<boolean>;
  /** Bumps the tag's version, publishes and appends the tag event; resolves with the new version. */
  invalidateTag(tag: string, at: string): Promise<number>;
}

export interface CacheStoreOptions {
  redis: ClientRedis;
  scripts: ClientScripts;
  keys: ReturnType<typeof clientKeys>;
  prefix: string;
  /** `{prefix}:events`: channel and stream. */
  channel: string;
  streamMaxLen: number;
  cluster: boolean;
}

export function createCacheStore(options: CacheStoreOptions): CacheStore {
  const { redis, scripts, keys, channel, cluster } = options;
  /** On one server every key counts as being in one slot. */
  const slot = cluster ? slotOf : () => 0;
  const lockOf = cluster
    ? (key: string) => inSlot(`${options.prefix}:cache-lock:`, key, slotOf(keys.entry(key)))
    : keys.lock;

  /**
   * Splits the tags' version keys into those in the entry's slot (for the entry's own script) and
   * one read per other slot, started now; `merge` puts every version back in tag order.
   */
  function versionsApart(entry: string, tags: readonly string[], create: boolean) {
    const tagKeys = tags.map((tag) => keys.tag(tag));
    const local: number[] = [];
    const remote: Promise<{ indexes: number[]; reply: Reply }>[] = [];
    const home = slot(entry);
    for (const [s, indexes] of cluster ? groupBySlot(tagKeys) : new Map([[0, tagKeys.map((_, i) => i)]])) {
      if (s === home) local.push(...indexes);
      else {
        const read = scripts
          .run<Reply>(
            'vkcTagVersions',
            indexes.map((i) => tagKeys[i]!),
            [create ? '1' : '0'],
          )
          .then((reply) => ({ indexes, reply }));
        // Awaited only once the entry's script has answered: until then its failure must not count
        // as unhandled (which ends a Node process).
        read.catch(() => {});
        remote.push(read);
      }
    }
    return {
      localKeys: local.map((i) => tagKeys[i]!),
      async merge(localReply: Reply): Promise<Reply> {
        const versions: Reply = new Array(tags.length).fill(null);
        local.forEach((index, i) => {
          versions[index] = localReply[i] ?? null;
        });
        for (const { indexes, reply } of await Promise.all(remote)) {
          indexes.forEach((index, i) => {
            versions[index] = reply[i] ?? null;
          });
        }
        return versions;
      },
    };
  }

  return {
    async read(key, tags) {
      const entry = keys.entry(key);
      const apart = versionsApart(entry, tags, false);
      const [raw, ...local] = await scripts.runBuffer<Reply>('vkcRead', [entry, ...apart.localKeys], []);
      return { raw: (raw as Buffer | null) ?? null, versions: await apart.merge(local) };
    },

    async acquire(key, tags, token, lockTtlMs) {
      const entry = keys.entry(key);
      const apart = versionsApart(entry, tags, true);
      const [acquired, raw, ...local] = await scripts.runBuffer<Reply>(
        'vkcAcquire',
        [lockOf(key), entry, ...apart.localKeys],
        [token, lockTtlMs],
      );
      return {
        acquired: acquired === 1,
        raw: (raw as Buffer | null) ?? null,
        versions: await apart.merge(local),
      };
    },

    async write(key, token, encoded, pttl, event) {
      const written = await scripts.run<number>(
        'vkcWrite',
        [keys.entry(key), lockOf(key)],
        [token, encoded, pttl, channel, event],
      );
      return written === 1;
    },

    async release(key, token) {
      await scripts.run('vkcRelease', [lockOf(key)], [token]);
    },

    async extend(key, token, lockTtlMs) {
      await scripts.run('vkcExtend', [lockOf(key)], [token, lockTtlMs]);
    },

    async invalidateKey(key, event) {
      return (await scripts.run<number>('vkcInvalidateKey', [keys.entry(key)], [channel, event])) === 1;
    },

    async invalidateTag(tag, at) {
      const tagKey = keys.tag(tag);
      // The stream joins the script when it shares the tag's slot (always on one server).
      const together = slot(tagKey) === slot(channel);
      const [version, event] = await scripts.run<[number, string]>(
        'vkcInvalidateTag',
        together ? [tagKey, channel] : [tagKey],
        [tag, channel, at, options.streamMaxLen],
      );
      // Apart: the version is already bumped and the event published (what readers rely on); the
      // stream is the replayable log, appended right after.
      if (!together) await redis.xadd(channel, 'MAXLEN', '~', options.streamMaxLen, '*', 'event', event);
      return Number(version);
    },
  };
}
