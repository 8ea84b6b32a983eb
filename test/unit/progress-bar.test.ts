import { describe, expect, it } from 'vitest';
import { renderProgress } from '../../src/cli/progress-bar.ts';

describe('renderProgress', () => {
  it("draws rows written against the last rebuild's rows, elapsed time and an ETA from the rate so far", () => {
    expect(renderProgress({ rows: 5000, lastRows: 20_000, elapsedMs: 4000 }, 20)).toBe(
      '[#####...............] 5,000/20,000 rows  4s elapsed, ETA 12s',
    );
  });

  it('fills the bar and drops the ETA once the last count is reached or passed', () => {
    expect(renderProgress({ rows: 21_000, lastRows: 20_000, elapsedMs: 125_000 }, 10)).toBe(
      '[##########] 21,000/20,000 rows  2m05s elapsed',
    );
  });

  it('says only what it knows without a previous rebuild or a row count', () => {
    expect(renderProgress({ rows: 1234, lastRows: null, elapsedMs: 1500 })).toBe('1,234 rows  2s elapsed');
    expect(renderProgress({ rows: null, lastRows: 100, elapsedMs: 900 })).toBe('refreshing… 1s elapsed');
  });
});
