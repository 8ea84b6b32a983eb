import type { Queue } from 'bullmq';
import type { WriteBehindObserver } from '../queues/write-behind-worker.ts';
import type { RedisConnection } from '../redis/connections.ts';
import type { RefreshObserver } from '../views/observed-engine.ts';
import { readClientTotals } from './status-document.ts';

/** One point of the status page's time charts. */
export interface Sample {
  /** Unix ms. */
  t: number;
  /** Jobs by state in each queue. */
  queues: Record<string, { waiting: number; active: number; delayed: number; failed: number }>;
  /** Write-behind ops committed per second since the previous sample. */
  writeOpsPerSecond: number;
  /** Age of the oldest waiting write-behind job, seconds. */
  writeLagSeconds: number;
  /** Client hit rate over the reads counted since the previous sample; null when there were none. */
  hitRate: number | null;
}

/** A finished run, for the duration-over-time chart. */
export interface RunPoint {
  t: number;
  seconds: number;
  kind: string;
}

export interface HistoryOptions {
  queues: Record<string, Queue>;
  writeBehindQueue: Queue;
  views: RedisConnection;
  prefix: string;
  /** @defaultValue 5000 */
  intervalMs?: number;
  /** Samples kept (720 × 5 s = one hour). @defaultValue 720 */
  capacity?: number;
  /** Runs kept per view. @defaultValue 200 */
  runsPerView?: number;
}

export interface History {
  samples(): Sample[];
  runs(): Record<string, RunPoint[]>;
  refresh: RefreshObserver;
  writeBehind: WriteBehindObserver;
  start(): void;
  stop(): void;
}

/**
 * The status page's memory: queue depths, write-behind throughput and lag, and the client hit rate
 * sampled every few seconds into a bounded ring, plus each view's recent run durations. In-process
 * and lost on restart (Prometheus keeps the long history); it costs a few Redis calls per sample.
 */
export function createHistory(options: HistoryOptions): History {
  const intervalMs = options.intervalMs ?? 5000;
  const capacity = options.capacity ?? 720;
  const runsPerView = options.runsPerView ?? 200;
  const samples: Sample[] = [];
  const runs = new Map<string, RunPoint[]>();
  let committedOps = 0;
  let previous: { t: number; ops: number; hits: number; misses: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let sampling = false;

  async function sample(): Promise<void> {
    const t = Date.now();
    const queues: Sample['queues'] = {};
    for (const [name, queue] of Object.entries(options.queues)) {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
      queues[name] = {
        waiting: counts.waiting ?? 0,
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
      };
    }
    const [oldest] = await options.writeBehindQueue.getJobs(['wait'], 0, 0, true);
    const totals = await readClientTotals(options.views, options.prefix);
    const now = { t, ops: committedOps, hits: totals.hits, misses: totals.misses };
    const reads = previous ? now.hits - previous.hits + (now.misses - previous.misses) : 0;
    samples.push({
      t,
      queues,
      writeOpsPerSecond: previous ? ((now.ops - previous.ops) * 1000) / Math.max(1, t - previous.t) : 0,
      writeLagSeconds: oldest ? Math.max(0, (t - oldest.timestamp) / 1000) : 0,
      hitRate: previous && reads > 0 ? (now.hits - previous.hits) / reads : null,
    });
    if (samples.length > capacity) samples.shift();
    previous = now;
  }

  function tick(): void {
    if (sampling) return; // a slow Redis must not stack samples up
    sampling = true;
    sample()
      .catch(() => undefined) // a missed point is a gap in the chart, nothing more
      .finally(() => {
        sampling = false;
      });
  }

  const record = (view: string, point: RunPoint) => {
    const list = runs.get(view) ?? [];
    list.push(point);
    if (list.length > runsPerView) list.shift();
    runs.set(view, list);
  };

  return {
    samples: () => [...samples],
    runs: () => Object.fromEntries([...runs].map(([view, list]) => [view, [...list]])),
    refresh: {
      finished(run) {
        if (run.kind !== 'chunk') record(run.view, { t: Date.now(), seconds: run.seconds, kind: run.kind });
      },
      failed() {},
    },
    writeBehind: {
      rejected() {},
      committed(_seconds, bySink) {
        for (const counts of bySink.values()) committedOps += counts.applied + counts.duplicates;
      },
      givenBack() {},
    },
    start() {
      if (timer) return;
      tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
