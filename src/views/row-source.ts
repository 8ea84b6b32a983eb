import { isCompilable, type Kysely, type RawBuilder, sql } from 'kysely';
import { ViewkeeperError } from '../errors.ts';
import type { KeyRange, StreamableQuery, ViewDefinition } from './define-view.ts';
import type { ParamType } from './params.ts';
import { RANK_COLUMN } from './writers/group-elements.ts';
import type { Row, ShapeWriter } from './writers/shape-writer.ts';

/** Where a run's rows come from: the view's query, narrowed by params or a key range. */
export interface RowSource {
  /**
   * Feeds `view`'s query (narrowed by `paramsList` or `range`; neither = the whole view) into
   * `writer`, applying the view's `map`.
   */
  stream(
    view: ViewDefinition,
    writer: ShapeWriter,
    paramsList: Record<string, unknown>[] | undefined,
    range: KeyRange | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void>;
  /** The key ranges a chunked rebuild of `view` would run now. */
  chunkRanges(view: ViewDefinition): Promise<KeyRange[]>;
}

/**
 * A key range is read in at least PIECES pieces (the next piece's query overlaps the current one's
 * writes; 4 measured best for user_stats, bench/README.md) of at most MAX_PIECE_KEYS keys each (the
 * most rows one piece can hold in memory).
 */
const PIECES = 4;
const MAX_PIECE_KEYS = 20_000n;

/** Postgres array types of batch columns, by param type. */
const ARRAY_TYPES: Record<ParamType, string> = {
  bigint: 'bigint',
  integer: 'integer',
  text: 'text',
  uuid: 'uuid',
  boolean: 'boolean',
};

/**
 * Pulls rows from `source` ahead of the consumer, up to `limit` of them: the cursor's next fetch runs
 * in Postgres while the writer turns the current rows into Redis calls, instead of each side waiting
 * for the other. Holds at most `limit` rows.
 */
async function* readAhead<T>(source: AsyncIterable<T>, limit: number): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const buffer: T[] = [];
  let done = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  let room: (() => void) | undefined;
  const pump = (async () => {
    try {
      while (!done) {
        if (buffer.length >= limit) await new Promise<void>((resolve) => (room = resolve));
        if (done) break;
        const next = await iterator.next();
        if (next.done) break;
        buffer.push(next.value);
        wake?.();
      }
    } catch (error) {
      failure = { error };
    } finally {
      done = true;
      wake?.();
    }
  })();
  try {
    for (;;) {
      if (buffer.length === 0) {
        if (failure) throw failure.error;
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const row = buffer.shift()!;
      room?.();
      room = undefined;
      yield row;
    }
  } finally {
    done = true;
    room?.();
    await pump;
    await iterator.return?.();
  }
}

/**
 * The rows of a Kysely query in the cursor's chunks (arrays of up to `chunkSize` rows), where
 * `query.stream()` yields row by row: three async generators deep, that per-row await cost more CPU
 * than decoding the row (bench/README.md "Refresh"). Queries that are not Kysely builders stream as
 * they can, in chunks of one row.
 */
async function* chunksOf(
  db: Kysely<unknown>,
  query: StreamableQuery<Row>,
  chunkSize: number,
): AsyncGenerator<Row[]> {
  if (isCompilable(query)) {
    for await (const result of db.getExecutor().stream<Row>(query.compile(), chunkSize, {}))
      yield result.rows;
    return;
  }
  for await (const row of query.stream({ chunkSize })) yield [row];
}

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

/**
 * Partial refreshes of many keys as one statement: the view's full query filtered on its batch
 * column. Postgres pushes the filter into the query (for a grouped query, into the rows grouped by
 * that column), so this costs an index lookup per key and one plan, not one round trip per key.
 * `viewkeeper check` plans the same statement.
 */
export function batchStatement(view: ViewDefinition, full: unknown, values: unknown[]): RawBuilder<Row> {
  const column = view.batchColumn!;
  const type = ARRAY_TYPES[view.params![column]!];
  return sql<Row>`select * from (${full}) as vk_batch where ${sql.ref(`vk_batch.${column}`)} = any(${values}::${sql.raw(type)}[])`;
}

function notChunked(view: ViewDefinition): never {
  throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${view.name} is not chunked`);
}

// biome-ignore lint/suspicious/noExplicitAny: views bring their own database types
export function createRowSource(options: { db: Kysely<any>; chunkSize: number }): RowSource {
  const { db, chunkSize } = options;

  function batchQuery(view: ViewDefinition, paramsList: Record<string, unknown>[]): Promise<Row[]> {
    return batchSql(view, paramsList)
      .execute(db)
      .then((result) => result.rows);
  }

  function batchSql(view: ViewDefinition, paramsList: Record<string, unknown>[]): RawBuilder<Row> {
    const full = view.query(db, undefined);
    if (!isCompilable(full)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `view ${JSON.stringify(view.name)}: batchPartials needs the query to be a Kysely query builder`,
      );
    }
    return batchStatement(
      view,
      full,
      paramsList.map((params) => params[view.batchColumn!]),
    );
  }

  /**
   * `list` and `set` views: the query's rows grouped by key (rows of one group next to each other,
   * so a writer holds one group at a time) and, for lists, each group's first `maxLength` rows in
   * order, the rest never leaving Postgres.
   */
  function grouped(view: ViewDefinition, inner: unknown) {
    if (!isCompilable(inner)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `view ${JSON.stringify(view.name)}: a ${view.shape} view's query must be a Kysely query builder (its rows are grouped and ordered around it)`,
      );
    }
    const keyColumns = view.key.columns;
    let source = sql`(${inner})`;
    if (view.list) {
      const direction = sql.raw(view.list.order); // 'asc' | 'desc', validated at definition
      const partition = sql.join(keyColumns.map((column) => sql.ref(`vk_q.${column}`)));
      const order = sql.join(
        view.list.orderBy.map((column) => sql`${sql.ref(`vk_q.${column}`)} ${direction}`),
      );
      source = sql`(select vk_q.*, row_number() over (partition by ${partition} order by ${order}) as ${sql.id(RANK_COLUMN)}
        from (${inner}) as vk_q)`;
    }
    let query = db.selectFrom(source.as('vk_g')).selectAll();
    if (view.list) query = query.where(`vk_g.${RANK_COLUMN}`, '<=', view.list.maxLength);
    for (const column of keyColumns) query = query.orderBy(`vk_g.${column}`);
    if (view.list) query = query.orderBy(`vk_g.${RANK_COLUMN}`);
    return query;
  }

  /** The rows of a list or set view (whole, or the groups `paramsList` select), grouped. */
  function groupedRows(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[] | undefined,
  ): Promise<Row[]> | AsyncIterable<Row[]> {
    if (paramsList && paramsList.length > 1) return grouped(view, batchSql(view, paramsList)).execute();
    const params = paramsList?.[0];
    const query = grouped(view, view.query(db, params));
    return params ? query.execute() : readAhead(chunksOf(db, query, chunkSize), 2);
  }

  /**
   * A zset's full rebuild reads its rows in score order: Redis inserts a member at the tail of the
   * skip list instead of at a random place in it, which halves the server's CPU for the ZADDs (and
   * for freeing the old key at the swap) — measured 600 → 300 ms for 157,000 members, more than the
   * sort costs Postgres (bench/README.md "Refresh"). Only for Kysely builders whose rows carry the
   * score column themselves (no `map` that computes it).
   */
  function inScoreOrder(view: ViewDefinition, query: StreamableQuery<Row>): StreamableQuery<Row> {
    if (view.shape !== 'zset' || view.map || !isCompilable(query)) return query;
    return db
      .selectFrom(sql`(${query})`.as('vk_z'))
      .selectAll()
      .orderBy(sql.ref(`vk_z.${view.score!}`));
  }

  /** min..max+1 of a chunked view's key column (an empty range when the table is empty). */
  async function spanOf(view: ViewDefinition): Promise<KeyRange> {
    const chunking = view.chunking ?? notChunked(view);
    const { rows } = await sql<{ min: string | null; max: string | null }>`
      select min(${sql.ref(chunking.column)})::text as min, max(${sql.ref(chunking.column)})::text as max
      from ${sql.table(chunking.table)}`.execute(db);
    const min = rows[0]?.min;
    const max = rows[0]?.max;
    if (min == null || max == null) return { from: '0', to: '0' };
    return { from: min, to: (BigInt(max) + 1n).toString() };
  }

  return {
    /**
     * A partial refresh selects a few rows: one round trip. A view with key ranges (`chunking`) is
     * read piece by piece, the query for the next piece running while the rows of the current one
     * are written: aggregate plans send no row before the whole aggregate is built, so a single query
     * leaves Redis idle until Postgres is done and Postgres idle while Redis writes. Anything else
     * streams through a cursor. No path holds more than one piece (a range's width / PIECES) of rows.
     *
     * The abort signal is checked here, between rows, and never handed to Kysely's `stream()`: that
     * races every chunk against one abort promise that lives as long as the stream, and each race
     * leaves a reaction on it holding its chunk until the stream ends — a streamed rebuild then kept
     * every row it had read (130 MB per million zset members, bench/README.md "Memory"). Leaving the
     * loop closes the cursor.
     */
    async stream(view, writer, paramsList, range, signal) {
      const writeRows = async (rows: readonly Row[]) => {
        for (const raw of rows) {
          if (signal?.aborted) throw signal.reason ?? new Error('aborted');
          const pending = writer.add(view.map ? view.map(raw) : raw);
          if (pending) await pending;
        }
      };
      const writeChunks = async (chunks: AsyncIterable<Row[]>) => {
        for await (const rows of chunks) await writeRows(rows);
      };
      if (view.shape === 'list' || view.shape === 'set') {
        // Rows keep the rank column (RANK_COLUMN) that orders a list: the writers leave it out.
        const rows = groupedRows(view, paramsList);
        return rows instanceof Promise ? writeRows(await rows) : writeChunks(rows);
      }
      if (paramsList && paramsList.length > 1) return writeRows(await batchQuery(view, paramsList));
      const params = paramsList?.[0];
      const query = view.query(db, params, range);
      if (params && query.execute) return writeRows(await query.execute());
      if (params || !view.chunking || !query.execute) {
        const source = params ? query : inScoreOrder(view, query);
        return writeChunks(readAhead(chunksOf(db, source, chunkSize), 2));
      }

      const span = range ?? (await spanOf(view));
      const width = BigInt(span.to) - BigInt(span.from);
      const pieces = splitRange(
        span,
        Math.max(PIECES, Number((width + MAX_PIECE_KEYS - 1n) / MAX_PIECE_KEYS)),
      );
      const fetchPiece = (piece: KeyRange) => {
        const rows = view.query(db, undefined, piece).execute!();
        rows.catch(() => undefined); // awaited below; until then a rejection must not count as unhandled
        return rows;
      };
      let next = pieces.length > 0 ? fetchPiece(pieces[0]!) : undefined;
      for (let i = 0; next; i++) {
        const rows = await next;
        next = i + 1 < pieces.length ? fetchPiece(pieces[i + 1]!) : undefined;
        await writeRows(rows);
      }
    },

    async chunkRanges(view) {
      const chunking = view.chunking ?? notChunked(view);
      const span = await spanOf(view);
      const width = BigInt(span.to) - BigInt(span.from);
      return splitRange(span, Number((width + BigInt(chunking.size) - 1n) / BigInt(chunking.size)));
    },
  };
}
