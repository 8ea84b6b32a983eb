import type { RefreshEntryResult, RefreshJobResult } from '../contract.ts';
import { describeError } from '../errors.ts';
import { isTransient } from '../lib/transient.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import type { PartialBatcher } from './partial-batcher.ts';
import type { BulkElement } from './refresh-payload.ts';

/**
 * Elements that find their (view, params) busy are retried in the job for waits up to this long (a
 * lock held by a short run, the spacing after one). A longer wait (a view's explicit `coalesceMs`)
 * sends the whole job back to the delayed set: elements done by then are covered when it returns.
 */
export const BULK_WAIT_IN_JOB_MAX_MS = 2000;

export type BulkOutcome =
  | { status: 'done'; result: RefreshJobResult }
  | { status: 'busy'; retryInMs: number };

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', done);
      clearTimeout(timer);
      if (signal?.aborted) reject(signal.reason ?? new Error('aborted'));
      else resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs one bulk refresh request (job `jobId`): every valid element through the batcher (one batch
 * for a `batchPartials` view), elements refused at validation failed in place. Returns the job's
 * result with one entry per element, or `busy` when what is left must wait longer than a job should
 * hold on. A transient failure of any run is thrown (the worker retries the job; elements that ran
 * are covered then); any other failure fails only the elements of that run.
 */
export async function runBulk(
  batcher: PartialBatcher,
  view: ViewDefinition,
  elements: BulkElement[],
  jobId: string | undefined,
  signal: AbortSignal | undefined,
): Promise<BulkOutcome> {
  const started = performance.now();
  const entries: RefreshEntryResult[] = new Array(elements.length);
  let todo: number[] = [];
  for (const [i, element] of elements.entries()) {
    if ('error' in element) entries[i] = { status: 'failed', reason: element.error };
    else todo.push(i);
  }
  let version = 0;
  let superseded = false;
  const changed = new Set<string>();
  while (todo.length > 0) {
    const params = todo.map((i) => (elements[i] as { params: Record<string, unknown> }).params);
    const settled = await batcher.submitMany(view, params, jobId);
    const transient = settled.find(
      (outcome): outcome is PromiseRejectedResult =>
        outcome.status === 'rejected' && isTransient(outcome.reason),
    );
    if (transient) throw transient.reason;
    const busy: number[] = [];
    let wait = Number.POSITIVE_INFINITY;
    for (const [k, outcome] of settled.entries()) {
      const i = todo[k]!;
      if (outcome.status === 'rejected') {
        entries[i] = { status: 'failed', reason: describeError(outcome.reason).slice(0, 500) };
        continue;
      }
      const value = outcome.value;
      if (value.status === 'busy') {
        busy.push(i);
        wait = Math.min(wait, value.retryInMs);
      } else if (value.status === 'covered') {
        entries[i] = { status: 'covered' };
      } else {
        entries[i] = { status: 'done', rows: value.rows };
        version = Math.max(version, value.version);
        superseded ||= value.superseded;
        for (const key of value.keys ?? []) changed.add(key);
      }
    }
    todo = busy;
    if (todo.length === 0) break;
    if (wait > BULK_WAIT_IN_JOB_MAX_MS) return { status: 'busy', retryInMs: wait };
    await sleep(wait, signal);
  }
  let rows = 0;
  let failed = 0;
  for (const entry of entries) {
    if (entry.status === 'done') rows += entry.rows;
    else if (entry.status === 'failed') failed += 1;
  }
  const result: RefreshJobResult = {
    view: view.name,
    kind: 'partial',
    rows,
    version,
    ms: Math.round(performance.now() - started),
    keys: changed.size,
    superseded,
    entries,
    failed,
  };
  if (entries.every((entry) => entry.status === 'covered')) result.covered = true;
  return { status: 'done', result };
}
