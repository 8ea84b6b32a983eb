/** A sleep that `wake()` ends early: the idle wait of a polling loop that work can interrupt. */
export interface Sleeper {
  /** Resolves after `ms`, or at the next `wake()`, whichever comes first. */
  sleep(ms: number): Promise<void>;
  /** Ends the sleep in progress, if any (a wake with nobody asleep is not remembered). */
  wake(): void;
}

export function createSleeper(): Sleeper {
  let wake: (() => void) | undefined;
  return {
    sleep(ms) {
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        }
        wake = done;
      });
    },
    wake() {
      wake?.();
    },
  };
}
