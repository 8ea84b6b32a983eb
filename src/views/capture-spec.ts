import type { Kysely } from 'kysely';
import { ViewkeeperError } from '../errors.ts';

// How a view declares which of its keys a change to one of its tables touches (change capture).
// The triggers record only the columns the mappings read, as text (exact for bigint and numeric),
// for the old and the new row of an UPDATE, so a row whose key moved refreshes both keys.

/** A captured row: the declared columns as Postgres prints them (`::text`), null for NULL. */
export type CapturedRow<C extends string> = { readonly [K in C]: string | null };

/**
 * How a changed row of one table maps to refresh targets of the view:
 * - `'full'`: rebuild the whole view (once per drained batch, whatever the number of rows);
 * - `{ columns, map }`: the view's params for a row (or several, or undefined for none);
 * - `{ columns, lookup }`: a query returning params rows, for keys the rows do not carry.
 */
export type CaptureTarget<C extends string, P, DB> =
  | 'full'
  | { columns: readonly C[]; map: (row: CapturedRow<C>) => P | P[] | undefined }
  | { columns: readonly C[]; lookup: (db: Kysely<DB>, rows: CapturedRow<C>[]) => Promise<P[]> };

/**
 * The `capture` option of a view, typed against the user's database: table names and columns must
 * exist in `DB`, and a mapping reads only the columns it declares. `Cap` (inferred) is, per table,
 * the union of the declared column names.
 */
export type CaptureOptions<DB, Cap, P> = {
  [T in keyof Cap]: T extends keyof DB ? CaptureTarget<Cap[T] & keyof DB[T] & string, P, DB> : never;
};

/** A capture mapping after validation, one per (view, table). */
export type CaptureRule =
  | { table: string; kind: 'full'; columns: [] }
  | { table: string; kind: 'map'; columns: string[]; map: (row: CapturedRow<string>) => unknown }
  | {
      table: string;
      kind: 'lookup';
      columns: string[];
      // biome-ignore lint/suspicious/noExplicitAny: the registry holds views of any database type
      lookup: (db: Kysely<any>, rows: CapturedRow<string>[]) => Promise<unknown>;
    };

/** `users` or `schema.users`: what a trigger can be created on, and what install quotes. */
export const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;
const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Validates a view's `capture` option; `hasParams` = the view takes partial-refresh params. */
export function resolveCapture(view: string, raw: unknown, hasParams: boolean): CaptureRule[] {
  function fail(message: string): never {
    throw new ViewkeeperError('E_VIEW_DEFINITION', `view ${JSON.stringify(view)}: capture ${message}`);
  }
  if (raw === undefined) return [];
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    fail(`must be an object of table → mapping, got ${JSON.stringify(raw)}`);
  }
  const rules: CaptureRule[] = [];
  for (const [table, target] of Object.entries(raw as Record<string, unknown>)) {
    if (!TABLE_NAME.test(table))
      fail(`table ${JSON.stringify(table)} is not a table name (table or schema.table)`);
    if (target === 'full') {
      rules.push({ table, kind: 'full', columns: [] });
      continue;
    }
    const entry = target as { columns?: unknown; map?: unknown; lookup?: unknown } | null;
    if (!entry || typeof entry !== 'object') {
      fail(
        `.${table} must be 'full', { columns, map } or { columns, lookup }, got ${JSON.stringify(target)}`,
      );
    }
    const columns = entry.columns;
    if (
      !Array.isArray(columns) ||
      columns.length === 0 ||
      !columns.every((column) => typeof column === 'string' && COLUMN_NAME.test(column))
    ) {
      fail(`.${table}.columns must be a non-empty list of column names, got ${JSON.stringify(columns)}`);
    }
    if (!hasParams) fail(`.${table}: the view has no partial refresh, so its only mapping is 'full'`);
    const unique = [...new Set(columns as string[])];
    const hasMap = typeof entry.map === 'function';
    const hasLookup = typeof entry.lookup === 'function';
    if (hasMap === hasLookup) fail(`.${table} needs exactly one of map (row => params) or lookup (db, rows)`);
    rules.push(
      hasMap
        ? { table, kind: 'map', columns: unique, map: entry.map as never }
        : { table, kind: 'lookup', columns: unique, lookup: entry.lookup as never },
    );
  }
  return rules;
}

/** Params rows a mapping produced, as a list (a lone object or undefined allowed). */
export function asParamsList(produced: unknown): unknown[] {
  if (produced === undefined || produced === null) return [];
  return Array.isArray(produced) ? produced : [produced];
}
