import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface Liveness {
  /** Alive unless the event loop's worst delay over the last window passed the threshold. */
  check(): { alive: boolean; eventLoopDelayMs: number };
  stop(): void;
}

/**
 * Liveness is the process and its event loop, nothing else: a database outage must not turn into
 * restarts. The event-loop delay is measured over windows of `windowMs`; the last full window's
 * maximum is what counts (the request being answered proves the loop is not blocked right now).
 */
export function createLiveness(options: { maxDelayMs?: number; windowMs?: number } = {}): Liveness {
  const maxDelayMs = options.maxDelayMs ?? 5000;
  const histogram = monitorEventLoopDelay({ resolution: 20 });
  histogram.enable();
  let lastWindowMax = 0;
  const timer = setInterval(() => {
    lastWindowMax = histogram.max / 1e6;
    histogram.reset();
  }, options.windowMs ?? 10_000);
  timer.unref();
  return {
    check() {
      const delay = Math.round(Math.max(lastWindowMax, histogram.max / 1e6));
      return { alive: delay < maxDelayMs, eventLoopDelayMs: delay };
    },
    stop() {
      clearInterval(timer);
      histogram.disable();
    },
  };
}
