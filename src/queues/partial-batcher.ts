import type { Slots } from '../lib/slots.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { refreshIdentity } from '../views/params.ts';
import type { RefreshEngine, RefreshOutcome } from '../views/refresh-engine.ts';
import type { createCoverage } from './coverage.ts';

/** A partial refresh job's fate: a run's outcome, or covered by a run that finished after it was queued. */
export type PartialOutcome = RefreshOutcome | { status: 'covered' };

export interface PartialBatcherOptions {
  engine: RefreshEngine;
  coverage: ReturnType<typeof createCoverage>;
  /** Engine slots shared with full rebuilds: a batch takes one. */
  slots: Slots;
  /** Most partial refreshes in one run. @defaultValue 500 */
  maxBatch?: number;
  /** Batches of one view running at once (one queries Postgres while another writes Redis). @defaultValue 2 */
  perView?: number;
}

export interface PartialBatcher {
  /** Queues one partial refresh job of `view`; resolves when the batch that ran it is done. */
  submit(
    view: ViewDefinition,
    params: Record<string, unknown>,
    jobId: string | undefined,
  ): Promise<PartialOutcome>;
  /**
   * Queues the elements of one bulk request (job `jobId`): for a `batchPartials` view they stay
   * together in one batch, however many; otherwise each runs on its own. Settles per element, in
   * order, so one element's failed run fails only that element.
   */
  submitMany(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[],
    jobId: string | undefined,
  ): Promise<PromiseSettledResult<PartialOutcome>[]>;
}

interface Pending {
  params: Record<string, unknown>;
  identity: string;
  jobId: string | undefined;
  resolve(outcome: PartialOutcome): void;
  reject(error: unknown): void;
}

export const BATCHER_DEFAULTS = { maxBatch: 500, perView: 2 } as const;

/**
 * Groups the partial refresh jobs of a view that the worker holds at the same time into one engine
 * run (`refreshBatch`). Nothing waits for a batch to fill: a job that finds a free batch slot for its
 * view runs at once, alone if need be; jobs arriving while the view's batches run queue up and go
 * together in the next one. So a lone request is as fast as before, and under load the batches
 * grow and the cost per key falls. A bulk request is one group that is never split: its elements
 * run in one batch, up to `maxBatch` other jobs joining it only while they fit.
 */
export function createPartialBatcher(options: PartialBatcherOptions): PartialBatcher {
  const { engine, coverage, slots } = options;
  const maxBatch = options.maxBatch ?? BATCHER_DEFAULTS.maxBatch;
  const perView = options.perView ?? BATCHER_DEFAULTS.perView;
  // Pending work as groups: a single job is a group of one, a bulk request one group of its elements.
  const queues = new Map<string, { view: ViewDefinition; pending: Pending[][]; running: number }>();

  function runOne(
    view: ViewDefinition,
    params: Record<string, unknown>,
    jobId: string | undefined,
  ): Promise<PartialOutcome> {
    return coverage.runUnlessCovered(refreshIdentity(view.name, params), jobId, () =>
      engine.refresh(view, params, { trigger: 'queue' }),
    );
  }

  async function runBatch(view: ViewDefinition, batch: Pending[]): Promise<void> {
    try {
      await slots.run(async () => {
        // Read the job counter before the run: every job numbered up to it is covered by its success.
        const { covered, counter } = await coverage.checkMany(batch);
        const due: Pending[] = [];
        for (const [i, job] of batch.entries()) {
          if (covered[i]) job.resolve({ status: 'covered' });
          else due.push(job);
        }
        if (due.length === 0) return;
        const outcomes = await engine.refreshBatch(
          view,
          due.map((job) => job.params),
          { trigger: 'queue' },
        );
        const ran = due.filter((_, i) => outcomes[i]!.status === 'done').map((job) => job.identity);
        await coverage.markCovered([...new Set(ran)], counter);
        for (const [i, job] of due.entries()) job.resolve(outcomes[i]!);
      });
    } catch (error) {
      for (const job of batch) job.reject(error);
    }
  }

  function pump(name: string): void {
    const queue = queues.get(name);
    if (!queue) return;
    while (queue.running < perView && queue.pending.length > 0) {
      const batch = queue.pending.shift()!;
      while (queue.pending.length > 0 && batch.length + queue.pending[0]!.length <= maxBatch) {
        batch.push(...queue.pending.shift()!);
      }
      queue.running += 1;
      void runBatch(queue.view, batch).finally(() => {
        queue.running -= 1;
        if (queue.running === 0 && queue.pending.length === 0) queues.delete(name);
        else pump(name);
      });
    }
  }

  /** Queues `paramsList` as one group of `view` (a batchPartials view); one promise per element. */
  function enqueue(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[],
    jobId: string | undefined,
  ): Promise<PartialOutcome>[] {
    let queue = queues.get(view.name);
    if (!queue) {
      queue = { view, pending: [], running: 0 };
      queues.set(view.name, queue);
    }
    const group: Pending[] = [];
    const promises = paramsList.map(
      (params) =>
        new Promise<PartialOutcome>((resolve, reject) => {
          group.push({ params, identity: refreshIdentity(view.name, params), jobId, resolve, reject });
        }),
    );
    queue.pending.push(group);
    // Jobs the worker takes in the same tick join one batch.
    if (queue.pending.length === 1) queueMicrotask(() => pump(view.name));
    return promises;
  }

  return {
    submit(view, params, jobId) {
      // A view without batchPartials runs one query per key anyway: run each job on its own, so a
      // failure stays that job's.
      if (!view.batchColumn) return slots.run(() => runOne(view, params, jobId));
      return enqueue(view, [params], jobId)[0]!;
    },

    submitMany(view, paramsList, jobId) {
      if (!view.batchColumn) {
        return Promise.allSettled(paramsList.map((params) => slots.run(() => runOne(view, params, jobId))));
      }
      return Promise.allSettled(enqueue(view, paramsList, jobId));
    },
  };
}
