import type { Kysely } from 'kysely';
import { ViewkeeperError } from '../errors.ts';
import { cronProblem } from '../lib/cron.ts';
import { type KeyTemplate, parseKeyTemplate } from './key-template.ts';
import type { ParamSpec, ParamType, ParamValues } from './params.ts';

/** How a view's result lives in Redis. */
export type ViewShape = 'hash' | 'zset' | 'value' | 'json';

/** Anything with Kysely's `.stream()`: a select query builder, or `sql\`…\`` wrapped by `db.selectFrom`. */
export interface StreamableQuery<Row> {
  stream(options?: { chunkSize?: number; signal?: AbortSignal }): AsyncIterableIterator<Row>;
  /** Used for partial refreshes (a few rows: one round trip instead of a cursor's three). */
  execute?(): Promise<Row[]>;
}

type Row = Record<string, unknown>;

/** A half-open range of integer keys, `from` ≤ key < `to`, as decimal strings. */
export interface KeyRange {
  from: string;
  to: string;
}

/**
 * Splits full rebuilds of a large per-row view into key ranges that run as separate jobs, on
 * whichever daemons are free. The query receives each range and must narrow by it.
 */
export interface ViewChunking {
  /** Table whose integer column spans the view's rows, e.g. `users`. */
  table: string;
  /** That column, e.g. `id`: its min..max is cut into ranges. */
  column: string;
  /** Width of each range in key values (not rows). */
  size: number;
}

/** A cron schedule for full rebuilds (used by the scheduler). */
export interface ViewSchedule {
  /** Cron expression, optional seconds field: `*\/5 * * * *`. */
  cron: string;
  /** IANA time zone. @defaultValue `UTC` */
  timezone?: string;
}

/**
 * What a view file declares. See the README ("Defining views") for a complete example.
 *
 * @example
 * export default defineView<Database>()({
 *   name: 'user_stats',
 *   shape: 'hash',
 *   key: 'user_stats:{user_id}',
 *   params: { user_id: 'bigint' },
 *   query: (db, params) => {
 *     let q = db.selectFrom('users as u').leftJoin('posts as p', 'p.user_id', 'u.id')
 *       .select(['u.id as user_id', (eb) => eb.fn.count('p.id').as('post_count')]).groupBy('u.id');
 *     if (params) q = q.where('u.id', '=', params.user_id);
 *     return q;
 *   },
 *   ttl: 3600,
 * });
 */
export interface ViewOptions<DB, P extends ParamSpec, R extends Row, S extends ViewShape = ViewShape> {
  /** Unique name; the refresh queue's job name. `[a-z0-9_]`, up to 64 characters. */
  name: string;
  shape: S;
  /**
   * Redis key. For `hash` and `value`: a template filled from each row (`user:{id}`). For `zset` and
   * `json`: one fixed key (placeholders allowed only if filled by nothing — i.e. none).
   */
  key: string;
  /**
   * The query. Called with `params === undefined` for a full rebuild and with validated params for a
   * partial refresh, which it narrows (`where id = params.id`). Values are bound by Kysely, never pasted.
   */
  query: (db: Kysely<DB>, params: ParamValues<P> | undefined, range?: KeyRange) => StreamableQuery<R>;
  /** Split full rebuilds into key ranges run as separate jobs (per-row shapes only). */
  chunking?: ViewChunking;
  /** Partial-refresh parameters and their types. Omit for views that only rebuild fully. */
  params?: P;
  /**
   * Run many partial refreshes of this view as one query: the full query filtered on the param's
   * column, `select * from (query) where user_id = any($1)` (Postgres pushes the filter into the
   * query: one index lookup per key, one plan per batch). Declare it when narrowing by the param
   * returns exactly the rows of the full query whose column has that value — the usual case, as in
   * every demo view. Needs exactly one param, named like the column the query returns and the key
   * (`hash`, `value`) or member (`zset`) template uses. @defaultValue false
   */
  batchPartials?: boolean;
  /** `hash`: columns stored as fields. @defaultValue every column not used by the key template */
  fields?: (keyof R & string)[];
  /** `value`: the column stored. @defaultValue the only column not used by the key template */
  value?: keyof R & string;
  /** `zset`: member template filled from each row, e.g. `{post_id}`. */
  member?: string;
  /** `zset`: the numeric column used as score. */
  score?: keyof R & string;
  /** Reshapes each row before it is written (e.g. numeric strings to numbers for `json`). */
  map?: (row: R) => Row;
  /** Seconds every written key lives; 0 or unset = no expiry. */
  ttl?: number;
  /** Tags for invalidation events. */
  tags?: string[];
  /** Cron schedule for full rebuilds: a cron string or `{ cron, timezone }`. */
  schedule?: string | ViewSchedule;
  /** Rebuild once at start-up when a scheduled slot was missed. @defaultValue true */
  catchUp?: boolean;
  /** Tables the view reads; write-behind sinks use this to know whom to refresh. */
  dependsOn?: string[];
  /**
   * A rate limit: at least this many milliseconds between two runs of the same (view, params);
   * requests arriving inside the window collapse into one run at its end, and each of them waits
   * for that end. 0 = no window (runs still never overlap). Unset, the window after a run is the
   * longer of 100 ms and the run's own duration (see run-spacing.ts): lone requests start at once.
   * @defaultValue unset (adaptive)
   */
  coalesceMs?: number;
}

