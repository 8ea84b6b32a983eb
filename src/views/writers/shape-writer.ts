import type { RedisConnection } from '../../redis/connections.ts';
import type { Scripts } from '../../redis/scripts.ts';
import type { ViewDefinition } from '../define-view.ts';

export type Row = Record<string, unknown>;

/** What one run writes: a full rebuild of the view, or the parts selected by one or more params. */
export type RunScope =
  | { kind: 'full' }
  | { kind: 'partial'; params: Record<string, unknown>[] }
  /** One key range of a chunked full rebuild: writes only; the orphan sweep runs once at the end. */
  | { kind: 'chunk' };

export interface WriterContext {
  redis: RedisConnection;
  scripts: Scripts;
  prefix: string;
  view: ViewDefinition;
  scope: RunScope;
  /** Sequence of this run (taken before its query's snapshot). */
  seq: number;
  /** Rows per Redis call. @defaultValue 500 */
  batchRows?: number;
  /** Redis calls outstanding while the query streams. @defaultValue 8 */
  maxInFlight?: number;
  /**
   * `hash` views, finishing a chunked rebuild that streamed no rows itself: the field list its chunks
   * wrote, recorded by the sweep.
   */
  fields?: string;
}

export interface WriteSummary {
  /** Rows the query returned. */
  rows: number;
  /** Keys changed by a partial refresh; `null` when the whole view was rebuilt. */
  changedKeys: string[] | null;
  /** Partial refreshes: the keys (`hash`, `value`) or members (`zset`) the query returned rows for. */
  written?: Set<string>;
  /** True when a newer full rebuild had already superseded this run: nothing was written. */
  superseded: boolean;
  /** `hash` views: the field list the rows were written with, comma-separated ('' when unknown). */
  fields?: string;
  /**
   * `list` and `set` views: one line per group that could not be written (an element over the
   * size limit); the group keeps what it held and the rest of the run completes.
   */
  failures?: string[];
  /** `list` views: params of groups a newer write touched while this run ran, to refresh again. */
  retry?: Record<string, unknown>[];
}

/** Receives the query's rows as they stream and puts them into Redis for one view shape. */
export interface ShapeWriter {
  /** Takes one row; returns a promise only when the writer wants the stream to wait (backpressure). */
  add(row: Row): Promise<void> | undefined;
  /** Flushes and completes the run (orphan sweep, swap or deletions). */
  finish(): Promise<WriteSummary>;
  /** Drops whatever the run built aside (temporary keys). Safe after a failure. */
  abort(): Promise<void>;
}

export const WRITER_DEFAULTS = { batchRows: 500, maxInFlight: 8 } as const;

/** Columns of `row` that the templates do not use, in row order. */
export function remainingColumns(row: Row, used: string[]): string[] {
  return Object.keys(row).filter((column) => !used.includes(column));
}
