import { createHash } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import { CAPTURE_CHANNEL } from '../db/capture-outbox.ts';
import { TABLE_NAME } from '../views/capture-spec.ts';
import type { CapturedTable } from './tables.ts';

// The triggers of change capture. Per captured table: one PL/pgSQL function in the viewkeeper
// schema that appends ONE outbox row per statement, holding the distinct key projections of the
// statement's rows (old and new for UPDATE), and notifies the daemons, and four statement-level triggers calling it — INSERT,
// UPDATE and DELETE with transition tables (Postgres allows transition tables on single-event
// triggers only), and TRUNCATE, which has no rows and means "everything changed". One call per
// statement: a 100,000-row UPDATE costs one trigger call and one outbox tuple.
//
// Identifiers are validated (TABLE_NAME, column names) and double-quoted; the declared table name
// travels as the trigger's argument, so the catalog tells which declaration a trigger belongs to
// even after its table was renamed.

// biome-ignore lint/suspicious/noExplicitAny: runs against the user's database of any type
type Db = Kysely<any> | Transaction<any>;

export const TRIGGERS = {
  insert: 'viewkeeper_capture_insert',
  update: 'viewkeeper_capture_update',
  delete: 'viewkeeper_capture_delete',
  truncate: 'viewkeeper_capture_truncate',
} as const;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteTable(table: string): string {
  if (!TABLE_NAME.test(table)) throw new Error(`not a table name: ${JSON.stringify(table)}`);
  return table.split('.').map(quoteIdent).join('.');
}

/** `capture_posts`, `capture_app__posts`; hashed when the name would pass Postgres' 63 bytes. */
export function functionName(table: string): string {
  const plain = `capture_${table.replace('.', '__').toLowerCase()}`;
  if (plain.length <= 63) return plain;
  const hash = createHash('sha1').update(table).digest('hex').slice(0, 10);
  return `${plain.slice(0, 52)}_${hash}`;
}

/** The function body install writes; also what `status` compares the installed one with. */
export function functionBody(columns: string[]): string {
  // Keys are cast to text before the DISTINCT/UNION: every type casts to text, not every type has
  // an equality to hash by (a trigger that fails would fail the writer's statement).
  const project = (alias: string) =>
    columns.map((c, i) => `${alias}.${quoteIdent(c)}::text as k${i}`).join(', ');
  const names = `'{${columns.join(',')}}'`; // column names are validated identifiers
  const insert = `insert into viewkeeper.capture_outbox (table_name, op, columns, keys) select tg_argv[0], tg_op, ${names},`;
  // Without key columns (only 'full' mappings) a statement records that it changed something.
  const keys =
    columns.length === 0 ? "'{}'::text[]" : `array_agg(array[${columns.map((_, i) => `k${i}`).join(', ')}])`;
  const from = (alias: string, table: string) =>
    columns.length === 0
      ? `${table} ${alias}`
      : `(select distinct ${project(alias)} from ${table} ${alias}) keys`;
  return `
begin
  if tg_op = 'INSERT' then
    ${insert} ${keys} from ${from('n', 'vk_new')} having count(*) > 0;
  elsif tg_op = 'UPDATE' then
    ${insert} ${keys} from
      (select ${columns.length === 0 ? '1' : project('o')} from vk_old o union select ${columns.length === 0 ? '1' : project('n')} from vk_new n) keys
      having count(*) > 0;
  elsif tg_op = 'DELETE' then
    ${insert} ${keys} from ${from('o', 'vk_old')} having count(*) > 0;
  else
    ${insert} '{}'::text[];
  end if;
  if found then perform pg_notify('${CAPTURE_CHANNEL}', ''); end if;
  return null;
end`;
}

