export interface UntilOptions {
  /** @defaultValue 15000 */
  timeoutMs?: number;
  /** @defaultValue 25 */
  everyMs?: number;
  /** More to say in the failure (what the state was). */
  detail?: () => string;
}

/**
 * Polls `condition` until it holds; fails naming `what` after the timeout. A check that throws
 * counts as not yet (a server being restarted answers with errors for a while).
 */
export async function until(
  condition: () => Promise<boolean> | boolean,
  what: string,
  options: UntilOptions | number = {},
): Promise<void> {
  const {
    timeoutMs = 15_000,
    everyMs = 25,
    detail,
  } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve(condition()).catch(() => false))) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? ` ${detail()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The error `promise` rejects with; fails the test when it resolves instead. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}
