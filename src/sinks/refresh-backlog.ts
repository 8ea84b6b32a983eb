import { describeError } from '../errors.ts';
import { createSleeper } from '../lib/sleeper.ts';
import { createSlots } from '../lib/slots.ts';
import { backoffMs } from '../lib/transient.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { refreshBacklogKey, refreshReceiptKeys } from '../redis/keys.ts';
import { defineScripts } from '../redis/lua.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { validateParams } from '../views/params.ts';
import type { RefreshEngine, RefreshOutcome } from '../views/refresh-engine.ts';
import type { RefreshTargetRequest } from './commit-batch.ts';

// The refreshes write-behind owes, kept durably in the queue Redis until they ran: a sorted set of
// (view, params) scored by priority level and due time. A batch marks its targets BEFORE its jobs
// complete, so a daemon killed between commit and refresh leaves the debt behind for the next one;
// marking an entry that is already there just keeps it (that is the coalescing: 500 votes on one
// post = one refresh). Running entries are leased and released only if nobody marked them again
// meanwhile, so a write committed while its view was refreshing is never missed. When refreshes
// cannot keep up, the views a sink lists first are refreshed first.

/** Built in redis/keys.ts; re-exported for the tests and benchmarks that read the backlog. */
export { refreshBacklogKey };

export interface RefreshBacklogOptions {
  /** Queue Redis (persistent, noeviction); owned by the caller. */
  redis: RedisConnection;
  prefix: string;
  views: (name: string) => ViewDefinition | undefined;
  engine: RefreshEngine;
  logger: Logger;
  /** Refreshes run at once. @defaultValue 8 */
  concurrency?: number;
  /** How long a claimed entry is ours before another daemon may take it. @defaultValue 15000 */
  leaseMs?: number;
  /** Longest sleep between looks at the backlog when idle. @defaultValue 250 */
  pollMs?: number;
}

export interface RefreshBacklog {
  /**
   * Adds targets (params validated against each view) durably. Resolves when Redis has them, with
   * the mark's sequence number (0 when there was nothing to mark) and the entries marked: their
   * refreshes are written once each entry's pending receipt is gone or above `seq`
   * (client/receipts.ts).
   */
  mark(targets: RefreshTargetRequest[]): Promise<{ seq: number; members: string[] }>;
  /** Starts running due entries. */
  start(): void;
  /**
   * While the write path is saturated, run one refresh at a time: commits go first, and the owed
   * refreshes (durable, coalescing per key) catch up once the burst is over.
   */
  throttle(saturated: boolean): void;
  /** Stops claiming and waits up to `timeoutMs` for running refreshes. Idempotent. */
  close(timeoutMs: number): Promise<void>;
}

export const BACKLOG_DEFAULTS = { concurrency: 8, leaseMs: 15_000, pollMs: 250 } as const;
/** Entries claimed per free refresh task (the most one batched run of a view takes). */
const BATCH_PER_TASK = 500;
/** … while the write path is saturated: small batches, one at a time, so commits keep the CPU. */
const SATURATED_BATCH = 50;
/** Priority levels (a sink's first 9 refresh targets get their own; the rest share the last). */
const LEVELS = 10;
const LEVEL = 1e13;

const BACKLOG_SCRIPTS = defineScripts({
  vkMarkRefreshes: { file: new URL('./scripts/mark-refreshes.lua', import.meta.url), keys: 5 },
  vkClaimRefreshes: { file: new URL('./scripts/claim-refreshes.lua', import.meta.url), keys: 4 },
  vkReleaseRefresh: { file: new URL('./scripts/release-refresh.lua', import.meta.url), keys: 4 },
});

/** `[view, params]` with params in the view's declared order: one member per (view, params). */
function memberOf(view: string, params: Record<string, unknown> | undefined): string {
  return JSON.stringify([view, params ?? null]);
}

