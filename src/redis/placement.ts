import { isCluster, type RedisConnection } from './connections.ts';
import { slotOf as calculateSlot, tagForSlot } from './slot.ts';

// Where keys live. On one server everything is one slot group (slot 0) and every key keeps its
// plain name: the code path is the same as on a cluster, with one group. On a Redis Cluster a Lua
// script may touch only keys of one hash slot, so the engine groups the keys of each script call by
// slot and gives every piece of bookkeeping that must be atomic with those keys (the key index, the
// floor) one copy per slot, named with a hash tag that maps to that slot.
//
// What is atomic per slot, and why that is enough: every guarantee of DESIGN.md is about one key at
// a time — a key is replaced whole (no torn reads), a write is dropped when its key's index entry
// shows a newer sequence or when the floor shows a newer full rebuild (convergence), a sweep deletes
// a key only when its index entry is older than the rebuild. Each of those checks reads the index
// entry and floor of the key's own slot in the same script that writes the key, so they are exactly
// as atomic as on one server. What is no longer one step is the whole view: a full rebuild raises
// the floor slot by slot, so for a moment an older run may still land a key in a slot not yet swept
// (it is then swept, or skipped, in that slot as on one server), and readers of two keys in two
// slots may see one before and one after a rebuild — as they could on one server between batches.

export interface Placement {
  readonly cluster: boolean;
  /** The hash slot of `key` (0 on one server). */
  slotOf(key: string): number;
  /** `base`, renamed into `slot` with a hash tag on a cluster; `base` itself on one server. */
  inSlot(base: string, slot: number): string;
  /** Groups `items` by the slot of their key, in first-seen order; one group on one server. */
  group<T>(items: Iterable<T>, key: (item: T) => string): Map<number, T[]>;
}

/** The shortest hash tag content of `slot`: one table for client and daemon (slot.ts). */
export const slotTag = tagForSlot;

/**
 * `base` placed in `slot`: `base` itself when it is there already (a hash-tagged prefix puts all of
 * viewkeeper's own keys in one slot), else renamed with a tag. Redis hashes only the text between the first `{` and the next `}`, so a
 * base that already contains a `{` (a hash-tagged VK_PREFIX such as `{vk}`) gets the tag in front;
 * any other base gets it at the end, where it reads as a suffix: `vk:view:user_stats:keys:{3a}`.
 */
export function placeInSlot(base: string, slot: number): string {
  if (calculateSlot(base) === slot) return base;
  const tag = `{${slotTag(slot)}}`;
  return base.includes('{') ? `${tag}${base}` : `${base}:${tag}`;
}

const SINGLE: Placement = {
  cluster: false,
  slotOf: () => 0,
  inSlot: (base) => base,
  group(items) {
    return new Map([[0, [...items]]]);
  },
};

const CLUSTER: Placement = {
  cluster: true,
  slotOf: (key) => calculateSlot(key),
  inSlot: placeInSlot,
  group<T>(items: Iterable<T>, key: (item: T) => string) {
    const groups = new Map<number, T[]>();
    for (const item of items) {
      const slot = calculateSlot(key(item));
      const group = groups.get(slot);
      if (group) group.push(item);
      else groups.set(slot, [item]);
    }
    return groups;
  },
};

/** The placement of keys on `redis`. */
export function placementOf(redis: RedisConnection): Placement {
  return isCluster(redis) ? CLUSTER : SINGLE;
}
