import { isCompilable, type Kysely, type RawBuilder, sql } from 'kysely';
import { ViewkeeperError } from '../errors.ts';
import type { KeyRange, ViewDefinition } from './define-view.ts';
import type { ParamType } from './params.ts';
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
    const full = view.query(db, undefined);
    if (!isCompilable(full)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `view ${JSON.stringify(view.name)}: batchPartials needs the query to be a Kysely query builder`,
      );
    }
    const values = paramsList.map((params) => params[view.batchColumn!]);
    return batchStatement(view, full, values)
      .execute(db)
      .then((result) => result.rows);
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
      const write = async (rows: Iterable<Row> | AsyncIterable<Row>) => {
        for await (const raw of rows) {
          if (signal?.aborted) throw signal.reason ?? new Error('aborted');
          const pending = writer.add(view.map ? view.map(raw) : raw);
          if (pending) await pending;
        }
      };
      if (paramsList && paramsList.length > 1) return write(await batchQuery(view, paramsList));
      const params = paramsList?.[0];
      const query = view.query(db, params, range);
      if (params && query.execute) return write(await query.execute());
      if (params || !view.chunking || !query.execute) return write(query.stream({ chunkSize }));

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
        await write(rows);
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
