/**
 * Every Redis key viewkeeper itself owns, built in one place. View data keys (`user_stats:42`) come
 * from each view's key template instead; everything else is under the configured prefix.
 */
export function viewKeys(prefix: string, view: string) {
  const meta = `${prefix}:view:${view}`;
  return {
    /** Metadata hash: version, refreshed_at, duration_ms, rows, last_error, seq, floor. */
    meta,
    /** Per-row and per-group views: zset of every key the view wrote, scored by the sequence of the run that wrote it. */
    keyIndex: `${meta}:keys`,
    /** zset views: members written by partial refreshes since the last full rebuild, by sequence. */
    memberIndex: `${meta}:members`,
    /** list views: group key → order key of the list's first element (for appends). */
    heads: `${meta}:heads`,
    /** Where a full rebuild of a zset or json view is built before the swap. */
    temp: (seq: number) => `${meta}:tmp:${seq}`,
    /**
     * Redis Cluster: the hash of one slot's `floor` and `fields` (on one server they live in the
     * metadata hash), named into each slot by placement.ts.
     */
    floor: `${meta}:floor`,
    /** Redis Cluster: set of the slots (numbers) the view's per-slot keys were ever written in. */
    slots: `${meta}:slots`,
  };
}

/**
 * The keys one script call of a view's writer uses for the keys of one slot (redis/placement.ts):
 * on one server the view's own index, metadata and heads keys (slot 0, names unchanged); on a
 * cluster a copy of each placed in `slot`, so that the script touches that slot only.
 */
export function viewSlotKeys(
  prefix: string,
  view: string,
  slot: number,
  inSlot: (base: string, slot: number) => string,
  cluster: boolean,
) {
  const keys = viewKeys(prefix, view);
  return {
    keyIndex: inSlot(keys.keyIndex, slot),
    memberIndex: inSlot(keys.memberIndex, slot),
    /** Holds 'floor' and 'fields': the metadata hash itself on one server. */
    floor: cluster ? inSlot(keys.floor, slot) : keys.meta,
    heads: inSlot(keys.heads, slot),
    temp: (seq: number) => inSlot(keys.temp(seq), slot),
  };
}

/**
 * Hash of one view's drift-audit counters (views/audit.ts): cumulative `checked`, `drifted`,
 * `repaired`, and the last audit's `last_at`, `last_checked`, `last_drifted`, `last_repaired`,
 * `last_keys` (JSON: up to 20 drifted keys). Apart from the metadata hash, which the run scripts own.
 */
export function auditKey(prefix: string, view: string): string {
  return `${prefix}:audit:${view}`;
}

/** Keys that coordinate runs of one (view, params) identity across daemons. */
export function runKeys(prefix: string, identity: string) {
  return {
    lock: `${prefix}:lock:${identity}`,
    window: `${prefix}:window:${identity}`,
    /** The highest refresh-job number a finished run covers (queues/coverage.ts), with an expiry. */
    covered: `${prefix}:covered:${identity}`,
  };
}

/** Queue Redis: progress hash of a chunked rebuild, keyed by its parent refresh job (queues/chunked-rebuild.ts). */
export function chunkStateKey(prefix: string, parentJobId: string): string {
  return `${prefix}:chunked:${parentJobId}`;
}

/** SCAN pattern of every chunked rebuild's progress hash. */
export function chunkStatePattern(prefix: string): string {
  return `${prefix}:chunked:*`;
}

/** Queue Redis: the durable backlog of refreshes write-behind owes (sinks/refresh-backlog.ts). */
export function refreshBacklogKey(prefix: string): string {
  // Outside the queue's own `{prefix}:write-behind:*` key space.
  return `${prefix}:sinks:refresh`;
}

/**
 * Queue Redis: the backlog's receipts, what `write(…, { until: 'refreshed' })` and `afterCommit()`
 * wait on. `seq` counts marks; `pending` (zset) holds each owed entry's earliest mark not yet
 * covered by a successful run; `claimed` (hash) the seq at which a run of the entry was claimed;
 * `next` (hash) the first seq marked while that run held it. Written by sinks/scripts/*.lua only.
 */
export function refreshReceiptKeys(prefix: string) {
  const base = refreshBacklogKey(prefix);
  return {
    seq: `${base}:seq`,
    pending: `${base}:pending`,
    claimed: `${base}:claimed`,
    next: `${base}:next`,
  };
}

/** Queue Redis: one daemon's claim of a cron tick (or start-up catch-up) of a view's schedule slot. */
export function tickClaimKey(prefix: string, kind: 'cron' | 'catchup', view: string, slot: Date): string {
  return `${prefix}:tick:${kind}:${view}:${slot.getTime()}`;
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
    /**
     * Single-flight lock of one `cached()` key: a random token with an expiry. On a Redis Cluster the
     * client names it into its entry's slot instead (src/client/cache-store.ts).
     */
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

/**
 * Key names inside a BullMQ queue that viewkeeper reads or writes itself, as BullMQ 6.7 (the version
 * in package.json) lays them out: `{prefix}:{queue}:…`. BullMQ does not promise these names; an
 * upgrade must check them here (test/integration/undecodable-jobs.test.ts and the coverage and
 * chunked-rebuild tests fail when they move).
 */
export function bullmqKeys(prefix: string, queue: string) {
  const base = `${prefix}:${queue}`;
  return {
    /** The job hash (`data`, `opts`, `failedReason`, …). */
    job: (id: string) => `${base}:${id}`,
    /** The counter job ids are taken from (INCR). */
    id: `${base}:id`,
    /** Deduplication: the id of the job holding deduplication id `id`. */
    dedup: (id: string) => `${base}:de:${id}`,
    /** Deduplication with keepLastIfActive: the request kept while the job is active. */
    dedupNext: (id: string) => `${base}:dn:${id}`,
  };
}

/** Change-capture bookkeeping in the queue Redis. */
export function captureKeys(prefix: string) {
  return {
    /** Outbox rows drained during one minute (epoch minute), by all daemons; kept an hour. */
    drained: (minute: number) => `${prefix}:capture:drained:${minute}`,
    /**
     * Set (with a TTL) inside a write-behind commit that leaves refreshes to capture: asks the
     * drainer for a receipt of transaction `txid`…
     */
    watch: (txid: string) => `${prefix}:capture:watch:${txid}`,
    /** …which it writes once the transaction's changes are marked: the backlog mark that covers them. */
    receipt: (txid: string) => `${prefix}:capture:receipt:${txid}`,
  };
}
