// The wire contract other programs rely on (DESIGN.md "Public contract"). Shared by the daemon and the
// client; changing a name here breaks every producer and consumer in other languages.

export const QUEUES = { refresh: 'refresh', writeBehind: 'write-behind' } as const;

/** Data of a refresh job. The job's name is the view's name. No params = full rebuild. */
export interface RefreshJobData {
  params?: Record<string, unknown>;
  reason?: string;
}

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
  /** True when no run was needed: a run that started after this request was enqueued already succeeded. */
  covered?: boolean;
}

/** Published on `{prefix}:events` (pub/sub channel and capped stream) after every change. */
export interface ViewEvent {
  view: string;
  /** Keys changed by a partial refresh; null when the whole view changed. */
  keys: string[] | null;
  version: number;
  at: string;
}

export const REFRESH_PAYLOAD_LIMIT_BYTES = 64 * 1024;
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
