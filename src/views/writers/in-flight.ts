/**
 * Bounds how many Redis calls a writer has outstanding: callers fire commands without awaiting them
 * (so the Postgres stream and the Redis writes overlap), and `track` only makes them wait when the
 * window is full. The first rejection is kept and rethrown by `drain`.
 */
export class InFlight<T> {
  readonly #max: number;
  readonly #pending = new Set<Promise<void>>();
  readonly #results: T[] = [];
  #error: unknown;

  constructor(max: number) {
    this.#max = max;
  }

  /** Adds a call; resolves once there is room for another. */
  async track(call: Promise<T>): Promise<void> {
    const settled: Promise<void> = call.then(
      (value) => {
        this.#results.push(value);
        this.#pending.delete(settled);
      },
      (error: unknown) => {
        this.#error ??= error;
        this.#pending.delete(settled);
      },
    );
    this.#pending.add(settled);
    if (this.#error !== undefined) throw this.#error;
    if (this.#pending.size >= this.#max) await Promise.race(this.#pending);
    if (this.#error !== undefined) throw this.#error;
  }

  /** Waits for everything; returns every result (in completion order) or throws the first error. */
  async drain(): Promise<T[]> {
    await Promise.all(this.#pending);
    if (this.#error !== undefined) throw this.#error;
    return this.#results;
  }
}
