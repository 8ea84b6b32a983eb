import type { Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { CaptureObserver } from '../capture/drainer.ts';
import type { ReadReplica } from '../db/read-replica.ts';
import type { ViewkeeperDatabase } from '../db/schema.ts';
import type { WriteBehindObserver } from '../queues/write-behind-worker.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { viewKeys } from '../redis/keys.ts';
import { refreshBacklogKey } from '../sinks/refresh-backlog.ts';
import type { RefreshObserver } from '../views/observed-engine.ts';
import type { Registry as Definitions } from '../views/registry.ts';
import { registerCaptureMetrics } from './capture-metrics.ts';
import { readClientTotals } from './status-document.ts';

export interface MetricsOptions {
  definitions: Definitions;
  /** The views Redis: view metadata and client counters, read at every scrape. */
  views: RedisConnection;
  /** The queue Redis: the sinks' refresh backlog. */
  queue: RedisConnection;
  /** Queues whose job counts are exported, by name. */
  queues: Record<string, Queue>;
  /** The write-behind queue, for the age of its oldest waiting op. */
  writeBehindQueue: Queue;
  prefix: string;
  /** The latest memory estimate per view, bytes (see memory-sampler.ts). */
  memory: () => ReadonlyMap<string, number>;
  /** Goes into viewkeeper_build_info. */
  version: string;
  /** The read replica (DATABASE_READ_URL): its gauges exist only when it is configured. */
  replica?: ReadReplica;
  /** Postgres, for the change-capture outbox gauges (read at every scrape). */
  db?: Kysely<ViewkeeperDatabase>;
}

export interface Metrics {
  register: Registry;
  refresh: RefreshObserver;
  writeBehind: WriteBehindObserver;
  capture: CaptureObserver;
  tick(view: string, outcome: string): void;
}

const QUEUE_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'failed',
  'completed',
] as const;
const P = 'viewkeeper_';

