/**
 * The shortest time between two runs of one (view, params) when the view sets no `coalesceMs`. Long
 * enough that a burst of requests for a hot key makes about ten runs a second, short enough that a
 * lone request almost never meets it.
 */
export const RUN_SPACING_FLOOR_MS = 100;

/**
 * How long after a run of one (view, params) ends the next one may start (the coalescing window the
 * finishing run opens). By default the longer of the floor and the run's own duration: a request
 * for a key that has not run in the last moment starts at once, while a hot key can keep its view
 * busy at most half the time. A view's `coalesceMs` replaces the rule with a fixed window (a rate
 * limit: at most one run per window, paid for by every request that arrives inside it).
 */
export function runSpacingMs(coalesceMs: number | undefined, runMs: number): number {
  if (coalesceMs !== undefined) return coalesceMs;
  return Math.max(RUN_SPACING_FLOOR_MS, Math.round(runMs));
}
