import type { Kysely } from 'kysely';
import { ViewkeeperError } from '../errors.ts';
import { cronProblem } from '../lib/cron.ts';
import { type CaptureOptions, type CaptureRule, resolveCapture } from './capture-spec.ts';
import { hashTagProblem } from './hash-tag-check.ts';
import { type KeyTemplate, parseKeyTemplate } from './key-template.ts';
import type { ParamSpec, ParamType, ParamValues } from './params.ts';

/** How a view's result lives in Redis. */
export type ViewShape = 'hash' | 'zset' | 'value' | 'json' | 'list' | 'set';

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
export interface ViewOptions<
  DB,
  P extends ParamSpec,
  R extends Row,
  S extends ViewShape = ViewShape,
  Cap = Record<string, string>,
> {
  /** Unique name; the refresh queue's job name. `[a-z0-9_]`, up to 64 characters. */
  name: string;
  shape: S;
  /**
   * Redis key. For `hash` and `value`: a template filled from each row (`user:{id}`). For `list` and
   * `set`: the template of each group's key (`user_recent_votes:{user_id}`): rows that fill it alike
   * make one list or set. For `zset` and `json`: one fixed key (no placeholders).
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
  /** `zset` and `set`: member template filled from each row, e.g. `{post_id}`. */
  member?: string;
  /**
   * `list`: element template filled from each row (`{post_id}:{value}`).
   * @defaultValue the row's columns other than the key's, as JSON with sorted keys
   */
  element?: string;
  /**
   * `list`: the column(s) that order each group's elements (the first `maxLength` rows in this order
   * make the list). Numbers or timestamps; add a unique column last so that ties have one order.
   */
  orderBy?: (keyof R & string) | (keyof R & string)[];
  /** `list`: `desc` puts the highest `orderBy` (the newest) first. @defaultValue `desc` */
  order?: 'asc' | 'desc';
  /** `list`: the most elements a group's list holds, 1–10,000. */
  maxLength?: number;
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
   * Change capture: for each table the view reads, how a row changed by any writer maps to refresh
   * targets — `'full'`, `{ columns, map: (row) => params }` or `{ columns, lookup: (db, rows) => params[] }`.
   * `columns` are what the triggers record (as text); on UPDATE the old and the new row both count.
   * Captured tables count as `dependsOn`. See the README ("Change capture").
   *
   * @example
   * capture: {
   *   users: { columns: ['id'], map: (row) => ({ user_id: row.id }) },
   *   posts: { columns: ['user_id'], map: (row) => ({ user_id: row.user_id }) },
   * }
   */
  capture?: CaptureOptions<DB, Cap, { [K in keyof P]: unknown }>;
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
  /** `list`: element template; undefined = JSON of the row's non-key columns. */
  element: KeyTemplate | undefined;
  /** `list`: order columns, their direction and the cap. */
  list: ListOrder | undefined;
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
  /** Change-capture mappings, one per captured table. */
  capture: CaptureRule[];
  /** Fixed window between runs of one (view, params); undefined = adaptive (runSpacingMs). */
  coalesceMs: number | undefined;
}

/** How a `list` view orders and caps each group. */
export interface ListOrder {
  orderBy: string[];
  order: 'asc' | 'desc';
  maxLength: number;
}

export const VIEW_DEFAULTS = { ttl: 0, catchUp: true, order: 'desc' } as const;
export const SHAPES: ViewShape[] = ['hash', 'zset', 'value', 'json', 'list', 'set'];
/** Shapes with one Redis key per row or group of rows, named by the key template. */
export const KEYED_SHAPES: ViewShape[] = ['hash', 'value', 'list', 'set'];
const MAX_LIST_LENGTH = 10_000;
const PARAM_TYPES: ParamType[] = ['bigint', 'integer', 'text', 'uuid', 'boolean'];

