import { slotOf as calculateSlot } from '../redis/slot.ts';
import type { KeyTemplate } from './key-template.ts';

/**
 * A view key template that declares a Redis Cluster hash tag (literal braces, `{{…}}`) is asking for
 * its keys to share a slot: `tenant:{{{tenant_id}}}:user:{id}` puts every key of a tenant in one
 * slot, so one script call writes them all. Redis honours only the first `{` of a key and the first
 * `}` after it, and ignores an empty tag; a template whose declared tag Redis would not honour would
 * silently spread the keys it means to keep together over several slots (one script call each,
 * instead of one). Such a template is refused at load: returns the one-line reason (naming two
 * example keys and their slots), or undefined when the template declares no tag or a working one.
 */
export function hashTagProblem(template: KeyTemplate): string | undefined {
  const literal = template.literals.join('\u0000'); // placeholders as NULs: positions stay comparable
  const open = literal.indexOf('{');
  if (open === -1) {
    // No declared tag; a stray literal `}` alone does no harm.
    return undefined;
  }
  const close = literal.indexOf('}', open + 1);
  const example = (value: string) =>
    template.fill(Object.fromEntries(template.columns.map((column) => [column, value])));
  const keys = [example('1'), example('2')];
  const where = `${keys.map((key) => `${key} (slot ${calculateSlot(key)})`).join(' and ')}`;
  if (close === -1) {
    return `declares a hash tag with {{ but never closes it with }}, so Redis hashes each whole key: ${where}`;
  }
  if (close === open + 1) {
    return `declares an empty hash tag {{}}, which Redis ignores (it hashes each whole key): ${where}`;
  }
  const second = literal.indexOf('{', close + 1);
  if (second !== -1 && literal.indexOf('}', second + 1) !== -1) {
    return `declares more than one hash tag, but Redis hashes only the first: keep one {{…}}; ${where}`;
  }
  return undefined;
}
