import { describe, expect, it } from 'vitest';
import { splitRange } from '../../src/views/refresh-engine.ts';

describe('splitRange', () => {
  it('cuts a range into contiguous pieces that cover it exactly', () => {
    const pieces = splitRange({ from: '1', to: '20001' }, 4);
    expect(pieces).toEqual([
      { from: '1', to: '5001' },
      { from: '5001', to: '10001' },
      { from: '10001', to: '15001' },
      { from: '15001', to: '20001' },
    ]);
  });

  it('never makes empty pieces, and handles ids beyond 2^53', () => {
    expect(splitRange({ from: '5', to: '7' }, 4)).toEqual([
      { from: '5', to: '6' },
      { from: '6', to: '7' },
    ]);
    expect(splitRange({ from: '0', to: '0' }, 4)).toEqual([]);
    const big = splitRange({ from: '9007199254740993', to: '9007199254741003' }, 3);
    expect(big[0]!.from).toBe('9007199254740993');
    expect(big.at(-1)!.to).toBe('9007199254741003');
    for (let i = 1; i < big.length; i++) expect(big[i]!.from).toBe(big[i - 1]!.to);
  });
});
