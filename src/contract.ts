// The wire contract other programs rely on (DESIGN.md "Public contract"). Shared by the daemon and the
// client; changing a name here breaks every producer and consumer in other languages.

export const QUEUES = { refresh: 'refresh', writeBehind: 'write-behind' } as const;

/**
 * Data of a refresh job. The job's name is the view's name. No params = full rebuild; an object = a
 * partial refresh of the keys it selects; an array = a bulk request, one partial refresh per element
 * (at most {@link MAX_BULK_PARAMS}), each validated and reported on its own.
 */
export interface RefreshJobData {
  params?: Record<string, unknown> | Record<string, unknown>[];
  reason?: string;
}

/** The fate of one element of a bulk refresh request, in the order of the request's `params`. */
export type RefreshEntryResult =
  /** Refreshed by a run; `rows` = 1 when its row exists (written), 0 when it is gone (key deleted). */
  | { status: 'done'; rows: number }
  /** No run needed: a run of the same (view, params) that started after the request succeeded. */
  | { status: 'covered' }
  /** Rejected (bad params) or its run failed; the other elements are not affected. */
  | { status: 'failed'; reason: string };

/** What a completed refresh job returns (kept small: it lives in Redis with the job). */
export interface RefreshJobResult {
  view: string;
  kind: 'full' | 'partial';
  rows: number;
  version: number;
  ms: number;
  /** Number of keys a partial refresh changed; null for a full rebuild. */
  keys: number | null;
  superseded: boolean;
  /**
   * `list` and `set` views: one line per group that could not be written (an element over 64 KB),
   * naming the view and key; every other group was written.
   */
  failedGroups?: string[];
  /** Which Postgres the run's query read (`primary` or `replica`); present when DATABASE_READ_URL is set. */
  source?: 'primary' | 'replica';
  /** True when no run was needed: a run that started after this request was enqueued already succeeded. */
  covered?: boolean;
  /** Bulk requests: one outcome per element of `params`, in order. */
  entries?: RefreshEntryResult[];
  /** Bulk requests: how many entries failed (the job itself completes). */
  failed?: number;
}

/** Published on `{prefix}:events` (pub/sub channel and capped stream) after every change. */
export interface ViewEvent {
  view: string;
  /** Keys changed by a partial refresh; null when the whole view changed. */
  keys: string[] | null;
  version: number;
  at: string;
}

/**
 * Published on `{prefix}:events` (channel and stream) by the client's `invalidateTag()`. `version` is
 * the tag's new version (monotonic; entries cached under an older one are no longer served).
 */
export interface TagEvent {
  tag: string;
  version: number;
  at: string;
}

/**
 * Published on the `{prefix}:events` channel only (not the stream) when a `cached()` entry is written
 * or invalidated, so every process drops its in-process copy. `id` names the entry just written;
 * absent when the entry was deleted.
 */
export interface CacheKeyEvent {
  cacheKey: string;
  id?: string;
  at: string;
}

/** Every message on `{prefix}:events`. */
export type InvalidationEvent = ViewEvent | TagEvent | CacheKeyEvent;

/**
 * Data of a write-behind job. The job's name is the sink's name; each op carries the producer's
 * idempotency key `id` and exactly the sink's fields.
 */
export interface WriteBehindJobData {
  ops: WriteOp[];
}

/** One write: `id` (idempotency key chosen by the producer) plus the sink's fields. */
export interface WriteOp {
  id: string;
  [field: string]: unknown;
}

/** What a completed write-behind job returns (small: it lives in Redis with the job). */
export interface WriteBehindJobResult {
  /** Ops of the job written in this delivery. */
  applied: number;
  /** Ops already recorded in the ledger (a redelivery, or the same op id sent twice). */
  duplicates: number;
  /**
   * Ops the sink or the database refused (a foreign key to nothing, a check, the sink's own
   * exception), each with a one-line reason. They are kept in `viewkeeper.rejected_ops` until an
   * operator retries or drops them (`viewkeeper rejected …`).
   */
  rejected: { id: string; reason: string }[];
  /**
   * The refreshes the job's batch owes, as a receipt to wait on (`write(…, { until: 'refreshed' })`):
   * `seq` is the backlog mark that recorded them, `owed` the backlog entries (left out when the batch
   * owed more than a hundred: then every entry marked up to `seq` is waited for); `capture`, the
   * commit's transaction id when change capture brings some of its refreshes (the drainer then
   * writes a receipt for it). Absent when the batch owed no refresh.
   */
  refresh?: { seq: number; owed?: string[]; capture?: string };
}

/** Largest write-behind job data accepted (JSON bytes). */
export const WRITE_PAYLOAD_LIMIT_BYTES = 1024 * 1024;
export const MAX_OP_ID_LENGTH = 200;

export const REFRESH_PAYLOAD_LIMIT_BYTES = 64 * 1024;
/** Largest bulk refresh job data (params is an array) accepted (JSON bytes). */
export const BULK_REFRESH_PAYLOAD_LIMIT_BYTES = 1024 * 1024;
/** Most elements in one bulk refresh request. */
export const MAX_BULK_PARAMS = 10_000;
export const MAX_REASON_LENGTH = 200;

/**
 * The deduplication id of a refresh request: same (view, params) → same id, whatever the key order.
 * Producers that set BullMQ `deduplication: { id, keepLastIfActive: true }` with it get coalescing.
 */
export function refreshDedupId(view: string, params?: Record<string, unknown>): string {
  if (!params) return `${view}|*`;
  const sorted = Object.keys(params)
    .sort()
    .map((name) => `${name}=${String(params[name])}`);
  return `${view}|${sorted.join('&')}`;
}
