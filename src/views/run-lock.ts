import type { ChainableCommander } from 'ioredis';
import type { RedisConnection } from '../redis/connections.ts';
import { eventsKey, runKeys, viewKeys } from '../redis/keys.ts';
import type { Placement } from '../redis/placement.ts';
import type { Scripts } from '../redis/scripts.ts';
import type { ViewDefinition } from './define-view.ts';
import { MAX_REASON } from './run-history.ts';
import { runSpacingMs } from './run-spacing.ts';
import type { Busy } from './run-types.ts';
import type { WriteSummary } from './writers/shape-writer.ts';
import { viewSlots } from './writers/view-slots.ts';

/**
 * The run-lock protocol shared by every daemon: a run of one or more (view, params) identities takes
 * each identity's lock (refused while another run holds it or its coalescing window is open) in
 * take-locks.lua (one call per hash slot of the locks: one call on one server), then a sequence
 * number in take-seq.lua, keeps the locks alive while it lasts, and ends in one script:
 * finish-run.lua (version, metadata, event, windows, release) or fail-run.lua (reason, release).
 *
 * On a Redis Cluster the locks of a run's identities, the view's metadata and the events stream are
 * in different slots, so the end is split too: finish-run.lua without the stream, the stream entry,
 * then release-locks.lua per slot (an identity's lock and window share a slot). Each lock is
 * still taken and released atomically, which is what coalescing needs (two runs of one identity
 * never hold its lock at once, and a request arriving while it is held is re-queued); the sequence
 * is still taken before the query starts. What is lost is only the all-at-once of a multi-identity
 * run, which no guarantee relies on, and the stream entry's atomicity with the version bump (the
 * pub/sub event is still published by the script).
 */
export interface RunLock {
  /** Takes the locks of `identities` that are free; the taken ones share one new sequence (0: none). */
  acquire(
    view: ViewDefinition,
    identities: string[],
    token: string,
    ttlMs: number,
    ignoreWindow?: boolean,
  ): Promise<{ seq: number; states: (Busy | null)[] }>;
  /** Ends a successful run; returns the view's new version. */
  finish(
    view: ViewDefinition,
    identities: string[],
    token: string,
    run: { kind: 'full' | 'partial'; ms: number; summary: WriteSummary },
  ): Promise<number>;
  /**
   * Queues the same end on `pipeline` (a MULTI: atomic with what else it holds), for a change made
   * without a run lock (an append): no identities, no token.
   */
  queueFinish(
    pipeline: ChainableCommander,
    view: ViewDefinition,
    run: { kind: 'partial'; ms: number; summary: WriteSummary },
  ): void;
  /** Redis Cluster: a new sequence of `view` outside a run (appends take one per call). */
  sequence(view: ViewDefinition): Promise<number>;
  /** Records `reason` and releases the locks. Never throws: the run's own error is what matters. */
  fail(view: ViewDefinition, identities: string[], token: string, reason: string): Promise<void>;
  /** Extends the locks this token still owns. */
  extend(identities: string[], token: string, ttlMs: number): Promise<void>;
  /** Extends the locks every third of their lifetime until the returned function is called. */
  keepAlive(identities: string[], token: string, ttlMs: number): () => void;
}

/** How often a request that found its (view, params) running checks again. */
const LOCK_POLL_MS = 250;

/** take-locks.lua's per-identity states. */
const TAKEN = 0;
const LOCKED = 1;

