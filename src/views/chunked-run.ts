import { randomUUID } from 'node:crypto';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import type { Scripts } from '../redis/scripts.ts';
import type { KeyRange, ViewDefinition } from './define-view.ts';
import { refreshIdentity } from './params.ts';
import type { ReadRoute } from './read-route.ts';
import type { RowSource } from './row-source.ts';
import { type RunHistory, startRunClock } from './run-history.ts';
import type { RunLock } from './run-lock.ts';
import type { Busy, ChunkedRun, Done, RunOptions } from './run-types.ts';
import { createWriter } from './writers/create-writer.ts';

/**
 * The chunked-rebuild protocol: a full rebuild of a large per-row view split into key ranges that run
 * as separate jobs, on whichever daemons are free. `beginChunked` takes the full-rebuild lock and one
 * sequence for every chunk; each `runChunk` writes its range with that sequence (idempotent, so a
 * retried chunk just rewrites its rows); `finishChunked` sweeps the keys of vanished rows and bumps the
 * version once, after every chunk succeeded; `failChunked` records the failure and frees the lock.
 */
export interface ChunkedRuns {
  beginChunked(view: ViewDefinition, options?: RunOptions): Promise<ChunkedRun | Busy>;
  chunkRanges(view: ViewDefinition): Promise<KeyRange[]>;
  runChunk(
    view: ViewDefinition,
    run: { seq: number; token: string; range: KeyRange },
    options?: RunOptions,
  ): Promise<{ rows: number; fields: string }>;
  finishChunked(
    view: ViewDefinition,
    run: { seq: number; token: string; startedAt: string; rows: number; fields: string },
    options?: RunOptions,
  ): Promise<Done>;
  failChunked(view: ViewDefinition, run: { token: string }, reason: string): Promise<void>;
}

export interface ChunkedRunsOptions {
  redis: RedisConnection;
  scripts: Scripts;
  prefix: string;
  lock: RunLock;
  /** The primary's rows: the key span a rebuild is cut into. */
  rows: RowSource;
  /** Where a chunk's query reads (views/read-route.ts). */
  route(kind: 'chunk', view: string, signal?: AbortSignal): Promise<ReadRoute>;
  history: RunHistory;
  /** Lock lifetime of a chunked rebuild, extended by every chunk. */
  lockTtlMs: number;
  logger: Logger;
}

export function createChunkedRuns(options: ChunkedRunsOptions): ChunkedRuns {
  const { redis, scripts, prefix, lock, rows, route, history, lockTtlMs, logger } = options;
  // A chunked rebuild is a full rebuild: it holds the identity of the whole view.
  const wholeView = (view: ViewDefinition) => [refreshIdentity(view.name, undefined)];

  return {
    async beginChunked(view, runOptions = {}) {
      const token = randomUUID();
      const { seq, states } = await lock.acquire(
        view,
        wholeView(view),
        token,
        lockTtlMs,
        runOptions.ignoreWindow,
      );
      if (states[0]) return states[0];
      try {
        const ranges = await rows.chunkRanges(view);
        return { status: 'started', seq, token, startedAt: new Date().toISOString(), ranges };
      } catch (error) {
        await lock.fail(view, wholeView(view), token, describeError(error));
        throw error;
      }
    },

    chunkRanges: (view) => rows.chunkRanges(view),

    async runChunk(view, run, runOptions = {}) {
      const clock = startRunClock();
      // Every chunk proves the rebuild is alive; if the lock expired, another rebuild may run — the
      // sequence checks still keep the newer data.
      await lock.extend(wholeView(view), run.token, lockTtlMs);
      const writer = createWriter({ redis, scripts, prefix, view, scope: { kind: 'chunk' }, seq: run.seq });
      const chunk = `${run.range.from}..${run.range.to}`;
      const record = (outcome: { rows: number | null; error: string | null }) =>
        history.record({
          view: view.name,
          kind: 'chunk',
          seq: run.seq,
          startedAt: clock.startedAt,
          ms: clock.elapsedMs(),
          options: runOptions,
          chunk,
          ...outcome,
        });
      let explain = (error: unknown) => error;
      try {
        const read = await route('chunk', view.name, runOptions.signal);
        explain = read.explain;
        await read.rows.stream(view, writer, undefined, run.range, runOptions.signal);
        const summary = await writer.finish();
        await record({ rows: summary.rows, error: null });
        return { rows: summary.rows, fields: summary.fields ?? '' };
      } catch (caught) {
        const error = explain(caught);
        await writer.abort().catch(() => undefined);
        await record({ rows: null, error: describeError(error) });
        throw error;
      }
    },

    async finishChunked(view, run, runOptions = {}) {
      const startedAt = new Date(run.startedAt);
      const writer = createWriter({
        redis,
        scripts,
        prefix,
        view,
        scope: { kind: 'full' },
        seq: run.seq,
        fields: run.fields,
      });
      const summary = await writer.finish(); // nothing streamed: just the orphan sweep
      // The rebuild began in another job, maybe on another daemon: only the wall clock spans both.
      const ms = Date.now() - startedAt.getTime();
      const version = await lock.finish(view, wholeView(view), run.token, {
        kind: 'full',
        ms,
        summary: { ...summary, rows: run.rows },
      });
      await history.record({
        view: view.name,
        kind: 'full',
        seq: run.seq,
        startedAt,
        ms,
        options: runOptions,
        rows: run.rows,
        error: null,
      });
      logger.info({ view: view.name, rows: run.rows, ms, version, chunked: true }, 'refreshed');
      return {
        status: 'done',
        view: view.name,
        kind: 'full',
        rows: run.rows,
        keys: null,
        version,
        ms,
        superseded: false,
      };
    },

    async failChunked(view, run, reason) {
      await lock.fail(view, wholeView(view), run.token, reason);
    },
  };
}
