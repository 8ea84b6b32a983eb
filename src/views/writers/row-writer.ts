import { ViewkeeperError } from '../../errors.ts';
import { toRedisString } from '../../redis/codec.ts';
import { InFlight } from './in-flight.ts';
import {
  type Row,
  remainingColumns,
  type ShapeWriter,
  WRITER_DEFAULTS,
  type WriterContext,
  type WriteSummary,
} from './shape-writer.ts';
import { eachLimited, viewSlots } from './view-slots.ts';

const SWEEP_CHUNK = 1000;
/** Slots swept at once on a cluster (each lane loops over one slot's chunks). */
const SWEEP_LANES = 16;

/**
 * `hash` and `value` views: one key per row. Rows go to Redis in batches through write-rows.lua
 * (each key replaced atomically, stale sequences skipped) while the query keeps streaming. A full
 * rebuild then sweeps the keys of rows that vanished; a partial refresh deletes the keys its params
 * name that the query no longer returns.
 *
 * Each batch goes out as one script call per hash slot of its keys (one call on one server), with
 * that slot's key index and floor (view-slots.ts): every check a key's write depends on is in the
 * key's own slot, so it stays atomic with the write on a cluster.
 */
export function createRowWriter(ctx: WriterContext): ShapeWriter {
  const { view, scripts, seq, scope } = ctx;
  const slots = viewSlots(ctx.redis, ctx.prefix, view.name);
  const { placement } = slots;
  const scriptKeys = (slot: number) => {
    const keys = slots.keysOf(slot);
    return [keys.keyIndex, keys.floor];
  };
  const batchRows = ctx.batchRows ?? WRITER_DEFAULTS.batchRows;
  const inFlight = new InFlight<number>(ctx.maxInFlight ?? WRITER_DEFAULTS.maxInFlight);
  const changed: string[] = [];
  const trackChanges = scope.kind === 'partial';
  let header: (string | number)[] | undefined;
  let columns: string[] = [];
  /** Per slot: key, value_1 .. value_n for each row. */
  let batch = new Map<number, string[]>();
  let batchCount = 0;
  let rows = 0;

  function resolveColumns(row: Row): string[] {
    const rest = remainingColumns(row, view.key.columns);
    if (view.shape === 'hash') {
      const fields = view.fields ?? rest;
      const missing = fields.find((field) => !Object.hasOwn(row, field));
      if (missing !== undefined || fields.length === 0) {
        throw new ViewkeeperError(
          'E_VIEW_DEFINITION',
          `view ${JSON.stringify(view.name)}: ${missing ? `field ${JSON.stringify(missing)} is not a column of the query` : 'the query returns no columns besides the key'}`,
        );
      }
      return fields;
    }
    const column = view.value ?? (rest.length === 1 ? rest[0] : undefined);
    if (column === undefined || !Object.hasOwn(row, column)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `view ${JSON.stringify(view.name)}: set \`value\` to the column to store (the query returns ${rest.join(', ') || 'no other column'})`,
      );
    }
    return [column];
  }

  /** The field list and ttl every row of this run was written with; '' for value views or when unknown. */
  function fieldList(): string {
    if (view.shape !== 'hash') return '';
    // Matches the signature write-rows.lua compares: fields and ttl.
    return columns.length > 0 ? `${columns.join(',')}|ttl=${view.ttl}` : (ctx.fields ?? '');
  }

  function flush(): Promise<void> | undefined {
    if (batchCount === 0) return undefined;
    const groups = batch;
    batch = new Map();
    batchCount = 0;
    const send = () =>
      Promise.all(
        [...groups].map(([slot, rowsOfSlot]) =>
          scripts.run<number>('vkWriteRows', scriptKeys(slot), [...header!, ...rowsOfSlot]),
        ),
      ).then((counts) => (counts.includes(-1) ? -1 : counts.reduce((sum, count) => sum + count, 0)));
    const registered = slots.register(groups.keys());
    return inFlight.track(registered ? registered.then(send) : send());
  }

  return {
    add(row) {
      if (!header) {
        columns = resolveColumns(row);
        header = [seq, view.ttl, view.shape, columns.length, ...columns];
      }
      const key = view.key.fill(row);
      const slot = placement.slotOf(key);
      let group = batch.get(slot);
      if (!group) {
        group = [];
        batch.set(slot, group);
      }
      group.push(key);
      for (const column of columns) group.push(toRedisString(row[column]));
      if (trackChanges) changed.push(key);
      rows += 1;
      batchCount += 1;
      return batchCount >= batchRows ? flush() : undefined;
    },

    async finish(): Promise<WriteSummary> {
      await flush();
      const results = await inFlight.drain();
      const superseded = results.includes(-1);
      if (scope.kind === 'full') {
        if (!superseded) {
          await eachLimited(await slots.all(), SWEEP_LANES, async (slot) => {
            const args = [seq, SWEEP_CHUNK, fieldList()];
            while ((await scripts.run<number>('vkSweepRows', scriptKeys(slot), args)) > 0);
          });
        }
        return { rows, changedKeys: null, superseded, fields: fieldList() };
      }
      if (scope.kind === 'chunk') return { rows, changedKeys: null, superseded, fields: fieldList() };
      // Keys the params name but the query no longer returns: their rows are gone.
      const written = new Set(changed);
      const gone = scope.params
        .filter((params) => view.key.isCoveredBy(Object.keys(params)))
        .map((params) => view.key.fill(params))
        .filter((key) => !written.has(key));
      if (gone.length > 0) {
        const groups = placement.group(new Set(gone), (key) => key);
        await slots.register(groups.keys());
        const replies = await Promise.all(
          [...groups].map(([slot, keys]) =>
            scripts.run<string[] | -1>('vkDeleteRows', scriptKeys(slot), [seq, ...keys]),
          ),
        );
        if (replies.includes(-1)) return { rows, changedKeys: [], superseded: true, written };
        // all of them, unless a newer run wrote some meanwhile
        for (const deleted of replies) changed.push(...(deleted as string[]));
      }
      return { rows, changedKeys: superseded ? [] : changed, superseded, written };
    },

    async abort() {
      await inFlight.drain().catch(() => undefined);
    },
  };
}
