import { isCompilable, type Kysely, sql } from 'kysely';
import { columnsOf, relationExists } from '../db/catalog.ts';
import { type ReadOnlySession, sqlState } from '../db/read-only.ts';
import { describeError } from '../errors.ts';
import type { KeyRange, ViewDefinition } from './define-view.ts';
import { type ParamType, validateParams } from './params.ts';
import { batchStatement } from './row-source.ts';

// `viewkeeper check` for one view: its queries compiled and run against the database with LIMIT 0
// (so they cost a plan, not a scan), their columns compared with what the view's key, member,
// score, value and fields name, and its dependsOn and chunking tables looked up. Nothing is written:
// everything runs in the caller's read-only session.

type Row = Record<string, unknown>;

/** What check found: problems fail it; notes say what could not be checked. */
export interface CheckReport {
  problems: string[];
  notes: string[];
}

/**
 * A value of each param type. A partial query is built with these and run with LIMIT 0: the values
 * are bound parameters, so any value of the right type plans the same query.
 */
const PLACEHOLDERS: Record<ParamType, unknown> = {
  bigint: '0',
  integer: 0,
  text: '',
  uuid: '00000000-0000-0000-0000-000000000000',
  boolean: false,
};
const UNDEFINED_TABLE = '42P01';

// biome-ignore lint/suspicious/noExplicitAny: user queries over any database type
type Trx = Kysely<any>;

/** The columns the query's rows have, read from a LIMIT 0 run (one row of nulls, joined on). */
async function outputColumns(trx: Trx, query: unknown): Promise<string[]> {
  const { rows } = await sql<Row>`
    select vk_check.* from (select) as vk_one
    left join (select * from (${query}) as vk_q limit 0) as vk_check on true`.execute(trx);
  return Object.keys(rows[0] ?? {});
}

/** The columns the writer sees: after `map`, applied to a row of nulls (undefined if map cannot). */
function writtenColumns(view: ViewDefinition, columns: string[]): string[] | undefined {
  if (!view.map) return columns;
  try {
    return Object.keys(view.map(Object.fromEntries(columns.map((column) => [column, null]))));
  } catch {
    return undefined;
  }
}

/** What the view's key, member, score, value and fields need of its rows that `columns` lacks. */
function columnProblem(view: ViewDefinition, columns: string[]): string | undefined {
  const has = (column: string) => columns.includes(column);
  const missing: string[] = [];
  for (const column of view.key.columns) if (!has(column)) missing.push(`key {${column}}`);
  for (const column of view.member?.columns ?? []) if (!has(column)) missing.push(`member {${column}}`);
  if (view.score !== undefined && !has(view.score)) missing.push(`score ${view.score}`);
  if (view.value !== undefined && !has(view.value)) missing.push(`value ${view.value}`);
  for (const field of view.fields ?? []) if (!has(field)) missing.push(`field ${field}`);
  if (view.batchColumn !== undefined && !has(view.batchColumn)) {
    missing.push(`batchPartials param ${view.batchColumn}`);
  }
  const listed = columns.join(', ') || 'none';
  if (missing.length > 0) return `${missing.join(', ')} not among the query's columns (${listed})`;
  const rest = columns.filter((column) => !view.key.columns.includes(column));
  if (view.shape === 'hash' && view.fields === undefined && rest.length === 0) {
    return `the query returns no column besides the key (${listed}): a hash needs fields`;
  }
  if (view.shape === 'value' && view.value === undefined && rest.length !== 1) {
    return `set \`value\` to the column to store: the query returns ${rest.join(', ') || 'nothing'} besides the key`;
  }
  return undefined;
}

export async function checkView(session: ReadOnlySession, view: ViewDefinition): Promise<CheckReport> {
  const problems: string[] = [];
  const notes: string[] = [];
  const problem = (text: string) => problems.push(`view ${view.name}: ${text}`);

  /** Builds, compiles and runs one of the view's queries; its columns, or undefined after a problem. */
  async function probe(
    what: string,
    build: (trx: Trx) => unknown,
    sample = false,
  ): Promise<{ columns?: string[]; state?: string }> {
    const prefix = what ? `${what}: ` : '';
    const result = await session.attempt(async (trx) => {
      let query: unknown;
      try {
        query = build(trx);
      } catch (error) {
        throw new Error(`the query function threw: ${describeError(error)}`);
      }
      return isCompilable(query) ? outputColumns(trx, query) : undefined;
    });
    // With sample params, a data error (class 22: "invalid input syntax for type uuid") is the
    // sample's, not the query's: it was planned, and only then refused the value.
    if (!result.ok) {
      const state = sqlState(result.error);
      if (!(sample && state?.startsWith('22'))) problem(`${prefix}${describeError(result.error)}`);
      return { state };
    }
    if (result.value === undefined) {
      notes.push(`view ${view.name}: ${what || 'query'} not checked (not a Kysely query builder)`);
      return {};
    }
    return { columns: result.value };
  }

  /** Compares a query's columns with what the view needs of them; true when it found a problem. */
  function compare(what: string, columns: string[] | undefined): boolean {
    if (!columns) return false;
    const written = writtenColumns(view, columns);
    if (!written) {
      notes.push(`view ${view.name}: columns not compared (map() throws on a row of nulls)`);
      return false;
    }
    const found = columnProblem(view, written);
    if (found) problem(`${what ? `${what}: ` : ''}${found}`);
    return found !== undefined;
  }

  const full = await probe('', (trx) => view.query(trx, undefined));
  const fullColumnsWrong = compare('', full.columns);

  if (view.params && full.columns) {
    const params = validateParams(
      view.name,
      view.params,
      Object.fromEntries(Object.entries(view.params).map(([name, type]) => [name, PLACEHOLDERS[type]])),
    );
    const partial = await probe('partial query', (trx) => view.query(trx, params), true);
    if (!fullColumnsWrong) compare('partial query', partial.columns);
    const column = view.batchColumn;
    if (column !== undefined && !problems.length) {
      await probe(
        `batchPartials (${column} = any(…))`,
        (trx) => batchStatement(view, view.query(trx, undefined), [params[column]]),
        true,
      );
    }
  }

  if (view.chunking && full.columns) {
    const { table, column } = view.chunking;
    const found = await session.attempt((trx) => columnsOf(trx, table));
    if (!found.ok || found.value === undefined) problem(`chunking table ${table} does not exist`);
    else if (!found.value.includes(column)) problem(`chunking column ${column} is not a column of ${table}`);
    const range: KeyRange = { from: '0', to: '1' };
    await probe('chunk query', (trx) => view.query(trx, undefined, range));
  }

  // A query that failed on a missing relation already names it; the dependsOn line would repeat it.
  if (full.state !== UNDEFINED_TABLE) {
    const absent: string[] = [];
    for (const table of view.dependsOn) {
      const found = await session.attempt((trx) => relationExists(trx, table));
      if (!found.ok || !found.value) absent.push(table);
    }
    if (absent.length > 0) {
      problem(
        `dependsOn names ${absent.length === 1 ? 'a table that does' : 'tables that do'} not exist: ${absent.join(', ')}`,
      );
    }
  }
  return { problems, notes };
}
