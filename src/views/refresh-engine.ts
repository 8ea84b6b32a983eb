import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { type Insertable, isCompilable, type Kysely, sql } from 'kysely';
import type { RefreshRunsTable, ViewkeeperDatabase } from '../db/schema.ts';
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
import { type ParamType, refreshIdentity } from './params.ts';
import { runSpacingMs } from './run-spacing.ts';

export interface RefreshEngineOptions {
  /** Views bring their own database types; the run history table is viewkeeper's. */
  db: Kysely<ViewkeeperDatabase>;
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
   * Runs partial refreshes of `view` for every params of `paramsList` (validated) as one run where
   * the view allows it (`batchPartials`): one query, one sequence, one version bump and one event
   * naming every changed key. Each (view, params) busy elsewhere is left out and reported Busy; the
   * outcomes follow `paramsList`'s order. Views without `batchPartials` run their params one by one.
   */
  refreshBatch(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[],
    options?: RunOptions,
  ): Promise<RefreshOutcome[]>;
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

/** Postgres array types of batch columns, by param type. */
const ARRAY_TYPES: Record<ParamType, string> = {
  bigint: 'bigint',
  integer: 'integer',
  text: 'text',
  uuid: 'uuid',
  boolean: 'boolean',
};

/** One request's part of a batched partial refresh: the rows and changed keys of its own key. */
function ownShare(
  view: ViewDefinition,
  params: Record<string, unknown>,
  summary: WriteSummary,
  changed: Set<string>,
): { rows: number; keys: string[] | null } {
  const template = view.shape === 'zset' ? view.member! : view.key;
  const own = template.fill(params);
  const rows = summary.written?.has(own) ? 1 : 0;
  if (view.shape === 'zset') return { rows, keys: summary.changedKeys };
  return { rows, keys: changed.has(own) ? [own] : [] };
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

  /** Takes the locks of `identities` that are free; the taken ones share one new sequence. */
  async function acquire(
    view: ViewDefinition,
    identities: string[],
    token: string,
    ttl: number,
    ignoreWindow?: boolean,
  ): Promise<{ seq: number; states: (Busy | null)[] }> {
    const { meta, keyIndex, memberIndex } = viewKeys(prefix, view.name);
    const keys = [meta, keyIndex, memberIndex];
    for (const identity of identities) {
      const run = runKeys(prefix, identity);
      keys.push(run.lock, run.window);
    }
    const reply = await scripts.run<number[]>('vkAcquireRun', keys, [token, ttl, ignoreWindow ? '1' : '0']);
    const states = identities.map((_, i): Busy | null => {
      const state = reply[1 + 2 * i]!;
      const value = reply[2 + 2 * i]!;
      if (state === 0) return null;
      // A coalescing window ends at a known time; a lock ends whenever its run does, so poll for it
      // rather than wait out its whole lifetime.
      const retryInMs = state === 1 ? Math.min(value, LOCK_POLL_MS) : value;
      return {
        status: 'busy',
        reason: state === 1 ? 'locked' : 'coalescing',
        retryInMs: Math.max(10, retryInMs),
      };
    });
    return { seq: reply[0]!, states };
  }

  function lockAndWindowKeys(identities: string[]): string[] {
    return identities.flatMap((identity) => {
      const run = runKeys(prefix, identity);
      return [run.lock, run.window];
    });
  }

  async function finish(
    view: ViewDefinition,
    identities: string[],
    token: string,
    kind: 'full' | 'partial',
    ms: number,
    summary: WriteSummary,
  ): Promise<number> {
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
  }

  async function fail(
    view: ViewDefinition,
    identities: string[],
    token: string,
    reason: string,
  ): Promise<void> {
    const keys = viewKeys(prefix, view.name);
    await scripts
      .run(
        'vkFailRun',
        [keys.meta, ...identities.map((identity) => runKeys(prefix, identity).lock)],
        [token, reason.slice(0, 500), new Date().toISOString()],
      )
      .catch(() => undefined);
  }

  /**
   * Partial refreshes of many keys as one query: the view's full query filtered on its batch column.
   * Postgres pushes the filter into the query (for a grouped query, into the rows grouped by that
   * column), so this costs an index lookup per key and one plan, not one round trip per key.
   */
  function batchQuery(view: ViewDefinition, paramsList: Record<string, unknown>[]): Promise<Row[]> {
    const column = view.batchColumn!;
    const full = view.query(db, undefined);
    if (!isCompilable(full)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `view ${JSON.stringify(view.name)}: batchPartials needs the query to be a Kysely query builder`,
      );
    }
    const type = ARRAY_TYPES[view.params![column]!];
    const values = paramsList.map((params) => params[column]);
    return sql<Row>`select * from (${full}) as vk_batch where ${sql.ref(`vk_batch.${column}`)} = any(${values}::${sql.raw(type)}[])`
      .execute(db)
      .then((result) => result.rows);
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
    paramsList: Record<string, unknown>[] | undefined,
    range: KeyRange | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const write = async (rows: Iterable<Row> | AsyncIterable<Row>) => {
      for await (const raw of rows) {
        const pending = writer.add(view.map ? view.map(raw) : raw);
        if (pending) await pending;
      }
    };
    if (paramsList && paramsList.length > 1) return write(await batchQuery(view, paramsList));
    const params = paramsList?.[0];
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

  function keepLockAlive(identities: string[], token: string, ttl: number): NodeJS.Timeout {
    const locks = identities.map((identity) => runKeys(prefix, identity).lock);
    const timer = setInterval(() => {
      scripts.run('vkExtendLock', locks, [token, ttl]).catch(() => undefined);
    }, ttl / 3);
    timer.unref();
    return timer;
  }

  /**
   * One run over `paramsList` (undefined = a full rebuild): takes the free locks, streams, writes,
   * finishes. Returns an outcome per entry of `paramsList` (one for a full rebuild).
   */
  async function run(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[] | undefined,
    runOptions: RunOptions,
  ): Promise<RefreshOutcome[]> {
    const requested = paramsList ?? [undefined];
    const identities = requested.map((params) => refreshIdentity(view.name, params));
    // The same (view, params) asked twice runs once: its first params stand for it.
    const paramsOf = new Map<string, Record<string, unknown> | undefined>();
    for (const [i, identity] of identities.entries()) {
      if (!paramsOf.has(identity)) paramsOf.set(identity, requested[i]);
    }
    const unique = [...paramsOf.keys()];
    const token = randomUUID();
    const { seq, states } = await acquire(view, unique, token, lockTtlMs, runOptions.ignoreWindow);
    const stateOf = new Map(unique.map((identity, i) => [identity, states[i]!]));
    const taken = unique.filter((identity) => stateOf.get(identity) === null);
    if (taken.length === 0) return identities.map((identity) => stateOf.get(identity)!);
    const takenParams = paramsList && taken.map((identity) => paramsOf.get(identity)!);
    const scope: RunScope = takenParams ? { kind: 'partial', params: takenParams } : { kind: 'full' };
    const started = performance.now();
    const startedAt = new Date();
    const renew = keepLockAlive(taken, token, lockTtlMs);
    const writer = createWriter({ redis, scripts, prefix, view, scope, seq });
    try {
      await stream(view, writer, takenParams, undefined, runOptions.signal);
      const summary = await writer.finish();
      const ms = Math.round(performance.now() - started);
      const version = await finish(view, taken, token, scope.kind, ms, summary);
      if (scope.kind === 'full') {
        await recordRun(
          historyRow(view, 'full', seq, startedAt, runOptions, { rows: summary.rows, error: null }),
        );
      }
      logger.info(
        {
          view: view.name,
          params: takenParams?.length === 1 ? takenParams[0] : undefined,
          keys: takenParams && takenParams.length > 1 ? takenParams.length : undefined,
          rows: summary.rows,
          ms,
          version,
          superseded: summary.superseded || undefined,
        },
        'refreshed',
      );
      const changed = new Set(summary.changedKeys ?? []);
      const done = (params: Record<string, unknown> | undefined): Done => ({
        status: 'done',
        view: view.name,
        kind: scope.kind,
        ...(takenParams && takenParams.length > 1 && params
          ? ownShare(view, params, summary, changed)
          : { rows: summary.rows, keys: summary.changedKeys }),
        version,
        ms,
        superseded: summary.superseded,
      });
      return identities.map((identity, i) => stateOf.get(identity) ?? done(requested[i]));
    } catch (error) {
      const reason = describeError(error);
      await writer.abort().catch(() => undefined);
      await fail(view, taken, token, reason);
      if (scope.kind === 'full') {
        await recordRun(
          historyRow(view, 'full', seq, startedAt, runOptions, { rows: null, error: reason.slice(0, 500) }),
        );
      }
      throw error;
    } finally {
      clearInterval(renew);
    }
  }

  return {
    async refresh(view, params, runOptions = {}) {
      const [outcome] = await run(view, params ? [params] : undefined, runOptions);
      return outcome!;
    },

    async refreshBatch(view, paramsList, runOptions = {}) {
      if (paramsList.length === 0) return [];
      if (view.batchColumn) return run(view, paramsList, runOptions);
      const outcomes: RefreshOutcome[] = [];
      for (const params of paramsList) outcomes.push((await run(view, [params], runOptions))[0]!);
      return outcomes;
    },

    async beginChunked(view, runOptions = {}) {
      const chunking = view.chunking;
      if (!chunking) throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${view.name} is not chunked`);
      const identity = refreshIdentity(view.name, undefined);
      const token = randomUUID();
      const { seq, states } = await acquire(
        view,
        [identity],
        token,
        chunkedLockTtlMs,
        runOptions.ignoreWindow,
      );
      if (states[0]) return states[0];
      try {
        const ranges = await chunkRanges(view);
        return { status: 'started', seq, token, startedAt: new Date().toISOString(), ranges };
      } catch (error) {
        await fail(view, [identity], token, describeError(error));
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
      const version = await finish(view, [identity], run.token, 'full', ms, { ...summary, rows: run.rows });
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
      await fail(view, [refreshIdentity(view.name, undefined)], run.token, reason);
    },
  };
}
