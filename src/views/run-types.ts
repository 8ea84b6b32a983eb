import type { KeyRange } from './define-view.ts';

export interface RunOptions {
  signal?: AbortSignal;
  /** What started the run, for the history: `queue`, `schedule`, `catch-up`, … @defaultValue `queue` */
  trigger?: string;
  /** The cron slot a scheduled run belongs to. */
  slot?: Date;
  /** Start even inside the coalescing window (scheduled runs are paced by their schedule). */
  ignoreWindow?: boolean;
}

export type Busy = { status: 'busy'; reason: 'locked' | 'coalescing'; retryInMs: number };

export type Done = {
  status: 'done';
  view: string;
  kind: 'full' | 'partial';
  rows: number;
  keys: string[] | null;
  version: number;
  ms: number;
  superseded: boolean;
  /** `list` and `set` views: one line per group the run could not write; the rest completed. */
  failed?: string[];
  /** Which Postgres the run's query read; present when a read replica is configured. */
  source?: 'primary' | 'replica';
};

/** A finished run, or Busy: another run of the same (view, params) holds the lock or its window is open. */
export type RefreshOutcome = Done | Busy;

/** A started chunked rebuild: the lock, its sequence and the key ranges to run as separate jobs. */
export interface ChunkedRun {
  status: 'started';
  seq: number;
  token: string;
  startedAt: string;
  ranges: KeyRange[];
}
