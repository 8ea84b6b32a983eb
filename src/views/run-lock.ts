import { eventsKey, runKeys, viewKeys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import type { ViewDefinition } from './define-view.ts';
import { MAX_REASON } from './run-history.ts';
import { runSpacingMs } from './run-spacing.ts';
import type { Busy } from './run-types.ts';
import type { WriteSummary } from './writers/shape-writer.ts';

/**
 * The run-lock protocol shared by every daemon: a run of one or more (view, params) identities takes
 * each identity's lock (refused while another run holds it or its coalescing window is open) and a
 * sequence number in acquire-run.lua, keeps the locks alive while it lasts, and ends in one script:
 * finish-run.lua (version, metadata, event, windows, release) or fail-run.lua (reason, release).
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
  /** Records `reason` and releases the locks. Never throws: the run's own error is what matters. */
  fail(view: ViewDefinition, identities: string[], token: string, reason: string): Promise<void>;
  /** Extends the locks this token still owns. */
  extend(identities: string[], token: string, ttlMs: number): Promise<void>;
  /** Extends the locks every third of their lifetime until the returned function is called. */
  keepAlive(identities: string[], token: string, ttlMs: number): () => void;
}

/** How often a request that found its (view, params) running checks again. */
const LOCK_POLL_MS = 250;

/** acquire-run.lua's per-identity states. */
const TAKEN = 0;
const LOCKED = 1;

export function createRunLock(options: { scripts: Scripts; prefix: string; eventsMaxLen: number }): RunLock {
  const { scripts, prefix, eventsMaxLen } = options;
  const lockKeys = (identities: string[]) => identities.map((identity) => runKeys(prefix, identity).lock);
  const lockAndWindowKeys = (identities: string[]) =>
    identities.flatMap((identity) => {
      const run = runKeys(prefix, identity);
      return [run.lock, run.window];
    });

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

  return {
    async acquire(view, identities, token, ttlMs, ignoreWindow) {
      const { meta, keyIndex, memberIndex } = viewKeys(prefix, view.name);
      const reply = await scripts.run<number[]>(
        'vkAcquireRun',
        [meta, keyIndex, memberIndex, ...lockAndWindowKeys(identities)],
        [token, ttlMs, ignoreWindow ? '1' : '0'],
      );
      const states = identities.map((_, i) => decode(reply[1 + 2 * i]!, reply[2 + 2 * i]!));
      return { seq: reply[0]!, states };
    },

    finish(view, identities, token, { kind, ms, summary }) {
      const keys = viewKeys(prefix, view.name);
      return scripts.run<number>(
        'vkFinishRun',
        [keys.meta, eventsKey(prefix), ...lockAndWindowKeys(identities)],
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
      );
    },

    async fail(view, identities, token, reason) {
      const keys = viewKeys(prefix, view.name);
      await scripts
        .run(
          'vkFailRun',
          [keys.meta, ...lockKeys(identities)],
          [token, reason.slice(0, MAX_REASON), new Date().toISOString()],
        )
        .catch(() => undefined);
    },

    async extend(identities, token, ttlMs) {
      await scripts.run('vkExtendLock', lockKeys(identities), [token, ttlMs]);
    },

    keepAlive(identities, token, ttlMs) {
      const locks = lockKeys(identities);
      const timer = setInterval(() => {
        scripts.run('vkExtendLock', locks, [token, ttlMs]).catch(() => undefined);
      }, ttlMs / 3);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
