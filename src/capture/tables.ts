import type { CaptureRule } from '../views/capture-spec.ts';
import type { ViewDefinition } from '../views/define-view.ts';

/** One captured table: what its triggers must record, and which views' mappings read it. */
export interface CapturedTable {
  /** As the views declare it: `posts` or `schema.posts`. */
  table: string;
  /** The union of the columns the views' mappings read, sorted (empty when every mapping is 'full'). */
  columns: string[];
  /** Each view's mapping for this table. */
  rules: { view: ViewDefinition; rule: CaptureRule }[];
}

/** The tables the loaded views capture, by declared name, in name order. */
export function capturedTables(views: Iterable<ViewDefinition>): Map<string, CapturedTable> {
  const tables = new Map<string, CapturedTable>();
  for (const view of views) {
    for (const rule of view.capture) {
      let entry = tables.get(rule.table);
      if (!entry) {
        entry = { table: rule.table, columns: [], rules: [] };
        tables.set(rule.table, entry);
      }
      entry.rules.push({ view, rule });
      entry.columns = [...new Set([...entry.columns, ...rule.columns])].sort();
    }
  }
  return new Map([...tables].sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * Views every table of which is captured: a write-behind commit need not refresh them itself, as the
 * captured changes of its own transaction will (once their triggers are installed).
 */
export function fullyCapturedViews(views: Iterable<ViewDefinition>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const view of views) {
    const captured = new Set(view.capture.map((rule) => rule.table));
    if (captured.size > 0 && view.dependsOn.every((table) => captured.has(table)))
      out.set(view.name, [...captured]);
  }
  return out;
}
