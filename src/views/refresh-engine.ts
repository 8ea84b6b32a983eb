import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { type Insertable, type Kysely, sql } from 'kysely';
import type { Database, RefreshRunsTable } from '../db/schema.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import { eventsKey, runKeys, viewKeys } from '../redis/keys.ts';
import { loadScripts, type Scripts } from '../redis/scripts.ts';
import { createJsonWriter } from '../redis/writers/json-writer.ts';
import { createRowWriter } from '../redis/writers/row-writer.ts';
import type {
  Row,
  RunScope,
  ShapeWriter,
  WriterContext,
  WriteSummary,
} from '../redis/writers/shape-writer.ts';
import { createZsetWriter } from '../redis/writers/zset-writer.ts';
import type { KeyRange, ViewDefinition } from './define-view.ts';
import { refreshIdentity } from './params.ts';

export interface RefreshEngineOptions {
  /** Views bring their own database types; the run history table is viewkeeper's. */
  db: Kysely<Database>;
  /** The views Redis (not the queue Redis). */
  redis: Redis;
  prefix: string;
  logger: Logger;
  /** Rows fetched from the Postgres cursor per round trip. @defaultValue 2000 */
  chunkSize?: number;
  /** Lock lifetime; renewed every third of it while a run lasts. @defaultValue 30000 */
  lockTtlMs?: number;
  /** Lock lifetime of a chunked rebuild, extended by every chunk. @defaultValue 600000 */
  chunkedLockTtlMs?: number;
  /** Approximate length the events stream is capped at. @defaultValue 10000 */
  eventsMaxLen?: number;
}

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

export interface RefreshEngine {
  /**
   * Runs one refresh of `view`: full when `params` is undefined, else partial (params already
   * validated). Never runs concurrently with another run of the same (view, params), anywhere.
   */
  refresh(
    view: ViewDefinition,
    params?: Record<string, unknown>,
    options?: RunOptions,
  ): Promise<RefreshOutcome>;
  /**
   * Starts a full rebuild of a chunked per-row view: takes the lock and a sequence and splits the
   * view's key space into ranges. Each range then runs through `runChunk` (anywhere), and
   * `finishChunked` sweeps orphans and bumps the version once, after every chunk succeeded.
   */
  beginChunked(view: ViewDefinition, options?: RunOptions): Promise<ChunkedRun | Busy>;
  /** The key ranges a chunked rebuild of `view` would run now (no lock taken). */
  chunkRanges(view: ViewDefinition): Promise<KeyRange[]>;
  /** Writes one key range of a chunked rebuild. Idempotent: a retried chunk rewrites the same rows. */
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
  /** Records a chunked rebuild's failure and releases its lock. */
  failChunked(view: ViewDefinition, run: { token: string }, reason: string): Promise<void>;
}

/**
 * A key range is read in at least PIECES pieces (the next piece's query overlaps the current one's
 * writes; 4 measured best for user_stats, bench/README.md) of at most MAX_PIECE_KEYS keys each (the
 * most rows one piece can hold in memory).
 */
const PIECES = 4;
const MAX_PIECE_KEYS = 20_000n;

/** Cuts [from, to) into at most `count` contiguous, non-empty ranges of (nearly) equal width. */
export function splitRange(range: KeyRange, count: number): KeyRange[] {
  const from = BigInt(range.from);
  const width = BigInt(range.to) - from;
  if (width <= 0n || count < 1) return [];
  const n = BigInt(count) > width ? width : BigInt(count);
  const pieces: KeyRange[] = [];
  for (let i = 0n; i < n; i++) {
    pieces.push({
      from: (from + (width * i) / n).toString(),
      to: (from + (width * (i + 1n)) / n).toString(),
    });
  }
  return pieces;
}

/** How often a request that found its (view, params) running checks again. */
const LOCK_POLL_MS = 250;

/** Names this daemon in the run history. */
const WORKER = `${hostname()}:${process.pid}`;

