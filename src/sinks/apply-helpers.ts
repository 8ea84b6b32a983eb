import { type RawBuilder, sql, type Transaction } from 'kysely';
import { ViewkeeperError } from '../errors.ts';
import { compareOrder, type OpOrder, orderOf } from './op-order.ts';

// Set-based building blocks for a sink's `apply`: every helper sends whole columns as arrays
// (`unnest`), never one statement per op, and never pastes a value into SQL text.

/** SQL types a helper column may have (the cast of its `unnest` array). */
export type ColumnType =
  | 'bigint'
  | 'integer'
  | 'smallint'
  | 'numeric'
  | 'double precision'
  | 'real'
  | 'text'
  | 'boolean'
  | 'uuid'
  | 'date'
  | 'timestamptz'
  | 'jsonb';

const COLUMN_TYPES: readonly ColumnType[] = [
  'bigint',
  'integer',
  'smallint',
  'numeric',
  'double precision',
  'real',
  'text',
  'boolean',
  'uuid',
  'date',
  'timestamptz',
  'jsonb',
];
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

type Row = Record<string, unknown>;

export interface UpsertSpec<O> {
  /** Target table, optionally schema-qualified (`app.votes`). */
  table: string;
  /** Columns of a unique index: the conflict target and the identity of a row. */
  key: readonly string[];
  /** Every column written, with its SQL type. */
  columns: Readonly<Record<string, ColumnType>>;
  /** The row an op writes. @defaultValue the op's fields named in `columns` */
  row?: (op: O) => Row;
  /** Columns overwritten when the row exists. @defaultValue every column not in `key` */
  update?: readonly string[];
  /**
   * A `numeric` column of the table (not listed in `columns`) where the upsert keeps the order of the
   * op whose values the row holds, so "latest wins" across batches is decided by the row itself, in
   * the upsert's own statement. Without it the order of every upserted key is kept in a table of
   * viewkeeper's (`write_versions`): one more row written per key. A row whose column is null (written
   * by something else) is older than any op.
   * @defaultValue none: orders are kept in viewkeeper.write_versions
   */
  order?: string;
}

export interface IncrementSpec {
  /** Target table, optionally schema-qualified. */
  table: string;
  /** The column rows are found by (usually the primary key). */
  key: string;
  keyType: ColumnType;
  /** The counter column. */
  column: string;
  /** Whole-number deltas; several for one key are summed before the update. */
  rows: readonly { key: string | number; by: number }[];
}

/** Helpers bound to the running transaction and sink, handed to `apply`. */
export interface SinkTools {
  /**
   * Upserts one row per key, the latest op winning: ops of the batch are reduced to the newest per
   * key, and an op older than one already applied for its key (a late redelivery) is dropped.
   * Returns the rows actually written.
   */
  upsert<O extends object>(ops: readonly O[], spec: UpsertSpec<O>): Promise<Row[]>;
  /**
   * Adds deltas to a counter column, coalesced per key (one UPDATE for the whole batch). Not
   * "latest wins": every new op counts once (the ledger guarantees once). Returns the rows updated.
   */
  increment(spec: IncrementSpec): Promise<number>;
}

function fail(message: string): never {
  throw new ViewkeeperError('E_SINK_DEFINITION', message);
}

function tableRef(table: string): RawBuilder<unknown> {
  const parts = typeof table === 'string' ? table.split('.') : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    fail(`table ${JSON.stringify(table)} must be a table name, optionally schema-qualified`);
  }
  return sql.id(...parts);
}

function columnRef(name: string): RawBuilder<unknown> {
  if (typeof name !== 'string' || !IDENTIFIER.test(name))
    fail(`column ${JSON.stringify(name)} is not a column name`);
  return sql.id(name);
}

function castOf(type: ColumnType): RawBuilder<unknown> {
  if (!COLUMN_TYPES.includes(type))
    fail(`column type ${JSON.stringify(type)} is not one of ${COLUMN_TYPES.join(', ')}`);
  return sql.raw(`${type}[]`); // from the list above, not user input
}

