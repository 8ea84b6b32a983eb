import { toRedisString } from '../redis/codec.ts';
import type { ViewDefinition } from './define-view.ts';
import type { KeyTemplate } from './key-template.ts';

// How a view's rows look once written, for comparing them with what Redis holds (audit.ts), and
// how a key written from a template reads back into the values it was filled with.

type Row = Record<string, unknown>;

/** A key's (or member's) content, normalised so the query's version and Redis' compare by equality. */
export type Content = string | null;

/**
 * A template as a parser: `user_stats:{user_id}` → `/^user_stats:(.*?)$/`. Undefined when it cannot
 * yield every param (then the view is audited whole).
 */
export function templateParser(
  template: KeyTemplate,
  params: string[],
): ((text: string) => Row | undefined) | undefined {
  if (params.length === 0 || !params.every((name) => template.columns.includes(name))) return undefined;
  const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^${template.literals.map(literal).join('(.*?)')}$`, 's');
  return (text) => {
    const match = pattern.exec(text);
    if (!match) return undefined;
    const values: Row = {};
    template.columns.forEach((column, i) => {
      values[column] = match[i + 1];
    });
    return Object.fromEntries(params.map((name) => [name, values[name]]));
  };
}

/** How the writers store a row: hash fields as JSON of sorted [field, value] pairs, a value as is. */
export function rowContent(view: ViewDefinition, row: Row): Content {
  const rest = Object.keys(row).filter((column) => !view.key.columns.includes(column));
  if (view.shape === 'hash') {
    const fields = view.fields ?? rest;
    return JSON.stringify(fields.map((field) => [field, toRedisString(row[field])]).sort());
  }
  return toRedisString(row[view.value ?? rest[0]!]);
}
