/**
 * A counting semaphore: at most `size` holders at once, the rest queued in arrival order. The refresh
 * worker takes many jobs at a time (so partial refreshes can be batched) but runs only this many
 * engine runs — full rebuilds, chunked-rebuild steps and partial batches — at once.
 */
export interface Slots {
  /** Runs `work` once a slot is free; the slot is released when it settles. */
  run<T>(work: () => Promise<T>): Promise<T>;
}

export function createSlots(size: number): Slots {
  let free = size;
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free += 1;
  };
  return {
    async run(work) {
      if (free > 0) free -= 1;
      else await new Promise<void>((resolve) => waiting.push(resolve));
      try {
        return await work();
      } finally {
        release();
      }
    },
  };
}