export function createRefreshBacklog(options: RefreshBacklogOptions): RefreshBacklog {
  const { redis, engine } = options;
  const key = refreshBacklogKey(options.prefix);
  const receipts = refreshReceiptKeys(options.prefix);
  const markKeys = [key, receipts.seq, receipts.pending, receipts.claimed, receipts.next];
  const claimKeys = [key, receipts.seq, receipts.claimed, receipts.next];
  const releaseKeys = [key, receipts.pending, receipts.claimed, receipts.next];
  const logger = options.logger.child({ component: 'write-behind-refresh' });
  const fullConcurrency = options.concurrency ?? BACKLOG_DEFAULTS.concurrency;
  const leaseMs = options.leaseMs ?? BACKLOG_DEFAULTS.leaseMs;
  const pollMs = options.pollMs ?? BACKLOG_DEFAULTS.pollMs;
  const scripts = BACKLOG_SCRIPTS.load(redis);
  const failures = new Map<string, number>();
  const running = new Set<Promise<void>>();
  // While commits saturate the worker: one small batch at a time (throttle()).
  let saturated = false;
  const tasks = () => (saturated ? 1 : fullConcurrency);
  /** Bounds the one-by-one refreshes (views without batchPartials) across tasks. */
  const singles = createSlots(fullConcurrency);
  let closed = false;
  let loop: Promise<void> | undefined;
  const idle = createSleeper();
  let closing: Promise<void> | undefined;

  /** Moves a claimed entry to `at`, keeping its level (no-op if it was released meanwhile). */
  async function reschedule(member: string, lease: string, at: number): Promise<void> {
    const level = Math.floor(Number(lease) / LEVEL);
    await redis.zadd(key, 'XX', level * LEVEL + at, member);
  }

  interface Claimed {
    member: string;
    lease: string;
    view: string;
    params: Record<string, unknown> | undefined;
  }

  async function failed(entry: Claimed, error: unknown): Promise<void> {
    const attempt = (failures.get(entry.member) ?? 0) + 1;
    failures.set(entry.member, attempt);
    const retryInMs = Math.min(60_000, backoffMs(attempt));
    logger.warn(
      { view: entry.view, params: entry.params, attempt, retryInMs, reason: describeError(error) },
      'refresh after write failed, will retry',
    );
    await reschedule(entry.member, entry.lease, Date.now() + retryInMs).catch(() => undefined);
  }

  async function settle(entry: Claimed, outcome: RefreshOutcome): Promise<void> {
    if (outcome.status === 'busy')
      return reschedule(entry.member, entry.lease, Date.now() + outcome.retryInMs);
    failures.delete(entry.member);
    await scripts.run('vkReleaseRefresh', releaseKeys, [entry.lease, entry.member]);
  }

  /**
   * Runs the claimed entries of one view: its partial refreshes as one batch (refreshBatch) when the
   * view declares batchPartials; anything else (a full refresh, partials of other views) one by one.
   */
  async function runView(name: string, entries: Claimed[]): Promise<void> {
    const view = options.views(name);
    if (!view) {
      logger.warn({ view: name }, 'refresh owed to a view that no longer exists: dropped');
      await Promise.all(
        entries.map((entry) => scripts.run('vkReleaseRefresh', releaseKeys, [entry.lease, entry.member])),
      );
      return;
    }
    // One batched run for a view that allows it; otherwise each entry on its own, failing alone.
    const batched = view.batchColumn ? entries.filter((entry) => entry.params !== undefined) : [];
    const inBatch = new Set(batched);
    const single = entries.filter((entry) => !inBatch.has(entry));
    if (batched.length > 0) {
      try {
        const outcomes = await engine.refreshBatch(
          view,
          batched.map((entry) => entry.params!),
          { trigger: 'write-behind' },
        );
        await Promise.all(batched.map((entry, i) => settle(entry, outcomes[i]!)));
      } catch (error) {
        await Promise.all(batched.map((entry) => failed(entry, error)));
      }
    }
    await Promise.all(
      single.map((entry) =>
        singles.run(async () => {
          try {
            await settle(entry, await engine.refresh(view, entry.params, { trigger: 'write-behind' }));
          } catch (error) {
            await failed(entry, error);
          }
        }),
      ),
    );
  }

  /** A claimed entry, or undefined (released, with a warning) when it is not one mark() wrote. */
  function parse(member: string, lease: string): Claimed | undefined {
    try {
      const [view, params] = JSON.parse(member) as [unknown, unknown];
      if (typeof view === 'string' && (params === null || typeof params === 'object')) {
        return { member, lease, view, params: (params as Record<string, unknown> | null) ?? undefined };
      }
    } catch {}
    logger.warn({ member: member.slice(0, 200) }, 'malformed refresh backlog entry: dropped');
    scripts.run('vkReleaseRefresh', releaseKeys, [lease, member]).catch(() => undefined);
    return undefined;
  }

  async function main(): Promise<void> {
    while (!closed) {
      try {
        if (running.size >= tasks()) {
          await Promise.race(running);
          continue;
        }
        // Each task takes a view's due entries as one batch: claim enough to fill the free tasks.
        const reply = await scripts.run<string[]>('vkClaimRefreshes', claimKeys, [
          Date.now(),
          leaseMs,
          (tasks() - running.size) * (saturated ? SATURATED_BATCH : BATCH_PER_TASK),
          LEVELS,
        ]);
        if (reply[0] === '') {
          const dueIn = Number(reply[1]);
          if (!closed) await idle.sleep(dueIn < 0 ? pollMs : Math.max(1, Math.min(pollMs, dueIn)));
          continue;
        }
        const byView = new Map<string, Claimed[]>();
        for (let i = 0; i < reply.length; i += 2) {
          const entry = parse(reply[i]!, reply[i + 1]!);
          if (!entry) continue;
          const group = byView.get(entry.view) ?? [];
          group.push(entry);
          byView.set(entry.view, group);
        }
        for (const [name, entries] of byView) {
          const task = runView(name, entries).finally(() => running.delete(task));
          running.add(task);
        }
      } catch (error) {
        logger.warn({ reason: describeError(error) }, 'refresh backlog unavailable, retrying');
        if (!closed) await idle.sleep(1000);
      }
    }
  }

  /** Level and member of each target, in mark()'s flat form. */
  function entriesOf(targets: RefreshTargetRequest[]): (string | number)[] {
    const entries: (string | number)[] = [];
    for (const target of targets) {
      const view = options.views(target.view);
      if (!view) {
        logger.warn({ view: target.view }, 'sink refreshes a view that does not exist: skipped');
        continue;
      }
      const level = Math.min(LEVELS - 1, Math.max(0, target.priority));
      if (target.params === undefined) {
        entries.push(level, memberOf(view.name, undefined));
        continue;
      }
      try {
        entries.push(level, memberOf(view.name, validateParams(view.name, view.params, target.params)));
      } catch (error) {
        // A sink whose refresh declaration produces bad params: refresh the whole view instead.
        logger.warn(
          { view: view.name, reason: describeError(error) },
          'bad refresh params from sink: full refresh',
        );
        entries.push(level, memberOf(view.name, undefined));
      }
    }
    return entries;
  }

  return {
    async mark(targets) {
      const entries = entriesOf(targets);
      const now = Date.now();
      let seq = 0;
      for (let start = 0; start < entries.length; start += 2000) {
        seq = await scripts.run<number>('vkMarkRefreshes', markKeys, [
          now,
          ...entries.slice(start, start + 2000),
        ]);
      }
      if (entries.length > 0) idle.wake();
      return { seq, members: [...new Set(entries.filter((_, i) => i % 2 === 1) as string[])] };
    },
    start() {
      loop ??= main();
    },
    throttle(isSaturated) {
      saturated = isSaturated;
    },
    close(timeoutMs) {
      closing ??= (async () => {
        closed = true;
        idle.wake();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeoutMs);
        });
        await Promise.race([Promise.all([loop, ...running]), timeout]);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