/**
 * Every metric the daemon exports, in a registry of its own (not prom-client's global one, so two
 * daemons in one process — tests — do not collide). Counters and histograms are fed by the
 * observers; gauges read Redis at scrape time, so they show the whole fleet's state (view freshness
 * is the same whichever daemon refreshed it). Labels are view, sink, kind, trigger, outcome, and the
 * bounded code / queue / state: never a key or a param.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const register = new Registry();
  const registers = [register];
  collectDefaultMetrics({ register, prefix: P });

  new Gauge({
    name: `${P}build_info`,
    help: 'Always 1; the labels say which viewkeeper and Node.js this daemon runs.',
    labelNames: ['version', 'node_version'],
    registers,
  }).set({ version: options.version, node_version: process.versions.node }, 1);

  const runs = new Counter({
    name: `${P}refresh_runs_total`,
    help: 'Refresh runs finished, by view, kind (full, partial, chunk), trigger and outcome (done, failed).',
    labelNames: ['view', 'kind', 'trigger', 'outcome'],
    registers,
  });
  const duration = new Histogram({
    name: `${P}refresh_duration_seconds`,
    help: 'Duration of refresh runs, by view and kind.',
    labelNames: ['view', 'kind'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers,
  });
  const rows = new Counter({
    name: `${P}refresh_rows_written_total`,
    help: 'Rows written to Redis by refresh runs, by view and kind.',
    labelNames: ['view', 'kind'],
    registers,
  });
  const failures = new Counter({
    name: `${P}refresh_failures_total`,
    help: 'Refresh runs that failed, by view and error code (E_* codes, SQLSTATEs, socket errors).',
    labelNames: ['view', 'code'],
    registers,
  });
  const events = new Counter({
    name: `${P}events_published_total`,
    help: 'Invalidation events published on {prefix}:events after refresh runs, by view.',
    labelNames: ['view'],
    registers,
  });
  const ops = new Counter({
    name: `${P}write_behind_ops_total`,
    help: 'Write-behind ops handled, by sink and outcome (applied, duplicate, failed: refused by the database, rejected: bad job).',
    labelNames: ['sink', 'outcome'],
    registers,
  });
  const batches = new Histogram({
    name: `${P}write_behind_batch_duration_seconds`,
    help: 'Time to commit one write-behind batch (one Postgres transaction), by outcome (committed, given_back).',
    labelNames: ['outcome'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const ticks = new Counter({
    name: `${P}scheduler_ticks_total`,
    help: 'Cron ticks seen by this daemon, by view and outcome (enqueued, claimed: another daemon won it, failed).',
    labelNames: ['view', 'outcome'],
    registers,
  });

  const viewNames = () => [...options.definitions.views.keys()];
  // One Redis round trip per scrape for every view's metadata, shared by the three gauges below.
  let metaRead: Promise<Map<string, Record<string, string | null>>> | undefined;
  function readMeta(): Promise<Map<string, Record<string, string | null>>> {
    metaRead ??= (async () => {
      const names = viewNames();
      const pipeline = options.views.pipeline();
      for (const name of names)
        pipeline.hmget(viewKeys(options.prefix, name).meta, 'refreshed_at', 'rows', 'version');
      const replies = (await pipeline.exec()) ?? [];
      const result = new Map<string, Record<string, string | null>>();
      names.forEach((name, i) => {
        const [refreshedAt = null, rowCount = null, version = null] = (replies[i]?.[1] ?? []) as (
          | string
          | null
        )[];
        result.set(name, { refreshedAt, rows: rowCount, version });
      });
      return result;
    })().finally(() => {
      setImmediate(() => {
        metaRead = undefined;
      });
    });
    return metaRead;
  }

  new Gauge({
    name: `${P}view_last_success_timestamp_seconds`,
    help: 'Unix time of the last successful refresh of the view (any kind, any daemon); alert on time() minus this.',
    labelNames: ['view'],
    registers,
    async collect() {
      this.reset();
      for (const [view, meta] of await readMeta()) {
        if (meta.refreshedAt) this.set({ view }, Date.parse(meta.refreshedAt) / 1000);
      }
    },
  });
  new Gauge({
    name: `${P}view_rows`,
    help: 'Rows of the last full rebuild of the view.',
    labelNames: ['view'],
    registers,
    async collect() {
      this.reset();
      for (const [view, meta] of await readMeta())
        if (meta.rows !== null) this.set({ view }, Number(meta.rows));
    },
  });
  new Gauge({
    name: `${P}view_version`,
    help: 'Version of the view: one more after every change.',
    labelNames: ['view'],
    registers,
    async collect() {
      this.reset();
      for (const [view, meta] of await readMeta()) this.set({ view }, Number(meta.version ?? 0));
    },
  });
  new Gauge({
    name: `${P}view_memory_bytes`,
    help: 'Estimated Redis memory of the view: MEMORY USAGE of a bounded sample of its keys, extrapolated.',
    labelNames: ['view'],
    registers,
    collect() {
      this.reset();
      for (const [view, bytes] of options.memory()) this.set({ view }, bytes);
    },
  });
  if (options.replica) {
    const replica = options.replica;
    // Both gauges of one scrape share one status read (two small queries).
    let latest: { at: number; status: ReturnType<ReadReplica['status']> } | undefined;
    const status = () => {
      if (!latest || Date.now() - latest.at > 1000) latest = { at: Date.now(), status: replica.status() };
      return latest.status;
    };
    new Gauge({
      name: `${P}replica_up`,
      help: '1 when the read replica answers as a standby (streaming or paused), else 0: full rebuilds then read the primary.',
      registers,
      async collect() {
        const { state } = await status();
        this.set(state === 'streaming' || state === 'paused' ? 1 : 0);
      },
    });
    new Gauge({
      name: `${P}replica_lag_bytes`,
      help: 'WAL bytes the primary has written that the read replica has not replayed (NaN while it does not answer).',
      registers,
      async collect() {
        const { lag_bytes } = await status();
        this.set(lag_bytes ?? Number.NaN);
      },
    });
  }
  new Gauge({
    name: `${P}queue_jobs`,
    help: 'Jobs in the BullMQ queue, by queue and state.',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      this.reset();
      for (const [queue, handle] of Object.entries(options.queues)) {
        const counts = await handle.getJobCounts(...QUEUE_STATES);
        for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0);
      }
    },
  });
  new Gauge({
    name: `${P}write_behind_oldest_op_age_seconds`,
    help: 'Age of the oldest write-behind job still waiting (0 when none): the write-behind lag.',
    registers,
    async collect() {
      const [oldest] = await options.writeBehindQueue.getJobs(['wait'], 0, 0, true);
      this.set(oldest ? Math.max(0, (Date.now() - oldest.timestamp) / 1000) : 0);
    },
  });
  new Gauge({
    name: `${P}refresh_backlog_size`,
    help: 'Views (and keys of views) committed write-behind ops still have to refresh.',
    registers,
    async collect() {
      this.set(await options.queue.zcard(refreshBacklogKey(options.prefix)));
    },
  });

  // The client counters live in Redis, summed over every client: export them as the counters they are.
  const clientFields = ['hits', 'misses', 'stale_served', 'l1_hits', 'loader_calls', 'errors'] as const;
  let clientRead: ReturnType<typeof readClientTotals> | undefined;
  for (const field of clientFields) {
    new Counter({
      name: `${P}client_${field}_total`,
      help: `Client library ${field.replace('_', ' ')} summed over every client ({prefix}:client:stats).`,
      registers,
      async collect() {
        clientRead ??= readClientTotals(options.views, options.prefix).finally(() =>
          setImmediate(() => {
            clientRead = undefined;
          }),
        );
        const totals = await clientRead;
        this.reset();
        this.inc(totals[field]);
      },
    });
  }

  const capture = registerCaptureMetrics(register, options.db);

  return {
    register,
    capture,
    refresh: {
      finished(run) {
        runs.inc({ view: run.view, kind: run.kind, trigger: run.trigger, outcome: 'done' });
        duration.observe({ view: run.view, kind: run.kind }, run.seconds);
        rows.inc({ view: run.view, kind: run.kind }, run.rows);
        if (run.kind !== 'chunk') events.inc({ view: run.view });
      },
      failed(run) {
        runs.inc({ view: run.view, kind: run.kind, trigger: run.trigger, outcome: 'failed' });
        duration.observe({ view: run.view, kind: run.kind }, run.seconds);
        failures.inc({ view: run.view, code: run.code });
      },
    },
    writeBehind: {
      rejected(sink, count) {
        ops.inc({ sink, outcome: 'rejected' }, count);
      },
      committed(seconds, bySink) {
        batches.observe({ outcome: 'committed' }, seconds);
        for (const [sink, counts] of bySink) {
          ops.inc({ sink, outcome: 'applied' }, counts.applied);
          ops.inc({ sink, outcome: 'duplicate' }, counts.duplicates);
          ops.inc({ sink, outcome: 'failed' }, counts.failed);
        }
      },
      givenBack(seconds) {
        batches.observe({ outcome: 'given_back' }, seconds);
      },
    },
    tick(view, outcome) {
      ticks.inc({ view, outcome });
    },
  };
}