export const ENGINE_DEFAULTS = {
  chunkSize: 2000,
  lockTtlMs: 30_000,
  chunkedLockTtlMs: 600_000,
  eventsMaxLen: 10_000,
} as const;

function createWriter(ctx: WriterContext): ShapeWriter {
  switch (ctx.view.shape) {
    case 'hash':
    case 'value':
      return createRowWriter(ctx);
    case 'zset':
      return createZsetWriter(ctx);
    case 'json':
      return createJsonWriter(ctx);
  }
}

/**
 * The refresh engine: trigger-agnostic (queue jobs, cron, write-behind all call it). One run:
 * acquire the (view, params) lock and a sequence number → stream the query from Postgres through a
 * cursor → write Redis in batches while the stream continues → sweep or swap → metadata, event,
 * coalescing window and lock release in one script.
 */
export function createRefreshEngine(options: RefreshEngineOptions): RefreshEngine {
  const { db, redis, prefix } = options;
  const scripts: Scripts = loadScripts(redis);
  const chunkSize = options.chunkSize ?? ENGINE_DEFAULTS.chunkSize;
  const lockTtlMs = options.lockTtlMs ?? ENGINE_DEFAULTS.lockTtlMs;
  const chunkedLockTtlMs = options.chunkedLockTtlMs ?? ENGINE_DEFAULTS.chunkedLockTtlMs;
  const eventsMaxLen = options.eventsMaxLen ?? ENGINE_DEFAULTS.eventsMaxLen;
  const logger = options.logger.child({ component: 'refresh' });

  // The history is best effort: a Postgres hiccup while recording must not fail a run that succeeded.
  async function recordRun(run: Insertable<RefreshRunsTable>): Promise<void> {
    try {
      await db.insertInto('viewkeeper.refresh_runs').values(run).execute();
    } catch (error) {
      logger.warn({ view: run.view, reason: describeError(error) }, 'could not record run history');
    }
  }

  function historyRow(
    view: ViewDefinition,
    kind: 'full' | 'chunk',
    seq: number,
    startedAt: Date,
    runOptions: RunOptions,
    outcome: { rows: number | null; error: string | null; chunk?: string },
  ): Insertable<RefreshRunsTable> {
    const finishedAt = new Date();
    return {
      view: view.name,
      kind,
      trigger: runOptions.trigger ?? 'queue',
      slot: runOptions.slot ?? null,
      chunk: outcome.chunk ?? null,
      seq,
      started_at: startedAt,
      finished_at: finishedAt,
      duration_ms: finishedAt.getTime() - startedAt.getTime(),
      rows: outcome.rows,
      status: outcome.error === null ? 'done' : 'failed',
      error: outcome.error,
      worker: WORKER,
    };
  }

  async function acquire(
    view: ViewDefinition,
    identity: string,
    token: string,
    ttl: number,
    ignoreWindow?: boolean,
  ) {
    const keys = viewKeys(prefix, view.name);
    const run = runKeys(prefix, identity);
    const [state, value] = await scripts.run<[number, number]>(
      'vkAcquireRun',
      [keys.meta, run.lock, run.window],
      [token, ttl, ignoreWindow ? '1' : '0'],
    );
    if (state === 0) return { seq: value } as const;
    // A coalescing window ends at a known time; a lock ends whenever its run does, so poll for it
    // rather than wait out its whole lifetime.
    const retryInMs = state === 1 ? Math.min(value, LOCK_POLL_MS) : value;
    return {
      status: 'busy',
      reason: state === 1 ? 'locked' : 'coalescing',
      retryInMs: Math.max(10, retryInMs),
    } as Busy;
  }

  async function finish(
    view: ViewDefinition,
    identity: string,
    token: string,
    kind: 'full' | 'partial',
    ms: number,
    summary: WriteSummary,
  ): Promise<number> {
    const keys = viewKeys(prefix, view.name);
    const run = runKeys(prefix, identity);
    return scripts.run<number>(
      'vkFinishRun',
      [keys.meta, run.lock, run.window, eventsKey(prefix)],
      [
        token,
        view.coalesceMs,
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
  }

  async function fail(view: ViewDefinition, identity: string, token: string, reason: string): Promise<void> {
    const keys = viewKeys(prefix, view.name);
    await scripts
      .run(
        'vkFailRun',
        [keys.meta, runKeys(prefix, identity).lock],
        [token, reason.slice(0, 500), new Date().toISOString()],
      )
      .catch(() => undefined);
  }

  /**
   * Feeds `view`'s query (narrowed by params or a key range) into `writer`. A partial refresh selects
   * a few rows: one round trip. A view with key ranges (`chunking`) is read piece by piece, the query
   * for the next piece running while the rows of the current one are written: aggregate plans send
   * no row before the whole aggregate is built, so a single query leaves Redis idle until Postgres is
   * done and Postgres idle while Redis writes. Anything else streams through a cursor. No path holds
   * more than one piece (a range's width / PIECES) of rows.
   */
  async function stream(
    view: ViewDefinition,
    writer: ShapeWriter,
    params: Record<string, unknown> | undefined,
    range: KeyRange | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const write = async (rows: Iterable<Row> | AsyncIterable<Row>) => {
      for await (const raw of rows) {
        const pending = writer.add(view.map ? view.map(raw) : raw);
        if (pending) await pending;
      }
    };
    const query = view.query(db, params, range);
    if (params && query.execute) return write(await query.execute());
    if (params || !view.chunking || !query.execute) return write(query.stream({ chunkSize, signal }));

    const span = range ?? (await spanOf(view));
    const width = BigInt(span.to) - BigInt(span.from);
    const pieces = splitRange(span, Math.max(PIECES, Number((width + MAX_PIECE_KEYS - 1n) / MAX_PIECE_KEYS)));
    const fetchPiece = (piece: KeyRange) => {
      const rows = view.query(db, undefined, piece).execute!();
      rows.catch(() => undefined); // awaited below; until then a rejection must not count as unhandled
      return rows;
    };
    let next = pieces.length > 0 ? fetchPiece(pieces[0]!) : undefined;
    for (let i = 0; next; i++) {
      const rows = await next;
      next = i + 1 < pieces.length ? fetchPiece(pieces[i + 1]!) : undefined;
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      await write(rows);
    }
  }

  /** min..max+1 of a chunked view's key column (an empty range when the table is empty). */
  async function spanOf(view: ViewDefinition): Promise<KeyRange> {
    const chunking = view.chunking!;
    const { rows } = await sql<{ min: string | null; max: string | null }>`
      select min(${sql.ref(chunking.column)})::text as min, max(${sql.ref(chunking.column)})::text as max
      from ${sql.table(chunking.table)}`.execute(db);
    const min = rows[0]?.min;
    const max = rows[0]?.max;
    if (min == null || max == null) return { from: '0', to: '0' };
    return { from: min, to: (BigInt(max) + 1n).toString() };
  }

  async function chunkRanges(view: ViewDefinition): Promise<KeyRange[]> {
    if (!view.chunking) throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${view.name} is not chunked`);
    const span = await spanOf(view);
    const width = BigInt(span.to) - BigInt(span.from);
    return splitRange(span, Number((width + BigInt(view.chunking.size) - 1n) / BigInt(view.chunking.size)));
  }

  function keepLockAlive(identity: string, token: string, ttl: number): NodeJS.Timeout {
    const timer = setInterval(() => {
      scripts.run('vkExtendLock', [runKeys(prefix, identity).lock], [token, ttl]).catch(() => undefined);
    }, ttl / 3);
    timer.unref();
    return timer;
  }

  return {
    async refresh(view, params, runOptions = {}) {
      const scope: RunScope = params ? { kind: 'partial', params } : { kind: 'full' };
      const identity = refreshIdentity(view.name, params);
      const token = randomUUID();
      const acquired = await acquire(view, identity, token, lockTtlMs, runOptions.ignoreWindow);
      if ('status' in acquired) return acquired;
      const { seq } = acquired;
      const started = performance.now();
      const startedAt = new Date();
      const renew = keepLockAlive(identity, token, lockTtlMs);
      const writer = createWriter({ redis, scripts, prefix, view, scope, seq });
      try {
        await stream(view, writer, params, undefined, runOptions.signal);
        const summary = await writer.finish();
        const ms = Math.round(performance.now() - started);
        const version = await finish(view, identity, token, scope.kind, ms, summary);
        if (scope.kind === 'full') {
          await recordRun(
            historyRow(view, 'full', seq, startedAt, runOptions, { rows: summary.rows, error: null }),
          );
        }
        logger.info(
          {
            view: view.name,
            params,
            rows: summary.rows,
            ms,
            version,
            superseded: summary.superseded || undefined,
          },
          'refreshed',
        );
        return {
          status: 'done',
          view: view.name,
          kind: scope.kind,
          rows: summary.rows,
          keys: summary.changedKeys,
          version,
          ms,
          superseded: summary.superseded,
        };
      } catch (error) {
        const reason = describeError(error);
        await writer.abort().catch(() => undefined);
        await fail(view, identity, token, reason);
        if (scope.kind === 'full') {
          await recordRun(
            historyRow(view, 'full', seq, startedAt, runOptions, { rows: null, error: reason.slice(0, 500) }),
          );
        }
        throw error;
      } finally {
        clearInterval(renew);
      }
    },

    async beginChunked(view, runOptions = {}) {
      const chunking = view.chunking;
      if (!chunking) throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${view.name} is not chunked`);
      const identity = refreshIdentity(view.name, undefined);
      const token = randomUUID();
      const acquired = await acquire(view, identity, token, chunkedLockTtlMs, runOptions.ignoreWindow);
      if ('status' in acquired) return acquired;
      try {
        const ranges = await chunkRanges(view);
        return { status: 'started', seq: acquired.seq, token, startedAt: new Date().toISOString(), ranges };
      } catch (error) {
        await fail(view, identity, token, describeError(error));
        throw error;
      }
    },

    chunkRanges,

    async runChunk(view, run, runOptions = {}) {
      const identity = refreshIdentity(view.name, undefined);
      const started = new Date();
      // Every chunk proves the rebuild is alive; if the lock expired, another rebuild may run — the
      // sequence checks still keep the newer data.
      await scripts.run('vkExtendLock', [runKeys(prefix, identity).lock], [run.token, chunkedLockTtlMs]);
      const writer = createWriter({ redis, scripts, prefix, view, scope: { kind: 'chunk' }, seq: run.seq });
      const chunk = `${run.range.from}..${run.range.to}`;
      try {
        await stream(view, writer, undefined, run.range, runOptions.signal);
        const summary = await writer.finish();
        await recordRun(
          historyRow(view, 'chunk', run.seq, started, runOptions, { rows: summary.rows, error: null, chunk }),
        );
        return { rows: summary.rows, fields: summary.fields ?? '' };
      } catch (error) {
        await writer.abort().catch(() => undefined);
        await recordRun(
          historyRow(view, 'chunk', run.seq, started, runOptions, {
            rows: null,
            error: describeError(error),
            chunk,
          }),
        );
        throw error;
      }
    },

    async finishChunked(view, run, runOptions = {}) {
      const identity = refreshIdentity(view.name, undefined);
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
      const ms = Date.now() - startedAt.getTime();
      const version = await finish(view, identity, run.token, 'full', ms, { ...summary, rows: run.rows });
      await recordRun(
        historyRow(view, 'full', run.seq, startedAt, runOptions, { rows: run.rows, error: null }),
      );
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
      await fail(view, refreshIdentity(view.name, undefined), run.token, reason);
    },
  };
}