export function createRunLock(options: {
  scripts: Scripts;
  prefix: string;
  eventsMaxLen: number;
  redis: RedisConnection;
  placement: Placement;
}): RunLock {
  const { scripts, prefix, eventsMaxLen, redis, placement } = options;
  const lockKeys = (identities: string[]) => identities.map((identity) => runKeys(prefix, identity).lock);
  /** An identity's lock and window, in the lock's slot (names unchanged on one server). */
  const lockPair = (identity: string) => {
    const run = runKeys(prefix, identity);
    return [run.lock, placement.inSlot(run.window, placement.slotOf(run.lock))];
  };
  const lockAndWindowKeys = (identities: string[]) => identities.flatMap(lockPair);
  const bySlot = (identities: string[]) => [
    ...placement.group(identities, (identity) => runKeys(prefix, identity).lock).values(),
  ];

  /** Cluster: releases the locks (and opens the windows, when `windowMs` > 0) slot by slot. */
  async function release(identities: string[], token: string, windowMs: number): Promise<void> {
    await Promise.all(
      bySlot(identities).map((group) =>
        scripts.run('vkReleaseLocks', lockAndWindowKeys(group), [token, windowMs]),
      ),
    );
  }

  /** A new sequence of `view`, recovered from its indexes (every slot's) when the metadata lost it. */
  async function takeSeq(view: ViewDefinition): Promise<number> {
    const { meta } = viewKeys(prefix, view.name);
    const seq = await scripts.run<number>('vkTakeSeq', [meta], ['']);
    if (seq !== -1) return seq;
    let top = 0;
    const slots = viewSlots(redis, prefix, view.name);
    for (const slot of await slots.all()) {
      const keys = slots.keysOf(slot);
      for (const index of [keys.keyIndex, keys.memberIndex]) {
        const last = await redis.zrevrange(index, 0, 0, 'WITHSCORES');
        if (last[1] !== undefined) top = Math.max(top, Number(last[1]));
      }
    }
    return scripts.run<number>('vkTakeSeq', [meta], [top]);
  }

  async function acquireLocks(
    view: ViewDefinition,
    identities: string[],
    token: string,
    ttlMs: number,
    ignoreWindow?: boolean,
  ): Promise<{ seq: number; states: (Busy | null)[] }> {
    const raw = new Map<string, [number, number]>();
    try {
      await Promise.all(
        bySlot(identities).map(async (group) => {
          const reply = await scripts.run<number[]>('vkTakeLocks', lockAndWindowKeys(group), [
            token,
            ttlMs,
            ignoreWindow ? '1' : '0',
          ]);
          for (const [i, identity] of group.entries()) raw.set(identity, [reply[2 * i]!, reply[2 * i + 1]!]);
        }),
      );
      const taken = identities.filter((identity) => raw.get(identity)?.[0] === TAKEN);
      const seq = taken.length > 0 ? await takeSeq(view) : 0;
      return { seq, states: identities.map((identity) => decode(...raw.get(identity)!)) };
    } catch (error) {
      // Locks taken before a (cluster) node failed are released now rather than left to expire.
      const taken = [...raw].filter(([, [state]]) => state === TAKEN).map(([identity]) => identity);
      await release(taken, token, 0).catch(() => undefined);
      throw error;
    }
  }

  function decode(state: number, ms: number): Busy | null {
    if (state === TAKEN) return null;
    // A coalescing window ends at a known time; a lock ends whenever its run does, so poll for it
    // rather than wait out its whole lifetime.
    const retryInMs = state === LOCKED ? Math.min(ms, LOCK_POLL_MS) : ms;
    return {
      status: 'busy',
      reason: state === LOCKED ? 'locked' : 'coalescing',
      retryInMs: Math.max(10, retryInMs),
    };
  }

  function finishCall(
    view: ViewDefinition,
    identities: string[],
    token: string,
    { kind, ms, summary }: { kind: 'full' | 'partial'; ms: number; summary: WriteSummary },
  ): [string[], (string | number)[]] {
    return [
      [viewKeys(prefix, view.name).meta, eventsKey(prefix), ...lockAndWindowKeys(identities)],
      [
        token,
        runSpacingMs(view.coalesceMs, ms),
        eventsKey(prefix),
        new Date().toISOString(),
        ms,
        kind === 'full' ? summary.rows : '',
        summary.changedKeys === null ? 'null' : JSON.stringify(summary.changedKeys),
        view.name,
        eventsMaxLen,
        kind,
      ],
    ];
  }

  return {
    acquire: acquireLocks,

    async finish(view, identities, token, run) {
      if (!placement.cluster)
        return scripts.run<number>('vkFinishRun', ...finishCall(view, identities, token, run));
      const [keys, args] = finishCall(view, [], token, run);
      const [version, event] = await scripts.run<[number, string]>('vkFinishRun', [keys[0]!], args);
      await redis.xadd(eventsKey(prefix), 'MAXLEN', '~', eventsMaxLen, '*', 'event', event);
      await release(identities, token, runSpacingMs(view.coalesceMs, run.ms));
      return version;
    },

    queueFinish(pipeline, view, run) {
      // A cluster MULTI cannot span the metadata and the stream: callers use finish() there.
      if (placement.cluster)
        throw new Error('queueFinish is not available on a Redis Cluster; call finish()');
      scripts.queue(pipeline, 'vkFinishRun', ...finishCall(view, [], '', run));
    },

    sequence: takeSeq,

    async fail(view, identities, token, reason) {
      const keys = viewKeys(prefix, view.name);
      const cluster = placement.cluster;
      await scripts
        .run(
          'vkFailRun',
          [keys.meta, ...(cluster ? [] : lockKeys(identities))],
          [token, reason.slice(0, MAX_REASON), new Date().toISOString()],
        )
        .catch(() => undefined);
      if (cluster) await release(identities, token, 0).catch(() => undefined);
    },

    async extend(identities, token, ttlMs) {
      await Promise.all(
        bySlot(identities).map((group) => scripts.run('vkExtendLock', lockKeys(group), [token, ttlMs])),
      );
    },

    keepAlive(identities, token, ttlMs) {
      const groups = bySlot(identities).map(lockKeys);
      const timer = setInterval(() => {
        for (const locks of groups) scripts.run('vkExtendLock', locks, [token, ttlMs]).catch(() => undefined);
      }, ttlMs / 3);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
