import type { Kysely, Transaction } from 'kysely';
import type { CaptureFailure, ChangedRow } from '../db/capture-outbox.ts';
import { describeError } from '../errors.ts';
import { isTransient } from '../lib/transient.ts';
import type { RefreshTargetRequest } from '../sinks/commit-batch.ts';
import { asParamsList, type CapturedRow, type CaptureRule } from '../views/capture-spec.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { refreshIdentity, validateParams } from '../views/params.ts';
import type { CapturedTable } from './tables.ts';

// Drained outbox rows → the distinct (view, params) they ask to refresh. A row whose mapping throws,
// lacks a column it reads, or yields params the view refuses is recorded as failed, and its view is
// refreshed whole instead: a refresh too many is cheap, a stale view is not.

export interface MappedChanges {
  targets: RefreshTargetRequest[];
  failures: CaptureFailure[];
}

/** Reasons are one line, and short enough to list. */
function oneLine(text: string): string {
  const line = text.replace(/\s*\n\s*/g, ' ');
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

export async function mapChanges(
  // biome-ignore lint/suspicious/noExplicitAny: lookups query the user's database of any type
  db: Kysely<any> | Transaction<any>,
  tables: Map<string, CapturedTable>,
  rows: ChangedRow[],
): Promise<MappedChanges> {
  const targets = new Map<string, RefreshTargetRequest>();
  const failures: CaptureFailure[] = [];
  const full = (view: ViewDefinition) => {
    targets.set(refreshIdentity(view.name, undefined), { view: view.name, params: undefined, priority: 0 });
  };
  const add = (view: ViewDefinition, raw: unknown) => {
    const params = validateParams(view.name, view.params, raw);
    targets.set(refreshIdentity(view.name, params), { view: view.name, params, priority: 0 });
  };
  const fail = (view: ViewDefinition, row: ChangedRow, reason: string) => {
    failures.push({
      view: view.name,
      table_name: row.table_name,
      row: row.row,
      reason: oneLine(reason),
      captured_at: row.created_at,
    });
    full(view);
  };
  /** A reason when the row lacks a column the rule reads (triggers installed for older mappings). */
  const missing = (rule: CaptureRule, row: ChangedRow) => {
    const absent = rule.columns.find((column) => !Object.hasOwn(row.row, column));
    return absent === undefined
      ? undefined
      : `column ${absent} of ${row.table_name} is not recorded by the installed triggers: run viewkeeper capture install`;
  };

  const byTable = new Map<string, ChangedRow[]>();
  for (const row of rows) {
    const list = byTable.get(row.table_name) ?? [];
    list.push(row);
    byTable.set(row.table_name, list);
  }
  for (const [name, changed] of byTable) {
    const table = tables.get(name);
    if (!table) continue; // no loaded view reads this table any more
    for (const { view, rule } of table.rules) {
      if (rule.kind === 'full' || changed.some((row) => row.op === 'TRUNCATE')) {
        full(view);
        continue;
      }
      const usable: ChangedRow[] = [];
      for (const row of changed) {
        const reason = missing(rule, row);
        if (reason) fail(view, row, reason);
        else usable.push(row);
      }
      if (rule.kind === 'map') {
        for (const row of usable) {
          try {
            for (const params of asParamsList(rule.map(row.row as CapturedRow<string>))) add(view, params);
          } catch (error) {
            fail(view, row, `capture.${name} of view ${view.name}: ${describeError(error)}`);
          }
        }
        continue;
      }
      if (usable.length === 0) continue;
      let produced: unknown;
      try {
        produced = await rule.lookup(
          db,
          usable.map((row) => row.row as CapturedRow<string>),
        );
      } catch (error) {
        if (isTransient(error)) throw error;
        for (const row of usable)
          fail(view, row, `capture.${name} lookup of view ${view.name}: ${describeError(error)}`);
        continue;
      }
      const list = asParamsList(produced);
      for (const params of list) {
        try {
          add(view, params);
        } catch (error) {
          fail(view, usable[0]!, `capture.${name} lookup of view ${view.name}: ${describeError(error)}`);
        }
      }
    }
  }
  return { targets: [...targets.values()], failures };
}
