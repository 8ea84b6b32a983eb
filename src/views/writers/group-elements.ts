import { ViewkeeperError } from '../../errors.ts';
import type { ViewDefinition } from '../define-view.ts';
import type { Row } from './shape-writer.ts';

/** The most bytes one list element or set member may take; a bigger one fails its group. */
export const MAX_ELEMENT_BYTES = 64 * 1024;

/** The column row-source adds to order a list's rows; not part of any element. */
export const RANK_COLUMN = 'vk_rank';

/**
 * The list element or set member a row becomes: the view's template filled from it, or (lists
 * without a template) the JSON of its columns other than the key's, keys sorted so that a row built
 * by an append and the same row from the query become the same string. The column list is worked
 * out once per encoder (rows of one query share their columns), not per row.
 */
export function createElementEncoder(view: ViewDefinition): (row: Row) => string {
  if (view.shape === 'set') return (row) => view.member!.fill(row);
  if (view.element) return (row) => view.element!.fill(row);
  let columns: string[] = [];
  let signature = '';
  return (row) => {
    const names = Object.keys(row);
    const current = names.join(',');
    if (current !== signature) {
      signature = current;
      columns = names.filter((name) => name !== RANK_COLUMN && !view.key.columns.includes(name)).sort();
    }
    const fields: Row = {};
    for (const column of columns) fields[column] = row[column];
    return JSON.stringify(fields);
  };
}

/** Why `element` cannot be stored, or undefined. */
export function elementProblem(view: ViewDefinition, key: string, element: string): string | undefined {
  // A UTF-16 unit is at most 3 bytes of UTF-8: most elements need no count.
  if (element.length * 3 <= MAX_ELEMENT_BYTES) return undefined;
  const bytes = Buffer.byteLength(element);
  if (bytes <= MAX_ELEMENT_BYTES) return undefined;
  const what = view.shape === 'set' ? 'member' : 'element';
  return `view ${view.name}: ${what} of ${key} is ${bytes} bytes, over the ${MAX_ELEMENT_BYTES}-byte limit`;
}

const ORDER_BYTES = 8;

/**
 * A list row's position as a string that sorts (bytewise, as Lua compares strings) like the row's
 * `orderBy` values: each value as a number (timestamps as epoch ms), encoded as the big-endian
 * bits of a double with the sign flipped so that the bytes order like the numbers. append-list.lua
 * compares these to find whether an element belongs at a list's head.
 */
export function orderKeyOf(view: ViewDefinition, row: Row): string {
  const buffer = Buffer.alloc(ORDER_BYTES * view.list!.orderBy.length);
  for (const [i, column] of view.list!.orderBy.entries()) {
    const value = row[column];
    const number =
      value instanceof Date
        ? value.getTime()
        : typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string'
          ? Number(value)
          : Number.NaN;
    if (!Number.isFinite(number)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `view ${JSON.stringify(view.name)}: orderBy column ${JSON.stringify(column)} is ${JSON.stringify(value)}, not a number or a timestamp`,
      );
    }
    const at = i * ORDER_BYTES;
    buffer.writeDoubleBE(number === 0 ? 0 : number, at); // -0 and 0 are one position
    if (number < 0) {
      for (let b = at; b < at + ORDER_BYTES; b++) buffer[b] = 255 - buffer[b]!;
    } else {
      buffer[at] = buffer[at]! | 0x80;
    }
  }
  return buffer.toString('hex');
}

/** The refresh params that select the group of `row` (every param is a key column), or undefined. */
export function groupParams(view: ViewDefinition, row: Row): Record<string, unknown> | undefined {
  const names = Object.keys(view.params ?? {});
  if (names.length === 0 || !names.every((name) => view.key.columns.includes(name))) return undefined;
  return Object.fromEntries(names.map((name) => [name, row[name]]));
}
