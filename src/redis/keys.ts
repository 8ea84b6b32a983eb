/**
 * Every Redis key viewkeeper itself owns, built in one place. View data keys (`user_stats:42`) come
 * from each view's key template instead; everything else is under the configured prefix.
 */
export function viewKeys(prefix: string, view: string) {
  const meta = `${prefix}:view:${view}`;
  return {
    /** Metadata hash: version, refreshed_at, duration_ms, rows, last_error, seq, floor. */
    meta,
    /** Per-row views: zset of every key the view wrote, scored by the sequence of the run that wrote it. */
    keyIndex: `${meta}:keys`,
    /** zset views: members written by partial refreshes since the last full rebuild, by sequence. */
    memberIndex: `${meta}:members`,
    /** Where a full rebuild of a zset or json view is built before the swap. */
    temp: (seq: number) => `${meta}:tmp:${seq}`,
  };
}

/** Keys that coordinate runs of one (view, params) identity across daemons. */
export function runKeys(prefix: string, identity: string) {
  return {
    lock: `${prefix}:lock:${identity}`,
    window: `${prefix}:window:${identity}`,
  };
}

/** The events pub/sub channel and the capped events stream share this name. */
export function eventsKey(prefix: string): string {
  return `${prefix}:events`;
}

/** Name of every view that has metadata: matches `{prefix}:view:*` but not the index/temp keys. */
export function viewMetaPattern(prefix: string): string {
  return `${prefix}:view:*`;
}

/**
 * Keys of the client library's cache-aside entries, their single-flight locks, tag versions and the
 * client metrics hash.
 */
export function clientKeys(prefix: string) {
  return {
    /** A `cached()` entry: codec envelope (see cache-codec.ts). */
    entry: (key: string) => `${prefix}:cache:${key}`,
    /** Single-flight lock of one `cached()` key: a random token with an expiry. */
    lock: (key: string) => `${prefix}:cache-lock:${key}`,
    /** Version counter of one tag; entries remember the versions they were built under. */
    tag: (tag: string) => `${prefix}:tag:${tag}`,
    /** Hash of counters every client adds to: hits, misses, stale_served, l1_hits, loader_calls, errors. */
    stats: `${prefix}:client:stats`,
    /**
     * Sorted set of sampled reads: member = the Redis key read, score = estimated reads. Clients add
     * to it and trim it to its top HOT_KEYS_KEPT; the daemon reads its top for the status page.
     */
    hotKeys: `${prefix}:client:hot-keys`,
  };
}
