import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import nodeCron, { type ScheduledTask } from 'node-cron';
import { refreshDedupId } from '../contract.ts';
import { describeError } from '../errors.ts';
import { previousSlot, slotIntervalMs } from '../lib/cron.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { tickClaimKey, viewKeys } from '../redis/keys.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import type { Registry } from '../views/registry.ts';

export interface SchedulerOptions {
  registry: Registry;
  /** The refresh queue scheduled rebuilds are added to. */
  queue: Queue;
  /** Where tick claims live (the queue Redis: it must not evict). */
  claims: RedisConnection;
  /** Where view metadata lives (the views Redis). */
  views: RedisConnection;
  prefix: string;
  logger: Logger;
  /**
   * Told about every cron tick of every view: `enqueued` (this daemon won the tick), `claimed`
   * (another daemon did) or `failed`. Must not throw.
   */
  onTick?: (view: string, outcome: 'enqueued' | 'claimed' | 'failed') => void;
}

export interface Scheduler {
  /** Enqueues catch-up rebuilds for missed slots, then starts the cron ticks. */
  start(): Promise<void>;
  /** Stops the ticks. Idempotent. */
  stop(): void;
}

// A claimed slot is remembered long enough that no daemon, however late its tick, can claim it again.
const CLAIM_TTL_MS = 24 * 3600 * 1000;

/** Job ids of scheduled runs: BullMQ ids may not contain ':' nor be integers. */
export function scheduledJobId(kind: 'cron' | 'catchup', view: string, slot: Date): string {
  return `${kind}|${view}|${slot.getTime()}`;
}

/** Reads back what `scheduledJobId` encoded, for the worker (trigger and slot of a run). */
export function parseScheduledJobId(
  id: string | undefined,
): { trigger: 'schedule' | 'catch-up'; slot: Date } | undefined {
  const match = /^(cron|catchup)\|[a-z][a-z0-9_]*\|(\d+)$/.exec(id ?? '');
  if (!match) return undefined;
  return { trigger: match[1] === 'cron' ? 'schedule' : 'catch-up', slot: new Date(Number(match[2])) };
}

/**
 * Cron rebuilds, once per tick across any number of daemons. Every daemon runs node-cron; at each
 * tick the daemons race for a claim on (view, slot) — `SET NX` on a key derived from the slot
 * node-cron scheduled, never from the local clock — and only the winner enqueues. The job also
 * carries a slot-derived id and the view's full-refresh deduplication id, so a tick that finds the
 * previous rebuild still queued or running coalesces into at most one pending run.
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  const { registry, queue, claims, views, prefix } = options;
  const logger = options.logger.child({ component: 'scheduler' });
  const tasks: ScheduledTask[] = [];
  const owner = `${hostname()}:${process.pid}`;
  const scheduled = [...registry.views.values()].filter((view) => view.schedule);

  const claimKey = (kind: 'cron' | 'catchup', view: ViewDefinition, slot: Date) =>
    tickClaimKey(prefix, kind, view.name, slot);

  async function claim(kind: 'cron' | 'catchup', view: ViewDefinition, slot: Date): Promise<boolean> {
    return (await claims.set(claimKey(kind, view, slot), owner, 'PX', CLAIM_TTL_MS, 'NX')) === 'OK';
  }

  async function enqueue(kind: 'cron' | 'catchup', view: ViewDefinition, slot: Date): Promise<void> {
    await queue.add(
      view.name,
      { reason: kind === 'cron' ? 'schedule' : 'catch-up' },
      {
        jobId: scheduledJobId(kind, view.name, slot),
        deduplication: { id: refreshDedupId(view.name), keepLastIfActive: true },
      },
    );
  }

  async function warnIfOverrunning(view: ViewDefinition, slot: Date): Promise<void> {
    const last = Number(await views.hget(viewKeys(prefix, view.name).meta, 'duration_ms'));
    const interval = slotIntervalMs(view.schedule!.cron, view.schedule!.timezone, slot);
    if (last > interval) {
      logger.warn(
        { view: view.name, lastDurationMs: last, intervalMs: interval },
        'view is scheduled more often than it can finish; ticks coalesce into one pending run',
      );
    }
  }

  async function tick(view: ViewDefinition, slot: Date): Promise<void> {
    try {
      if (!(await claim('cron', view, slot))) {
        options.onTick?.(view.name, 'claimed');
        return;
      }
      await enqueue('cron', view, slot);
      options.onTick?.(view.name, 'enqueued');
      logger.debug({ view: view.name, slot: slot.toISOString() }, 'scheduled rebuild enqueued');
      await warnIfOverrunning(view, slot);
    } catch (error) {
      options.onTick?.(view.name, 'failed');
      logger.error(
        { view: view.name, slot: slot.toISOString(), reason: describeError(error) },
        'scheduled tick failed',
      );
    }
  }

  /**
   * A view whose last successful full rebuild is older than its previous slot missed at least one
   * tick (every daemon was down, or it never ran): rebuild it once — not once per missed slot. The
   * claim is keyed by that previous slot, so daemons starting together enqueue one catch-up.
   */
  async function catchUp(view: ViewDefinition): Promise<void> {
    const { cron, timezone } = view.schedule!;
    const slot = previousSlot(cron, timezone);
    const last = await views.hget(viewKeys(prefix, view.name).meta, 'full_refreshed_at');
    if (last && new Date(last).getTime() >= slot.getTime()) return;
    // Daemons that start "together" may straddle a slot boundary and see different previous slots.
    // The slot was not missed if a running daemon already claimed its tick, and the fleet is already
    // catching up if a catch-up was claimed for the slot before.
    const before = previousSlot(cron, timezone, new Date(slot.getTime() - 1));
    const [ticked, caughtUp] = await claims.mget(
      claimKey('cron', view, slot),
      claimKey('catchup', view, before),
    );
    if (ticked || caughtUp) return;
    if (!(await claim('catchup', view, slot))) return;
    await enqueue('catchup', view, slot);
    logger.info(
      { view: view.name, missedSlot: slot.toISOString(), lastRebuild: last ?? null },
      'catch-up rebuild enqueued',
    );
  }

  let stopped = false;
  return {
    async start() {
      for (const view of scheduled) {
        if (view.catchUp) await catchUp(view);
      }
      for (const view of scheduled) {
        const { cron, timezone } = view.schedule!;
        const task = nodeCron.schedule(cron, (context) => tick(view, context.date), {
          name: `viewkeeper:${view.name}`,
          timezone,
          // Ticks must not keep a stopping process alive; the daemon's own lifetime does that.
          unref: true,
        });
        tasks.push(task);
      }
      if (scheduled.length > 0) {
        logger.info(
          { views: scheduled.map((view) => `${view.name} (${view.schedule!.cron})`) },
          'scheduler started',
        );
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      for (const task of tasks) task.destroy();
    },
  };
}
