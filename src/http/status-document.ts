import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { STATS_FIELDS } from '../client/stats.ts';
import { QUEUES } from '../contract.ts';
import { outboxStats } from '../db/capture-outbox.ts';
import type { ReadReplica, ReplicaStatus } from '../db/read-replica.ts';
import type { ViewkeeperDatabase } from '../db/schema.ts';
import { nextSlot } from '../lib/cron.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { auditKey, chunkStatePattern, clientKeys, viewKeys } from '../redis/keys.ts';
import { scanKeys } from '../redis/scan.ts';
import type { Registry } from '../views/registry.ts';

/** Queue states counted in the status document and in the metrics. */
export const COUNTED_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

export interface StatusSources {
  registry: Registry;
  /** The views Redis: view metadata and the client counters. */
  views: RedisConnection;
  /** The queue Redis: chunked-rebuild progress. */
  queue: RedisConnection;
  /** Queues whose depths are reported, by name (at least `refresh`). */
  queues: Record<string, Queue>;
  db: Kysely<ViewkeeperDatabase>;
  /** The read replica (DATABASE_READ_URL); undefined = none configured, reported as null. */
  replica?: ReadReplica;
  prefix: string;
}

/** The client counters summed over every client (`{prefix}:client:stats`) and the hit rate they give. */
export interface ClientTotals {
  hits: number;
  misses: number;
  stale_served: number;
  l1_hits: number;
  loader_calls: number;
  errors: number;
  /** hits / (hits + misses), null before the first read. */
  hit_rate: number | null;
}

interface LastRun {
  view: string;
  finished_at: Date;
  duration_ms: number;
  status: string;
  trigger: string;
}

export async function readClientTotals(views: RedisConnection, prefix: string): Promise<ClientTotals> {
  const raw = await views.hgetall(clientKeys(prefix).stats);
  const value = (field: string) => Number(raw[field] ?? 0) || 0;
  const totals = {
    hits: value(STATS_FIELDS.hits),
    misses: value(STATS_FIELDS.misses),
    stale_served: value(STATS_FIELDS.staleServed),
    l1_hits: value(STATS_FIELDS.l1Hits),
    loader_calls: value(STATS_FIELDS.loaderCalls),
    errors: value(STATS_FIELDS.errors),
  };
  const reads = totals.hits + totals.misses;
  return { ...totals, hit_rate: reads === 0 ? null : totals.hits / reads };
}

/**
 * The document `viewkeeper status --json` prints and `GET /status` serves: every view's metadata,
 * schedule, last full run and freshness, the queue depths and the clients' hit rate.
 */
export async function readStatus(sources: StatusSources, now: Date = new Date()) {
  const { registry, views, prefix } = sources;
  const names = [...registry.views.keys()].sort();
  const pipeline = views.pipeline();
  for (const name of names) pipeline.hgetall(viewKeys(prefix, name).meta);
  for (const name of names) pipeline.hgetall(auditKey(prefix, name));
  const hashes = ((await pipeline.exec()) ?? []).map(([, value]) => (value ?? {}) as Record<string, string>);
  const metas = hashes.slice(0, names.length);
  const audits = hashes.slice(names.length);
  const { rows: lastRuns } = await sql<LastRun>`
    select distinct on (view) view, finished_at, duration_ms, status, trigger
    from viewkeeper.refresh_runs where kind = 'full' order by view, started_at desc`.execute(sources.db);
  const progress = await chunkProgress(sources.queue, prefix);
  const rows = names.map((name, i) => {
    const meta = metas[i]!;
    const view = registry.view(name)!;
    const last = lastRuns.find((run) => run.view === name);
    const refreshedAt = meta.refreshed_at || null;
    return {
      view: name,
      shape: view.shape,
      version: meta.version ? Number(meta.version) : 0,
      refreshed_at: refreshedAt,
      /** Seconds since the last successful run of any kind; null = never refreshed. */
      age_s: refreshedAt ? Math.max(0, Math.round((now.getTime() - Date.parse(refreshedAt)) / 1000)) : null,
      duration_ms: meta.duration_ms ? Number(meta.duration_ms) : null,
      rows: meta.rows ? Number(meta.rows) : null,
      last_error: meta.last_error || null,
      schedule: view.schedule
        ? `${view.schedule.cron}${view.schedule.timezone === 'UTC' ? '' : ` ${view.schedule.timezone}`}`
        : null,
      next_run: view.schedule ? nextSlot(view.schedule.cron, view.schedule.timezone).toISOString() : null,
      last_full_run: last
        ? {
            at: last.finished_at.toISOString(),
            duration_ms: last.duration_ms,
            outcome: last.status,
            trigger: last.trigger,
          }
        : null,
      chunks: progress.get(name) ?? null,
      audit: auditSummary(audits[i]!),
    };
  });
  const queues: Record<string, Record<string, number>> = {};
  for (const [name, queue] of Object.entries(sources.queues)) {
    queues[name] = await queue.getJobCounts(...COUNTED_STATES);
  }
  const outbox = await outboxStats(sources.db, 0);
  const capture = {
    outbox_depth: outbox.depth,
    outbox_rows: outbox.rows,
    oldest_change: outbox.oldest?.toISOString() ?? null,
    oldest_change_age_s: outbox.oldestAgeSeconds,
    failed_changes: outbox.failed,
  };
  const replica: ReplicaStatus | null = sources.replica ? await sources.replica.status() : null;
  return { views: rows, queues, client: await readClientTotals(views, prefix), capture, replica };
}

/** A view's drift-audit counters (views/audit.ts): cumulative, and the last audit's; null before any. */
function auditSummary(hash: Record<string, string>) {
  if (!hash.last_at) return null;
  return {
    checked: Number(hash.checked ?? 0),
    drifted: Number(hash.drifted ?? 0),
    repaired: Number(hash.repaired ?? 0),
    last_at: hash.last_at,
    last_checked: Number(hash.last_checked ?? 0),
    last_drifted: Number(hash.last_drifted ?? 0),
    last_repaired: Number(hash.last_repaired ?? 0),
  };
}

export type StatusDocument = Awaited<ReturnType<typeof readStatus>>;
export type ViewStatus = StatusDocument['views'][number];

/** The queues `status` reports: the two public ones. */
export const STATUS_QUEUES = [QUEUES.refresh, QUEUES.writeBehind] as const;

/** Chunked rebuilds in progress, by view: the progress hashes the parent jobs keep. */
async function chunkProgress(
  redis: RedisConnection,
  prefix: string,
): Promise<Map<string, { done: number; total: number }>> {
  const progress = new Map<string, { done: number; total: number }>();
  // On a cluster the progress hashes may be on any master (a hash-tagged prefix keeps them on one).
  for await (const keys of scanKeys(redis, chunkStatePattern(prefix))) {
    for (const key of keys) {
      const state = await redis.hgetall(key);
      if (state.view)
        progress.set(state.view, { done: Number(state.done ?? 0), total: Number(state.total ?? 0) });
    }
  }
  return progress;
}
