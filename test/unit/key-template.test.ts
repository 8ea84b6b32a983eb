import { describe, expect, it } from 'vitest';
import { placeInSlot, slotTag } from '../../src/redis/placement.ts';
import { slotOf as calculateSlot } from '../../src/redis/slot.ts';
import { defineView } from '../../src/views/define-view.ts';
import { parseKeyTemplate } from '../../src/views/key-template.ts';

const query = () => ({ async *stream() {} });
const hashView = (key: string) => () => defineView()({ name: 'tenant_users', shape: 'hash', key, query });

describe('key templates: literal braces for Redis Cluster hash tags', () => {
  it('{{ and }} are literal braces, so {{{column}}} is a hash tag holding the column value', () => {
    const template = parseKeyTemplate('tenant:{{{tenant_id}}}:user:{id}', 'key');
    expect(template.columns).toEqual(['tenant_id', 'id']);
    const a = template.fill({ tenant_id: 7, id: 1 });
    const b = template.fill({ tenant_id: 7, id: 2 });
    expect(a).toBe('tenant:{7}:user:1');
    expect(calculateSlot(a)).toBe(calculateSlot(b)); // one tenant, one slot
    expect(parseKeyTemplate('{{global}}:stats', 'key').fill({})).toBe('{global}:stats');
    // Without doubled braces nothing changes: the templates written before the escape mean the same.
    expect(parseKeyTemplate('user_stats:{user_id}', 'key').fill({ user_id: 5 })).toBe('user_stats:5');
  });

  it('refuses unbalanced braces with one line', () => {
    expect(() => parseKeyTemplate('user:{id', 'key')).toThrow(/^key "user:\{id" has an unbalanced brace/);
    expect(() => parseKeyTemplate('user:id}', 'key')).toThrow(/unbalanced brace.*\{\{ and \}\}/);
    expect(() => parseKeyTemplate('user:{}', 'key')).toThrow(/unbalanced brace/);
  });

  it('a view whose declared hash tag Redis would not honour is refused at load, naming the keys and their slots', () => {
    expect(hashView('t:{{}}:{id}')).toThrow(
      /^view "tenant_users": key "t:\{\{\}\}:\{id\}" declares an empty hash tag .*t:\{\}:1 \(slot \d+\) and t:\{\}:2 \(slot \d+\)$/,
    );
    expect(hashView('t:{{{tenant_id}:{id}')).toThrow(/never closes it with \}\}/);
    expect(hashView('{{{org}}}:{{{id}}}')).toThrow(/more than one hash tag, but Redis hashes only the first/);
    expect(() => hashView('tenant:{{{tenant_id}}}:user:{id}')()).not.toThrow();
  });
});

describe('placement: keys moved into a slot', () => {
  it('a slot tag maps to its slot, and a placed key lands in the slot asked for', () => {
    for (const slot of [0, 1, 8191, 16383]) expect(calculateSlot(slotTag(slot))).toBe(slot);
    const target = calculateSlot('trending:24h');
    expect(calculateSlot(placeInSlot('vk:view:trending:tmp:3', target))).toBe(target);
    // A hash-tagged prefix: the tag goes in front, where Redis looks first.
    const placed = placeInSlot('{vk}:view:trending:tmp:3', target);
    expect(placed.startsWith('{')).toBe(true);
    expect(calculateSlot(placed)).toBe(target);
    // Already there: the name is kept.
    expect(placeInSlot('{vk}:lock:a', calculateSlot('vk'))).toBe('{vk}:lock:a');
  });
});
