import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';

/**
 * A LIFO stack of cleanup steps (graphile-worker's "releasers"): whatever start-up acquired is pushed
 * as it is acquired, and `release()` undoes it in reverse order, running every step even when one
 * fails — so a start-up that dies half-way still closes what it opened.
 */
export interface ReleaseStack {
  push(name: string, release: () => Promise<void> | void): void;
  /** Runs every pushed step once, newest first. Idempotent. */
  release(): Promise<void>;
}

export function createReleaseStack(logger: Logger): ReleaseStack {
  const steps: { name: string; release: () => Promise<void> | void }[] = [];
  let releasing: Promise<void> | undefined;
  return {
    push(name, release) {
      steps.push({ name, release });
    },
    release() {
      releasing ??= (async () => {
        for (let step = steps.pop(); step; step = steps.pop()) {
          try {
            await step.release();
          } catch (error) {
            logger.warn({ step: step.name, err: error }, `release failed: ${describeError(error)}`);
          }
        }
      })();
      return releasing;
    },
  };
}