/** The statements that create or replace one table's capture (idempotent: `or replace` throughout). */
export function installStatements(table: CapturedTable): string[] {
  const fn = `viewkeeper.${quoteIdent(functionName(table.table))}`;
  const target = quoteTable(table.table);
  const arg = `'${table.table}'`; // TABLE_NAME admits no quote
  const call = `for each statement execute function ${fn}(${arg})`;
  return [
    `create or replace function ${fn}() returns trigger language plpgsql as $vk$${functionBody(table.columns)}\n$vk$`,
    `create or replace trigger ${TRIGGERS.insert} after insert on ${target} referencing new table as vk_new ${call}`,
    `create or replace trigger ${TRIGGERS.update} after update on ${target} referencing old table as vk_old new table as vk_new ${call}`,
    `create or replace trigger ${TRIGGERS.delete} after delete on ${target} referencing old table as vk_old ${call}`,
    `create or replace trigger ${TRIGGERS.truncate} after truncate on ${target} ${call}`,
  ];
}

/** A set of capture triggers found in the catalog, grouped by the relation they are on. */
export interface InstalledCapture {
  /** The declared name the triggers were installed for (their argument). */
  declared: string;
  /** `schema.table` the triggers are on now (differs from `declared` after a rename). */
  relation: string;
  /** Whether `declared` still resolves to that relation. */
  sameRelation: boolean;
  triggers: string[];
  /** Every trigger enabled (not `ALTER TABLE … DISABLE TRIGGER`). */
  enabled: boolean;
  /** The installed function's body (compare with functionBody). */
  body: string | null;
}

export async function installedCaptures(db: Db): Promise<InstalledCapture[]> {
  const { rows } = await sql<{
    declared: string;
    relation: string;
    same: boolean;
    triggers: string[];
    enabled: boolean;
    body: string | null;
  }>`
    select convert_from(substring(t.tgargs from 1 for position('\\000'::bytea in t.tgargs) - 1), 'UTF8') as declared,
           format('%I.%I', n.nspname, c.relname) as relation,
           bool_and(to_regclass(convert_from(substring(t.tgargs from 1 for position('\\000'::bytea in t.tgargs) - 1), 'UTF8')) is not distinct from c.oid) as same,
           array_agg(t.tgname::text order by t.tgname) as triggers,
           bool_and(t.tgenabled <> 'D') as enabled,
           max(p.prosrc) as body
    from pg_trigger t
    join pg_class c on c.oid = t.tgrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_proc p on p.oid = t.tgfoid
    join pg_namespace pn on pn.oid = p.pronamespace
    where pn.nspname = 'viewkeeper' and t.tgname like 'viewkeeper\\_capture\\_%' and t.tgnargs = 1
    group by 1, 2
    order by 1, 2`.execute(db);
  return rows.map((row) => ({
    declared: row.declared,
    relation: row.relation,
    sameRelation: row.same,
    triggers: row.triggers,
    enabled: row.enabled,
    body: row.body,
  }));
}

/** Whether the installed triggers of `table` are exactly what install would write now. */
export function isCurrent(installed: InstalledCapture | undefined, table: CapturedTable): boolean {
  return (
    installed?.sameRelation === true &&
    installed.enabled &&
    installed.triggers.length === Object.keys(TRIGGERS).length &&
    installed.body?.trim() === functionBody(table.columns).trim()
  );
}

/** The statements that remove capture from a relation (by its current name) and drop its function. */
export function uninstallStatements(installed: InstalledCapture): string[] {
  const target = installed.relation; // already quoted by format('%I.%I')
  return [
    ...Object.values(TRIGGERS).map((name) => `drop trigger if exists ${name} on ${target}`),
    `drop function if exists viewkeeper.${quoteIdent(functionName(installed.declared))}()`,
  ];
}

/** Declared tables (of `tables`) whose capture triggers are installed, enabled and fire into the outbox. */
export async function activeCaptureTables(db: Db, tables: string[]): Promise<Set<string>> {
  if (tables.length === 0) return new Set();
  const { rows } = await sql<{ name: string }>`
    select d.name from unnest(${tables}::text[]) d(name)
    where (select count(*) from pg_trigger t
           where t.tgrelid = to_regclass(d.name) and t.tgenabled <> 'D'
             and t.tgname in (${TRIGGERS.insert}, ${TRIGGERS.update}, ${TRIGGERS.delete})) = 3`.execute(db);
  return new Set(rows.map((row) => row.name));
}
