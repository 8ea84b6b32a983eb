/**
 * Evidence that a worker loop still turns. A loop calls `beat()`; `stalled()` says whether it has not
 * for longer than `stallMs` although it has work (`backlog() > 0`; without one, any silence counts).
 * Work that only just arrived at an idle worker is given `stallMs` from the moment it was first seen
 * waiting, so a worker idle for an hour is not red the instant a job lands.
 */
export interface Progress {
  beat(): void;
  stalled(): Promise<boolean>;
}

export function createProgress(options: { stallMs: number; backlog?: () => Promise<number> }): Progress {
  let last = Date.now();
  let waitingSince: number | undefined;
  return {
    beat() {
      last = Date.now();
      waitingSince = undefined;
    },
    async stalled() {
      const now = Date.now();
      if (now - last <= options.stallMs) return false;
      if (!options.backlog) return true;
      if ((await options.backlog()) === 0) {
        waitingSince = undefined;
        return false;
      }
      waitingSince ??= now;
      return now - Math.max(last, waitingSince) > options.stallMs;
    },
  };
}
