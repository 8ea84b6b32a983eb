import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import { insertRefreshRun } from '../db/refresh-runs.ts';
import type { ViewkeeperDatabase } from '../db/schema.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RunOptions } from './run-types.ts';

/** A run as the history records it. */
export interface RunRecord {
  view: string;
  kind: 'full' | 'chunk';
  seq: number;
  startedAt: Date;
  /**
   * The run's duration as measured by the engine, the same number its metadata and event carry:
   * the history does not read a second clock, so the two never disagree.
   */
  ms: number;
  options: RunOptions;
  rows: number | null;
  /** One-line failure reason; null for a run that succeeded. */
  error: string | null;
  /** `from..to` of a chunk. */
  chunk?: string;
}

export interface RunHistory {
  /** Best effort: a Postgres hiccup while recording must not fail a run that succeeded. */
  record(run: RunRecord): Promise<void>;
}

/** Failure reasons are kept to one short line in the history and the metadata. */
export const MAX_REASON = 500;

/** The run history in `viewkeeper.refresh_runs` (full rebuilds and chunks; partial runs are not recorded). */
export function createRunHistory(options: { db: Kysely<ViewkeeperDatabase>; logger: Logger }): RunHistory {
  const { db, logger } = options;
  const worker = `${hostname()}:${process.pid}`;
  return {
    async record(run) {
      try {
        await insertRefreshRun(db, {
          view: run.view,
          kind: run.kind,
          trigger: run.options.trigger ?? 'queue',
          slot: run.options.slot ?? null,
          chunk: run.chunk ?? null,
          seq: run.seq,
          started_at: run.startedAt,
          finished_at: new Date(run.startedAt.getTime() + run.ms),
          duration_ms: run.ms,
          rows: run.rows,
          status: run.error === null ? 'done' : 'failed',
          error: run.error === null ? null : run.error.slice(0, MAX_REASON),
          worker,
        });
      } catch (error) {
        logger.warn({ view: run.view, reason: describeError(error) }, 'could not record run history');
      }
    },
  };
}

/** When a run started, by the wall clock, and how long it has lasted, by the monotonic one. */
export interface RunClock {
  startedAt: Date;
  elapsedMs(): number;
}

export function startRunClock(): RunClock {
  const started = performance.now();
  return { startedAt: new Date(), elapsedMs: () => Math.round(performance.now() - started) };
}
