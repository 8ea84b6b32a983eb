import { describe, expect, it } from 'vitest';
import { createL1, type L1Entry } from '../../src/client/l1-cache.ts';

const entry = (value: unknown, bytes: number, groups: string[], id?: string): L1Entry => ({
  value,
  bytes,
  groups,
  freshUntil: Number.MAX_SAFE_INTEGER,
  id,
});

function put(l1: ReturnType<typeof createL1>, key: string, e: L1Entry): boolean {
  return l1.fill(key, e, l1.begin(e.groups, e.id));
}

describe('L1 cache', () => {
  it('evicts the least recently used entry beyond maxEntries', () => {
    const l1 = createL1({ maxEntries: 2, maxBytes: 1000 });
    put(l1, 'a', entry(1, 1, []));
    put(l1, 'b', entry(2, 1, []));
    l1.get('a'); // a is now more recent than b
    put(l1, 'c', entry(3, 1, []));
    expect(l1.get('b')).toBeUndefined();
    expect(l1.get('a')?.value).toBe(1);
    expect(l1.get('c')?.value).toBe(3);
    expect(l1.size).toBe(2);
  });

  it('evicts by estimated bytes, and never stores an entry larger than maxBytes', () => {
    const l1 = createL1({ maxEntries: 100, maxBytes: 100 });
    put(l1, 'a', entry(1, 40, []));
    put(l1, 'b', entry(2, 40, []));
    put(l1, 'c', entry(3, 40, []));
    expect(l1.get('a')).toBeUndefined();
    expect(l1.bytes).toBe(80);
    expect(put(l1, 'huge', entry(4, 101, []))).toBe(false);
    expect(l1.size).toBe(2);
  });

  it('replacing a key keeps the byte count and group index exact', () => {
    const l1 = createL1({ maxEntries: 10, maxBytes: 1000 });
    put(l1, 'a', entry(1, 10, ['g1']));
    put(l1, 'a', entry(2, 30, ['g2']));
    expect(l1.bytes).toBe(30);
    expect(l1.invalidate('g1')).toBe(0);
    expect(l1.invalidate('g2')).toBe(1);
    expect(l1.size).toBe(0);
    expect(l1.bytes).toBe(0);
  });

  it('invalidating a group drops exactly its entries; exceptId keeps our own write', () => {
    const l1 = createL1({ maxEntries: 10, maxBytes: 1000 });
    put(l1, 'k1', entry(1, 1, ['k:user_stats:1', 'v:user_stats']));
    put(l1, 'k2', entry(2, 1, ['k:user_stats:2', 'v:user_stats']));
    put(l1, 'c', entry(3, 1, ['c:profile', 't:user:1'], 'id-1'));
    expect(l1.invalidate('k:user_stats:1')).toBe(1);
    expect(l1.get('k2')).toBeDefined();
    expect(l1.invalidate('c:profile', 'id-1')).toBe(0);
    expect(l1.invalidate('c:profile', 'id-2')).toBe(1);
    put(l1, 'k1', entry(1, 1, ['k:user_stats:1', 'v:user_stats']));
    expect(l1.invalidate('v:user_stats')).toBe(2);
    expect(l1.size).toBe(0);
  });

  it('a read that raced an invalidation does not store its (possibly old) value', () => {
    const l1 = createL1({ maxEntries: 10, maxBytes: 1000 });
    const ticket = l1.begin(['k:a']);
    const other = l1.begin(['k:b']);
    l1.invalidate('k:a'); // the event arrived while the read was in flight
    expect(l1.fill('a', entry(1, 1, ['k:a']), ticket)).toBe(false);
    expect(l1.fill('b', entry(2, 1, ['k:b']), other)).toBe(true);
    // Our own write's event (same id) does not spoil our fill; a clear spoils every pending read.
    const own = l1.begin(['c:x'], 'mine');
    l1.invalidate('c:x', 'mine');
    expect(l1.fill('x', entry(3, 1, ['c:x'], 'mine'), own)).toBe(true);
    const pending = l1.begin(['c:y']);
    l1.clear();
    expect(l1.fill('y', entry(4, 1, ['c:y']), pending)).toBe(false);
    expect(l1.size).toBe(0);
  });
});
