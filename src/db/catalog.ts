import { type Kysely, sql } from 'kysely';

// Questions to Postgres's catalogs about a user's tables (by name as written in a definition,
// optionally schema-qualified, resolved on the search_path like a query would).

// biome-ignore lint/suspicious/noExplicitAny: user tables of any database type
type Db = Kysely<any>;

/** Whether `name` resolves to a table, view or other relation. Throws for a malformed name. */
export async function relationExists(db: Db, name: string): Promise<boolean> {
  const { rows } = await sql<{ oid: string | null }>`select to_regclass(${name})::oid as oid`.execute(db);
  return rows[0]?.oid != null;
}

/** The columns of relation `name`, in order; undefined when it does not exist. */
export async function columnsOf(db: Db, name: string): Promise<string[] | undefined> {
  if (!(await relationExists(db, name))) return undefined;
  const { rows } = await sql<{ attname: string }>`
    select attname from pg_attribute
    where attrelid = to_regclass(${name}) and attnum > 0 and not attisdropped order by attnum`.execute(db);
  return rows.map((row) => row.attname);
}

/**
 * The column sets of `name`'s unique indexes that `on conflict (…)` can infer: no expressions, no
 * predicate (a partial index needs its WHERE repeated), INCLUDE columns left out.
 */
export async function uniqueKeys(db: Db, name: string): Promise<string[][]> {
  const { rows } = await sql<{ columns: string[] }>`
    select array_agg(a.attname::text order by a.attname) as columns
    from pg_index i
    join pg_attribute a
      on a.attrelid = i.indrelid and a.attnum = any ((i.indkey::int2[])[0:i.indnkeyatts - 1])
    where i.indrelid = to_regclass(${name}) and i.indisunique and i.indpred is null and i.indexprs is null
    group by i.indexrelid`.execute(db);
  return rows.map((row) => row.columns);
}
