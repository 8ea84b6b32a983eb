import type { Progress } from './progress.ts';

export interface ReadinessOptions {
  /** Dependencies that must answer: name → a probe that rejects (or hangs) when it does not. */
  probes: Record<string, () => Promise<unknown>>;
  /**
   * Dependencies the daemon works without, at a cost (a read replica: full rebuilds read the primary
   * meanwhile): one that does not answer is listed as `degraded` and leaves the daemon ready.
   */
  degradable?: Record<string, () => Promise<unknown>>;
  /** Worker loops that must be making progress, by name. */
  workers: Record<string, Progress>;
  /** A probe slower than this fails. @defaultValue 2000 */
  timeoutMs?: number;
}

export interface Readiness {
  /**
   * Ready = started, not stopping, every probe answered in time and no worker stalled. `degraded`
   * (present only when not empty) names the degradable dependencies that did not answer.
   */
  check(): Promise<ReadinessResult>;
  /** Start-up finished: from now on the probes decide. */
  started(): void;
  /** The first SIGTERM: not ready from now on, so load balancers drain the daemon first. */
  stopping(): void;
}

export interface ReadinessResult {
  ready: boolean;
  failing: string[];
  degraded?: string[];
}

function within(probe: () => Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    Promise.resolve()
      .then(probe)
      .then(
        () => resolve(true),
        () => resolve(false),
      )
      .finally(() => clearTimeout(timer));
  });
}

/** Readiness as "working", not just "up". Concurrent checks share one round of probes. */
export function createReadiness(options: ReadinessOptions): Readiness {
  const timeoutMs = options.timeoutMs ?? 2000;
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let inFlight: Promise<ReadinessResult> | undefined;

  async function probeAll(): Promise<ReadinessResult> {
    const probes = Object.entries(options.probes).map(async ([name, probe]) =>
      (await within(probe, timeoutMs)) ? undefined : name,
    );
    const workers = Object.entries(options.workers).map(async ([name, progress]) =>
      (await within(async () => {
        if (await progress.stalled()) throw new Error('stalled');
      }, timeoutMs))
        ? undefined
        : `worker:${name}`,
    );
    const optional = Object.entries(options.degradable ?? {}).map(async ([name, probe]) =>
      (await within(probe, timeoutMs)) ? undefined : name,
    );
    const [failing, degraded] = await Promise.all([
      Promise.all([...probes, ...workers]).then((names) => names.filter((name) => name !== undefined)),
      Promise.all(optional).then((names) => names.filter((name) => name !== undefined)),
    ]);
    return { ready: failing.length === 0, failing, ...(degraded.length > 0 ? { degraded } : {}) };
  }

  return {
    async check() {
      if (phase !== 'running') return { ready: false, failing: [phase] };
      inFlight ??= probeAll().finally(() => {
        inFlight = undefined;
      });
      const result = await inFlight;
      // A SIGTERM that arrived during the probes wins.
      return phase === 'running' ? result : { ready: false, failing: [phase] };
    },
    started() {
      if (phase === 'starting') phase = 'running';
    },
    stopping() {
      phase = 'stopping';
    },
  };
}