function cell(type: ColumnType, value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (type === 'jsonb') return JSON.stringify(value);
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function keyText(value: unknown): string {
  return value instanceof Date ? value.toISOString() : String(value);
}

/** `select * from unnest($1::t1[], $2::t2[]) as u(c1, c2)` over column arrays. */
function unnestRows(columns: [string, ColumnType][], rows: Row[]): RawBuilder<unknown> {
  const arrays = columns.map(
    ([name, type]) => sql`${rows.map((row) => cell(type, row[name]))}::${castOf(type)}`,
  );
  return sql`select * from unnest(${sql.join(arrays)}) as u(${sql.join(columns.map(([name]) => columnRef(name)))})`;
}

const VERSIONS = sql`viewkeeper.write_versions`;
/** An op's order as one number (decimal text, for a numeric column): job time, then seq (< 10^25). */
function orderNumber(order: OpOrder): string {
  return (BigInt(order.ts) * 10n ** 25n + order.seq).toString();
}

// biome-ignore lint/suspicious/noExplicitAny: sinks bring their own database types
export function createSinkTools(trx: Transaction<any>, sink: string): SinkTools {
  return {
    async upsert(ops, spec) {
      const table = tableRef(spec.table);
      const columns = Object.entries(spec.columns ?? {}) as [string, ColumnType][];
      if (columns.length === 0) fail(`upsert into ${spec.table}: columns must name at least one column`);
      for (const [name, type] of columns) {
        columnRef(name);
        castOf(type);
      }
      const key = [...(spec.key ?? [])];
      if (key.length === 0 || !key.every((name) => Object.hasOwn(spec.columns, name))) {
        fail(
          `upsert into ${spec.table}: key ${JSON.stringify(spec.key)} must name columns listed in columns`,
        );
      }
      const update = spec.update ?? columns.map(([name]) => name).filter((name) => !key.includes(name));
      for (const name of update) {
        if (!Object.hasOwn(spec.columns, name))
          fail(`upsert into ${spec.table}: update column ${name} is not in columns`);
      }

      if (spec.order !== undefined) {
        columnRef(spec.order);
        if (Object.hasOwn(spec.columns, spec.order))
          fail(`upsert into ${spec.table}: order column ${spec.order} must not be listed in columns`);
      }

      // Newest op per key within the batch.
      const latest = new Map<string, { row: Row; order: OpOrder }>();
      for (const op of ops) {
        const order = orderOf(op);
        if (!order) fail('upsert: pass the ops given to apply (or a subset of them), not copies');
        const row = spec.row ? spec.row(op) : (op as Row);
        const identity = `${spec.table}|${JSON.stringify(key.map((name) => keyText(row[name])))}`;
        const seen = latest.get(identity);
        if (!seen || compareOrder(seen.order, order) < 0) latest.set(identity, { row, order });
      }
      if (latest.size === 0) return [];
      // One lock order for every transaction (sorted keys): concurrent batches cannot deadlock.
      const identities = [...latest.keys()].sort();

      const names = sql.join(columns.map(([name]) => columnRef(name)));
      const conflict = sql.join(key.map(columnRef));
      const assignments = update.map((name) => sql`${columnRef(name)} = excluded.${columnRef(name)}`);

      if (spec.order !== undefined) {
        // Latest wins across batches, decided in the upsert: an existing row is only overwritten by an
        // op that came after the one it holds. The order is unique per op, so it names the winners.
        const orderColumn = columnRef(spec.order);
        const orders = identities.map((id) => orderNumber(latest.get(id)!.order));
        const withOrder: [string, ColumnType][] = [...columns, [spec.order, 'numeric']];
        const rows = identities.map((id, index) => ({
          ...latest.get(id)!.row,
          [spec.order!]: orders[index],
        }));
        const won = await sql<{ vk_order: string }>`
          insert into ${table} (${names}, ${orderColumn}) ${unnestRows(withOrder, rows)}
          on conflict (${conflict}) do update set ${sql.join([...assignments, sql`${orderColumn} = excluded.${orderColumn}`])}
          where ${table}.${orderColumn} is null or ${table}.${orderColumn} < excluded.${orderColumn}
          returning ${orderColumn}::text as vk_order`.execute(trx);
        const winners = new Set(won.rows.map((row) => row.vk_order));
        return identities.filter((_, index) => winners.has(orders[index]!)).map((id) => latest.get(id)!.row);
      }

      // Latest wins across batches too: a key's stored version only moves forward, and only the keys
      // whose version this batch advanced are written.
      const won = await sql<{ key: string }>`
        insert into ${VERSIONS} (sink, key, ts, seq)
        select ${sink}, u.key, u.ts, u.seq
        from unnest(${identities}::text[], ${identities.map((id) => latest.get(id)!.order.ts)}::bigint[],
                    ${identities.map((id) => latest.get(id)!.order.seq.toString())}::bigint[]) as u(key, ts, seq)
        on conflict (sink, key) do update set ts = excluded.ts, seq = excluded.seq, applied_at = now()
        where (write_versions.ts, write_versions.seq) < (excluded.ts, excluded.seq)
        returning key`.execute(trx);
      const winners = new Set(won.rows.map((row) => row.key));
      const rows = identities.filter((id) => winners.has(id)).map((id) => latest.get(id)!.row);
      if (rows.length === 0) return [];

      const action = update.length === 0 ? sql`do nothing` : sql`do update set ${sql.join(assignments)}`;
      await sql`insert into ${table} (${names}) ${unnestRows(columns, rows)} on conflict (${conflict}) ${action}`.execute(
        trx,
      );
      return rows;
    },

    async increment(spec) {
      const table = tableRef(spec.table);
      const key = columnRef(spec.key);
      const column = columnRef(spec.column);
      const sums = new Map<string, { key: unknown; by: bigint }>();
      for (const row of spec.rows) {
        if (!Number.isSafeInteger(row.by))
          fail(`increment ${spec.table}.${spec.column}: by must be a whole number, got ${row.by}`);
        const text = keyText(row.key);
        const seen = sums.get(text);
        if (seen) seen.by += BigInt(row.by);
        else sums.set(text, { key: row.key, by: BigInt(row.by) });
      }
      const entries = [...sums.entries()]
        .filter(([, sum]) => sum.by !== 0n)
        .sort(([a], [b]) => (a < b ? -1 : 1));
      if (entries.length === 0) return 0;
      const result = await sql`
        update ${table} as t set ${column} = t.${column} + u.by
        from unnest(${entries.map(([, sum]) => cell(spec.keyType, sum.key))}::${castOf(spec.keyType)},
                    ${entries.map(([, sum]) => sum.by.toString())}::bigint[]) as u(k, by)
        where t.${key} = u.k`.execute(trx);
      return Number(result.numAffectedRows ?? 0n);
    },
  };
}
