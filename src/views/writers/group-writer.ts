import { viewKeys } from '../../redis/keys.ts';
import { createElementEncoder, elementProblem, groupParams, orderKeyOf } from './group-elements.ts';
import { InFlight } from './in-flight.ts';
import { type ShapeWriter, WRITER_DEFAULTS, type WriterContext, type WriteSummary } from './shape-writer.ts';

const SWEEP_CHUNK = 1000;

/** One group's rows as they stream: its key and elements in order (row-source orders and caps them). */
interface Group {
  key: string;
  head: string;
  elements: string[];
  params: Record<string, unknown> | undefined;
  problem: string | undefined;
}

/**
 * `list` and `set` views: one Redis key per group of rows. The rows come grouped by key (and, for
 * lists, in order and capped, row-source.ts), so each group is complete when the next one starts;
 * whole groups go to write-groups.lua in batches, each group replaced atomically, stale sequences
 * skipped. A full rebuild then sweeps the groups that vanished; a partial refresh deletes the groups
 * its params name that the query no longer returns.
 *
 * A group a newer write had already touched is skipped (as write-rows.lua skips rows). For a list
 * that newer write may be an append on top of what the list held before, so the summary names the
 * skipped groups' params in `retry`: the engine refreshes them again with a newer snapshot.
 */
export function createGroupWriter(ctx: WriterContext): ShapeWriter {
  const { view, scripts, seq, scope } = ctx;
  const keys = viewKeys(ctx.prefix, view.name);
  const scriptKeys = [keys.keyIndex, keys.meta, keys.heads];
  const isList = view.shape === 'list';
  const elementOf = createElementEncoder(view);
  const batchItems = ctx.batchRows ?? WRITER_DEFAULTS.batchRows * 2;
  const inFlight = new InFlight<(string | number)[]>(ctx.maxInFlight ?? WRITER_DEFAULTS.maxInFlight);
  // Per-group state for the whole run only where the run is small (partial refreshes): a full
  // rebuild keeps the params of the groups in flight, to name the skipped ones, and no more.
  const partial = scope.kind === 'partial';
  const written = new Set<string>();
  const paramsOf = new Map<string, Record<string, unknown> | undefined>();
  const skipped = new Set<string>();
  const retry: Record<string, unknown>[] = [];
  const failures: string[] = [];
  let superseded = false;
  let batch: (string | number)[] = [];
  let batchParams = new Map<string, Record<string, unknown> | undefined>();
  let group: Group | undefined;
  let rows = 0;

  function send(): Promise<void> | undefined {
    if (batch.length === 0) return undefined;
    const args = [seq, view.ttl, view.shape, ...batch];
    const params = batchParams;
    batch = [];
    batchParams = new Map();
    const call = scripts.run<(string | number)[]>('vkWriteGroups', scriptKeys, args).then((reply) => {
      if (reply[0] === -1) superseded = true;
      for (const key of reply.slice(1) as string[]) {
        if (partial) skipped.add(key);
        // A newer write touched this list meanwhile (an append, maybe): run it again, newer.
        const groupParams = params.get(key);
        if (isList && groupParams) retry.push(groupParams);
      }
      return reply;
    });
    return inFlight.track(call);
  }

  /** Queues the finished group; sends the batch once it is big enough. */
  function close(): Promise<void> | undefined {
    const done = group;
    group = undefined;
    if (!done) return undefined;
    if (partial) {
      written.add(done.key);
      paramsOf.set(done.key, done.params);
    }
    batchParams.set(done.key, done.params);
    if (done.problem) {
      failures.push(done.problem);
      batch.push(done.key, '', -1);
    } else {
      batch.push(done.key, done.head, done.elements.length, ...done.elements);
    }
    return batch.length >= batchItems ? send() : undefined;
  }

  return {
    add(row) {
      rows += 1;
      const key = view.key.fill(row);
      let pending: Promise<void> | undefined;
      if (group?.key !== key) {
        pending = close();
        group = {
          key,
          head: isList ? orderKeyOf(view, row) : '',
          elements: [],
          params: groupParams(view, row),
          problem: undefined,
        };
      }
      const element = elementOf(row);
      group.problem ??= elementProblem(view, key, element);
      if (!group.problem) group.elements.push(element);
      return pending;
    },

    async finish(): Promise<WriteSummary> {
      await close();
      if (scope.kind === 'partial') {
        // Groups the params name but the query no longer returns: their rows are gone.
        for (const params of scope.params) {
          if (!view.key.isCoveredBy(Object.keys(params))) continue;
          const key = view.key.fill(params);
          if (paramsOf.has(key)) continue;
          paramsOf.set(key, params);
          batchParams.set(key, params);
          batch.push(key, '', 0);
        }
      }
      await send();
      await inFlight.drain();
      if (scope.kind === 'full') {
        if (!superseded) {
          while ((await scripts.run<number>('vkSweepGroups', scriptKeys, [seq, SWEEP_CHUNK])) > 0);
        }
        return { rows, changedKeys: null, superseded, failures, retry };
      }
      const changedKeys = superseded ? [] : [...paramsOf.keys()].filter((key) => !skipped.has(key));
      return { rows, changedKeys, superseded, written, failures, retry };
    },

    async abort() {
      await inFlight.drain().catch(() => undefined);
    },
  };
}
