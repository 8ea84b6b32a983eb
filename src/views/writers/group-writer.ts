import { createElementEncoder, elementProblem, groupParams, orderKeyOf } from './group-elements.ts';
import { InFlight } from './in-flight.ts';
import { type ShapeWriter, WRITER_DEFAULTS, type WriterContext, type WriteSummary } from './shape-writer.ts';
import { eachLimited, viewSlots } from './view-slots.ts';

const SWEEP_CHUNK = 1000;
/** Slots swept at once on a cluster. */
const SWEEP_LANES = 16;

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
 *
 * As in row-writer.ts, a batch goes out as one call per hash slot of its group keys, each with that
 * slot's index, floor and heads (one call on one server).
 */
export function createGroupWriter(ctx: WriterContext): ShapeWriter {
  const { view, scripts, seq, scope } = ctx;
  const slots = viewSlots(ctx.redis, ctx.prefix, view.name);
  const scriptKeys = (slot: number) => {
    const keys = slots.keysOf(slot);
    return [keys.keyIndex, keys.floor, keys.heads];
  };
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
  /** Per slot: key, head, n, element_1 .. element_n for each group. */
  let batch = new Map<number, (string | number)[]>();
  let pendingItems = 0;
  let batchParams = new Map<string, Record<string, unknown> | undefined>();
  let group: Group | undefined;
  let rows = 0;

  function send(): Promise<void> | undefined {
    if (pendingItems === 0) return undefined;
    const groups = batch;
    const params = batchParams;
    batch = new Map();
    pendingItems = 0;
    batchParams = new Map();
    const onReply = (reply: (string | number)[]) => {
      if (reply[0] === -1) superseded = true;
      for (const key of reply.slice(1) as string[]) {
        if (partial) skipped.add(key);
        // A newer write touched this list meanwhile (an append, maybe): run it again, newer.
        const groupParams = params.get(key);
        if (isList && groupParams) retry.push(groupParams);
      }
      return reply;
    };
    const sendAll = () =>
      Promise.all(
        [...groups].map(([slot, items]) =>
          scripts
            .run<(string | number)[]>('vkWriteGroups', scriptKeys(slot), [
              seq,
              view.ttl,
              view.shape,
              ...items,
            ])
            .then(onReply),
        ),
      ).then((replies) => replies.flat());
    const registered = slots.register(groups.keys());
    return inFlight.track(registered ? registered.then(sendAll) : sendAll());
  }

  function push(key: string, items: (string | number)[]): void {
    const slot = slots.placement.slotOf(key);
    let group = batch.get(slot);
    if (!group) {
      group = [];
      batch.set(slot, group);
    }
    for (const item of items) group.push(item);
    pendingItems += items.length;
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
      push(done.key, [done.key, '', -1]);
    } else {
      push(done.key, [done.key, done.head, done.elements.length, ...done.elements]);
    }
    return pendingItems >= batchItems ? send() : undefined;
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
          push(key, [key, '', 0]);
        }
      }
      await send();
      await inFlight.drain();
      if (scope.kind === 'full') {
        if (!superseded) {
          await eachLimited(await slots.all(), SWEEP_LANES, async (slot) => {
            while ((await scripts.run<number>('vkSweepGroups', scriptKeys(slot), [seq, SWEEP_CHUNK])) > 0);
          });
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
