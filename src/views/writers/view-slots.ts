import type { RedisConnection } from '../../redis/connections.ts';
import { viewKeys, viewSlotKeys } from '../../redis/keys.ts';
import { type Placement, placementOf } from '../../redis/placement.ts';

/**
 * The slots a view's per-slot bookkeeping lives in (redis/placement.ts), for the writers, sweeps and
 * readers of one view. On one server there is one slot and nothing is recorded. On a cluster the
 * view's slot set (`{prefix}:view:{name}:slots`) lists every slot its per-slot keys were ever
 * written in: a writer adds a slot there before its first write into it, so a full rebuild's sweep,
 * which reads the set after its own writes, finds every slot that can hold keys of vanished rows —
 * including slots its own snapshot no longer touches.
 */
export interface ViewSlots {
  readonly placement: Placement;
  /** The script keys of one slot. */
  keysOf(slot: number): ReturnType<typeof viewSlotKeys>;
  /** Records `slots` in the slot set (cluster; the new ones only). Resolves before any write goes out. */
  register(slots: Iterable<number>): Promise<void> | undefined;
  /** Every slot holding the view's bookkeeping: [0] on one server. */
  all(): Promise<number[]>;
}

export function viewSlots(redis: RedisConnection, prefix: string, view: string): ViewSlots {
  const placement = placementOf(redis);
  const known = new Set<number>();
  const setKey = viewKeys(prefix, view).slots;
  const cache = new Map<number, ReturnType<typeof viewSlotKeys>>();
  return {
    placement,
    keysOf(slot) {
      let keys = cache.get(slot);
      if (!keys) {
        keys = viewSlotKeys(prefix, view, slot, placement.inSlot, placement.cluster);
        cache.set(slot, keys);
      }
      return keys;
    },
    register(slots) {
      if (!placement.cluster) return undefined;
      const added = [...slots].filter((slot) => !known.has(slot));
      if (added.length === 0) return undefined;
      for (const slot of added) known.add(slot);
      return redis.sadd(setKey, ...added).then(
        () => undefined,
        (error: unknown) => {
          for (const slot of added) known.delete(slot);
          throw error;
        },
      );
    },
    async all() {
      if (!placement.cluster) return [0];
      return (await redis.smembers(setKey)).map(Number).sort((a, b) => a - b);
    },
  };
}

/** Runs `work` for every item with at most `limit` at once (slot-by-slot sweeps on a cluster). */
export async function eachLimited<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

/**
 * Every key of one of a view's indexes (`keyIndex` for per-row and per-group views, `memberIndex`
 * for zset views): the one key on one server, one per recorded slot on a cluster.
 */
export async function indexKeysOf(
  redis: RedisConnection,
  prefix: string,
  view: string,
  index: 'keyIndex' | 'memberIndex',
): Promise<string[]> {
  const slots = viewSlots(redis, prefix, view);
  return (await slots.all()).map((slot) => slots.keysOf(slot)[index]);
}

/** Up to `count` random members of a view's index, drawn across its slots (ZRANDMEMBER each). */
export async function sampleIndex(
  redis: RedisConnection,
  prefix: string,
  view: string,
  index: 'keyIndex' | 'memberIndex',
  count: number,
): Promise<string[]> {
  const keys = await indexKeysOf(redis, prefix, view, index);
  if (keys.length === 1) return (await redis.zrandmember(keys[0]!, count)) as string[];
  // Shuffled, so that a sample of a cluster view is not always from its lowest slots.
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  const picked: string[] = [];
  for (const key of keys) {
    if (picked.length >= count) break;
    picked.push(...((await redis.zrandmember(key, count - picked.length)) as string[]));
  }
  return picked;
}