function fail(name: string, message: string): never {
  throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${JSON.stringify(name)}: ${message}`);
}

/** A list view's element template and order; undefined for other shapes. */
function resolveList(
  name: string,
  options: ViewOptions<unknown, ParamSpec, Row>,
): { element: KeyTemplate | undefined; list: ListOrder | undefined } {
  if (options.shape !== 'list') return { element: undefined, list: undefined };
  const orderBy = typeof options.orderBy === 'string' ? [options.orderBy] : options.orderBy;
  if (
    !Array.isArray(orderBy) ||
    orderBy.length === 0 ||
    orderBy.some((column) => typeof column !== 'string' || column === '')
  ) {
    fail(
      name,
      `a list view needs orderBy, the column(s) that order its elements, got ${JSON.stringify(options.orderBy)}`,
    );
  }
  const { maxLength } = options;
  if (!Number.isInteger(maxLength) || maxLength! < 1 || maxLength! > MAX_LIST_LENGTH) {
    fail(
      name,
      `maxLength must be a whole number from 1 to ${MAX_LIST_LENGTH}, got ${JSON.stringify(maxLength)}`,
    );
  }
  const order = options.order ?? VIEW_DEFAULTS.order;
  if (order !== 'asc' && order !== 'desc')
    fail(name, `order must be 'asc' or 'desc', got ${JSON.stringify(order)}`);
  const element =
    options.element === undefined
      ? undefined
      : parseKeyTemplate(options.element, `view ${JSON.stringify(name)}: element`);
  if (element && element.columns.length === 0) {
    fail(name, `element ${JSON.stringify(options.element)} uses no column: every element would be the same`);
  }
  return { element, list: { orderBy, order, maxLength: maxLength! } };
}

/**
 * Validates a view definition. Curried so the database type can be given while row and param types
 * are inferred: `defineView<Database>()({ … })`.
 */
export function defineView<DB>() {
  return <
    const P extends ParamSpec,
    R extends Row,
    const S extends ViewShape,
    const Cap extends { [T in keyof DB]?: string } = Record<never, string>,
  >(
    options: ViewOptions<DB, P, R, S, Cap>,
  ): ViewDefinition<S> =>
    resolveView(options as unknown as ViewOptions<unknown, ParamSpec, Row>) as ViewDefinition<S>;
}

export function resolveView(options: ViewOptions<unknown, ParamSpec, Row>): ViewDefinition {
  const name = options?.name;
  if (typeof name !== 'string' || !/^[a-z][a-z0-9_]{0,63}$/.test(name)) {
    fail(String(name), 'name must be 1–64 characters of a–z, 0–9 and _, starting with a letter');
  }
  if (!SHAPES.includes(options.shape)) {
    fail(name, `shape ${JSON.stringify(options.shape)} is not one of ${SHAPES.join(', ')}`);
  }
  if (typeof options.query !== 'function')
    fail(name, 'query must be a function (db, params) => Kysely query');
  const key = parseKeyTemplate(options.key, `view ${JSON.stringify(name)}: key`);
  const tagProblem = hashTagProblem(key);
  if (tagProblem) fail(name, `key ${JSON.stringify(options.key)} ${tagProblem}`);
  const perRow = options.shape === 'hash' || options.shape === 'value';
  const keyed = KEYED_SHAPES.includes(options.shape);
  if (keyed && key.columns.length === 0) {
    fail(
      name,
      `a ${options.shape} view needs a key template with a {column}, got ${JSON.stringify(options.key)}`,
    );
  }
  if (!keyed && key.columns.length > 0) {
    fail(name, `a ${options.shape} view lives at one fixed key, got template ${JSON.stringify(options.key)}`);
  }
  let member: KeyTemplate | undefined;
  if (options.shape === 'zset') {
    if (options.member === undefined || options.score === undefined)
      fail(name, 'a zset view needs member and score');
    member = parseKeyTemplate(options.member, `view ${JSON.stringify(name)}: member`);
  }
  if (options.shape === 'set') {
    if (options.member === undefined) fail(name, "a set view needs member, a template such as '{user_id}'");
    member = parseKeyTemplate(options.member, `view ${JSON.stringify(name)}: member`);
    if (member.columns.length === 0) {
      fail(
        name,
        `member ${JSON.stringify(options.member)} uses no column: every row would add the same member`,
      );
    }
  }
  const { element, list } = resolveList(name, options);
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
  const capture = resolveCapture(name, options.capture, params !== undefined);
  const dependsOn = [...new Set([...(options.dependsOn ?? []), ...capture.map((rule) => rule.table)])];
  return {
    kind: 'view',
    chunking,
    name,
    shape: options.shape,
    key,
    member,
    score: options.score,
    element,
    list,
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
    dependsOn,
    capture,
    coalesceMs,
  };
}
