import type { Done, RefreshEngine, RefreshOutcome, RunOptions } from './refresh-engine.ts';

/** One refresh run as the operations surface sees it: no keys, no params. */
export interface ObservedRun {
  view: string;
  /** `chunk` = one key range of a chunked full rebuild (its rows; the rebuild itself ends as `full`). */
  kind: 'full' | 'partial' | 'chunk';
  /** What started it: `queue`, `schedule`, `catch-up`, `write-behind`, `chunk`. */
  trigger: string;
  seconds: number;
}

/** Told about every run the engine finishes or fails. Must not throw, must not block. */
export interface RefreshObserver {
  /** A run that wrote `rows` rows and, unless it was a chunk, published one event. */
  finished(run: ObservedRun & { rows: number }): void;
  /** A run that threw; `code` is the error's stable code (`E_*`, a SQLSTATE, `ECONNREFUSED`…). */
  failed(run: ObservedRun & { code: string }): void;
}

/** A bounded label for an error: its own code when it has a short one, else `unknown`. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Za-z0-9_]{1,40}$/.test(code) ? code : 'unknown';
}

/**
 * The engine with every run reported to `observer`. A wrapper rather than hooks inside the engine:
 * the engine's internals can change without the metrics noticing, and the daemon wires it.
 */
export function observeEngine(engine: RefreshEngine, observer: RefreshObserver): RefreshEngine {
  const trigger = (options: RunOptions | undefined) => options?.trigger ?? 'queue';

  async function watch<T>(
    view: string,
    kind: ObservedRun['kind'],
    options: RunOptions | undefined,
    work: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } catch (error) {
      const seconds = (performance.now() - started) / 1000;
      observer.failed({ view, kind, trigger: trigger(options), seconds, code: errorCode(error) });
      throw error;
    }
  }

  function report(done: Done, options: RunOptions | undefined, rows = done.rows): void {
    observer.finished({
      view: done.view,
      kind: done.kind,
      trigger: trigger(options),
      seconds: done.ms / 1000,
      rows,
    });
  }

  /** A batch is one run per distinct version (one per key when the view cannot batch). */
  function reportBatch(outcomes: RefreshOutcome[], options: RunOptions | undefined): void {
    const runs = new Map<number, { done: Done; rows: number }>();
    for (const outcome of outcomes) {
      if (outcome.status !== 'done') continue;
      const run = runs.get(outcome.version);
      if (run) run.rows += outcome.rows;
      else runs.set(outcome.version, { done: outcome, rows: outcome.rows });
    }
    for (const { done, rows } of runs.values()) report(done, options, rows);
  }

  return {
    ...engine,
    async refresh(view, params, options) {
      const kind = params ? 'partial' : 'full';
      const outcome = await watch(view.name, kind, options, () => engine.refresh(view, params, options));
      if (outcome.status === 'done') report(outcome, options);
      return outcome;
    },
    async refreshBatch(view, paramsList, options) {
      const outcomes = await watch(view.name, 'partial', options, () =>
        engine.refreshBatch(view, paramsList, options),
      );
      reportBatch(outcomes, options);
      return outcomes;
    },
    async runChunk(view, run, options) {
      const started = performance.now();
      const result = await watch(view.name, 'chunk', options, () => engine.runChunk(view, run, options));
      observer.finished({
        view: view.name,
        kind: 'chunk',
        trigger: trigger(options),
        seconds: (performance.now() - started) / 1000,
        rows: result.rows,
      });
      return result;
    },
    async finishChunked(view, run, options) {
      const done = await watch(view.name, 'full', options, () => engine.finishChunked(view, run, options));
      // The rows were counted chunk by chunk; the rebuild itself is one full run.
      report(done, options, 0);
      return done;
    },
  };
}
