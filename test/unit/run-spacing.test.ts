import { describe, expect, it } from 'vitest';
import { RUN_SPACING_FLOOR_MS, runSpacingMs } from '../../src/views/run-spacing.ts';

describe('spacing between runs of one (view, params)', () => {
  it('is the longer of the floor and the last run’s duration when the view sets no coalesceMs', () => {
    expect(RUN_SPACING_FLOOR_MS).toBe(100);
    expect(runSpacingMs(undefined, 3)).toBe(100);
    expect(runSpacingMs(undefined, 150.4)).toBe(150);
    expect(runSpacingMs(undefined, 4000)).toBe(4000);
  });

  it('is exactly the view’s coalesceMs when it sets one (a rate limit), 0 included', () => {
    expect(runSpacingMs(1000, 5)).toBe(1000);
    expect(runSpacingMs(1000, 4000)).toBe(1000);
    expect(runSpacingMs(0, 4000)).toBe(0);
  });
});
