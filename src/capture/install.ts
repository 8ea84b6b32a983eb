import { type Kysely, sql } from 'kysely';
import type { CapturedTable } from './tables.ts';
import { installedCaptures, installStatements, isCurrent, uninstallStatements } from './triggers.ts';

// `capture install` / `uninstall` and the one-line problems `capture status` and start-up report.

// biome-ignore lint/suspicious/noExplicitAny: the user's database of any type
type Db = Kysely<any>;

export interface CaptureChange {
  /** The declared table (or, for a removal, the relation the triggers were on). */
  table: string;
  /** `missing`: the declared table does not exist, so nothing could be installed on it. */
  action: 'created' | 'updated' | 'removed' | 'unchanged' | 'missing';
  /** What the triggers record now. */
  columns: string[];
  statements: string[];
}

/**
 * What install would do: create or update the triggers of every declared table that lacks current
 * ones, and remove capture from tables no loaded view declares (or from a relation renamed away
 * from its declared name). Read-only.
 */
export async function planInstall(db: Db, tables: Map<string, CapturedTable>): Promise<CaptureChange[]> {
  const installed = await installedCaptures(db);
  const missing = new Set(await missingTables(db, [...tables.keys()]));
  const changes: CaptureChange[] = [];
  for (const table of tables.values()) {
    if (missing.has(table.table)) {
      changes.push({ table: table.table, action: 'missing', columns: table.columns, statements: [] });
      continue;
    }
    const current = installed.find((entry) => entry.declared === table.table && entry.sameRelation);
    if (isCurrent(current, table)) {
      changes.push({ table: table.table, action: 'unchanged', columns: table.columns, statements: [] });
      continue;
    }
    changes.push({
      table: table.table,
      action: current ? 'updated' : 'created',
      columns: table.columns,
      statements: installStatements(table),
    });
  }
  for (const entry of installed) {
    if (tables.has(entry.declared) && entry.sameRelation) continue;
    changes.push({
      table: entry.relation,
      action: 'removed',
      columns: [],
      statements: uninstallStatements(entry).slice(0, -1), // the function may serve the declared table
    });
  }
  return changes;
}

/** Applies a plan in one transaction (all tables or none). */
export async function applyChanges(db: Db, changes: CaptureChange[]): Promise<void> {
  const statements = changes.flatMap((change) => change.statements);
  if (statements.length === 0) return;
  await db.transaction().execute(async (trx) => {
    for (const statement of statements) await sql.raw(statement).execute(trx);
  });
}

/** Removes every capture trigger and function viewkeeper installed, declared or not. */
export async function planUninstall(db: Db): Promise<CaptureChange[]> {
  const installed = await installedCaptures(db);
  return installed.map((entry) => ({
    table: entry.relation,
    action: 'removed' as const,
    columns: [],
    statements: uninstallStatements(entry),
  }));
}

/**
 * One line per problem with the declared capture: a table that does not exist (dropped, or renamed
 * away), triggers missing, disabled or out of date. Empty when all is well.
 */
export async function captureProblems(db: Db, tables: Map<string, CapturedTable>): Promise<string[]> {
  const installed = await installedCaptures(db);
  const missing = new Set(await missingTables(db, [...tables.keys()]));
  const problems: string[] = [];
  for (const table of tables.values()) {
    const views = [...new Set(table.rules.map(({ view }) => view.name))].join(', ');
    const current = installed.find((entry) => entry.declared === table.table && entry.sameRelation);
    const moved = installed.find((entry) => entry.declared === table.table && !entry.sameRelation);
    if (missing.has(table.table)) {
      problems.push(
        `table ${table.table} (views ${views}) does not exist${moved ? `; its capture triggers are on ${moved.relation} (renamed?)` : ' (dropped or renamed?)'}: its changes are not captured`,
      );
    } else if (!current) {
      problems.push(
        `table ${table.table} (views ${views}) has no capture triggers: run viewkeeper capture install`,
      );
    } else if (!isCurrent(current, table)) {
      problems.push(
        `table ${table.table} (views ${views}): capture triggers ${current.enabled ? 'out of date' : 'disabled'} (they must record ${table.columns.join(', ') || 'no columns'}): run viewkeeper capture install`,
      );
    }
  }
  return problems;
}

/** Declared tables that do not exist in the database (their triggers went with them). */
async function missingTables(db: Db, tables: string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const { rows } = await sql<{ name: string }>`
    select name from unnest(${tables}::text[]) name where to_regclass(name) is null`.execute(db);
  return rows.map((row) => row.name);
}