/**
 * A view after validation: what the registry holds and the engine runs. `S` keeps the literal shape,
 * so a client given definitions checks view names per shape (`client.zset('user_stats')` does not
 * compile).
 */
export interface ViewDefinition<S extends ViewShape = ViewShape> {
  kind: 'view';
  name: string;
  shape: S;
  key: KeyTemplate;
  member: KeyTemplate | undefined;
  score: string | undefined;
  fields: string[] | undefined;
  value: string | undefined;
  params: ParamSpec | undefined;
  /** The one param (a column of the rows) by which partial refreshes of many keys run as one query. */
  batchColumn: string | undefined;
  query: (
    // biome-ignore lint/suspicious/noExplicitAny: the registry holds views of any database type
    db: Kysely<any>,
    params: Record<string, unknown> | undefined,
    range?: KeyRange,
  ) => StreamableQuery<Row>;
  chunking: ViewChunking | undefined;
  map: ((row: Row) => Row) | undefined;
  ttl: number;
  tags: string[];
  schedule: Required<ViewSchedule> | undefined;
  catchUp: boolean;
  dependsOn: string[];
  /** Fixed window between runs of one (view, params); undefined = adaptive (runSpacingMs). */
  coalesceMs: number | undefined;
}

export const VIEW_DEFAULTS = { ttl: 0, catchUp: true } as const;
const PARAM_TYPES: ParamType[] = ['bigint', 'integer', 'text', 'uuid', 'boolean'];

function fail(name: string, message: string): never {
  throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${JSON.stringify(name)}: ${message}`);
}

/**
 * Validates a view definition. Curried so the database type can be given while row and param types
 * are inferred: `defineView<Database>()({ … })`.
 */
export function defineView<DB>() {
  return <const P extends ParamSpec, R extends Row, const S extends ViewShape>(
    options: ViewOptions<DB, P, R, S>,
  ): ViewDefinition<S> =>
    resolveView(options as unknown as ViewOptions<unknown, ParamSpec, Row>) as ViewDefinition<S>;
}

export function resolveView(options: ViewOptions<unknown, ParamSpec, Row>): ViewDefinition {
  const name = options?.name;
  if (typeof name !== 'string' || !/^[a-z][a-z0-9_]{0,63}$/.test(name)) {
    fail(String(name), 'name must be 1–64 characters of a–z, 0–9 and _, starting with a letter');
  }
  if (!['hash', 'zset', 'value', 'json'].includes(options.shape)) {
    fail(name, `shape ${JSON.stringify(options.shape)} is not one of hash, zset, value, json`);
  }
  if (typeof options.query !== 'function')
    fail(name, 'query must be a function (db, params) => Kysely query');
  const key = parseKeyTemplate(options.key, `view ${JSON.stringify(name)}: key`);
  const perRow = options.shape === 'hash' || options.shape === 'value';
  if (perRow && key.columns.length === 0) {
    fail(
      name,
      `a ${options.shape} view needs a key template with a {column}, got ${JSON.stringify(options.key)}`,
    );
  }
  if (!perRow && key.columns.length > 0) {
    fail(name, `a ${options.shape} view lives at one fixed key, got template ${JSON.stringify(options.key)}`);
  }
  let member: KeyTemplate | undefined;
  if (options.shape === 'zset') {
    if (options.member === undefined || options.score === undefined)
      fail(name, 'a zset view needs member and score');
    member = parseKeyTemplate(options.member, `view ${JSON.stringify(name)}: member`);
  }
  const params = options.params && Object.keys(options.params).length > 0 ? options.params : undefined;
  for (const [param, type] of Object.entries(params ?? {})) {
    if (!PARAM_TYPES.includes(type))
      fail(name, `param ${param} has type ${JSON.stringify(type)}; use one of ${PARAM_TYPES.join(', ')}`);
  }
  if (params && options.shape === 'json') fail(name, 'a json view is rebuilt whole; it cannot take params');
  let batchColumn: string | undefined;
  if (options.batchPartials !== undefined && typeof options.batchPartials !== 'boolean') {
    fail(name, `batchPartials must be true or false, got ${JSON.stringify(options.batchPartials)}`);
  }
  if (options.batchPartials) {
    const names = Object.keys(params ?? {});
    const template = options.shape === 'zset' ? member : key;
    if (names.length !== 1 || !template?.columns.includes(names[0]!)) {
      fail(
        name,
        `batchPartials needs exactly one param used by the ${options.shape === 'zset' ? 'member' : 'key'} template, got params ${JSON.stringify(names)}`,
      );
    }
    batchColumn = names[0];
  }
  const ttl = options.ttl ?? VIEW_DEFAULTS.ttl;
  if (!Number.isInteger(ttl) || ttl < 0)
    fail(name, `ttl must be whole seconds ≥ 0, got ${JSON.stringify(options.ttl)}`);
  const coalesceMs = options.coalesceMs;
  if (
    coalesceMs !== undefined &&
    (!Number.isInteger(coalesceMs) || coalesceMs < 0 || coalesceMs > 3_600_000)
  ) {
    fail(
      name,
      `coalesceMs must be whole milliseconds from 0 to 3600000, got ${JSON.stringify(options.coalesceMs)}`,
    );
  }
  const raw = typeof options.schedule === 'string' ? { cron: options.schedule } : options.schedule;
  let schedule: Required<ViewSchedule> | undefined;
  if (raw !== undefined) {
    if (typeof raw !== 'object' || raw === null || typeof raw.cron !== 'string' || raw.cron.trim() === '') {
      fail(
        name,
        `schedule must be a cron string or { cron, timezone }, got ${JSON.stringify(options.schedule)}`,
      );
    }
    schedule = { cron: raw.cron.trim(), timezone: raw.timezone ?? 'UTC' };
    const problem = cronProblem(schedule.cron, schedule.timezone);
    if (problem) fail(name, `schedule: ${problem}`);
  }
  const chunking = options.chunking;
  if (chunking !== undefined) {
    if (!perRow) fail(name, 'only hash and value views can be chunked');
    const identifier = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;
    if (!identifier.test(chunking.table ?? '') || !identifier.test(chunking.column ?? '')) {
      fail(name, `chunking needs a table and column name, got ${JSON.stringify(chunking)}`);
    }
    if (!Number.isSafeInteger(chunking.size) || chunking.size < 1) {
      fail(name, `chunking.size must be a whole number ≥ 1, got ${JSON.stringify(chunking.size)}`);
    }
  }
  return {
    kind: 'view',
    chunking,
    name,
    shape: options.shape,
    key,
    member,
    score: options.score,
    fields: options.fields,
    value: options.value,
    params,
    batchColumn,
    query: options.query as ViewDefinition['query'],
    map: options.map,
    ttl,
    tags: options.tags ?? [],
    schedule,
    catchUp: options.catchUp ?? VIEW_DEFAULTS.catchUp,
    dependsOn: options.dependsOn ?? [],
    coalesceMs,
  };
}
