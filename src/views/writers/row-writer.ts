import { ViewkeeperError } from '../../errors.ts';
import { toRedisString } from '../../redis/codec.ts';
import { viewKeys } from '../../redis/keys.ts';
import { InFlight } from './in-flight.ts';
import {
  type Row,
  remainingColumns,
  type ShapeWriter,
  WRITER_DEFAULTS,
  type WriterContext,
  type WriteSummary,
} from './shape-writer.ts';

const SWEEP_CHUNK = 1000;

/**
 * `hash` and `value` views: one key per row. Rows go to Redis in batches through write-rows.lua
 * (each key replaced atomically, stale sequences skipped) while the query keeps streaming. A full
 * rebuild then sweeps the keys of rows that vanished; a partial refresh deletes the keys its params
 * name that the query no longer returns.
 */
export function createRowWriter(ctx: WriterContext): ShapeWriter {
  const { view, scripts, seq, scope } = ctx;
  const keys = viewKeys(ctx.prefix, view.name);
  const scriptKeys = [keys.keyIndex, keys.meta];
  const batchRows = ctx.batchRows ?? WRITER_DEFAULTS.batchRows;
  const inFlight = new InFlight<number>(ctx.maxInFlight ?? WRITER_DEFAULTS.maxInFlight);
  const changed: string[] = [];
  const trackChanges = scope.kind === 'partial';
  let header: (string | number)[] | undefined;
  let columns: string[] = [];
  let batch: string[] = [];
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
    const args = [...header!, ...batch];
    batch = [];
    batchCount = 0;
    return inFlight.track(scripts.run<number>('vkWriteRows', scriptKeys, args));
  }

  return {
    add(row) {
      if (!header) {
        columns = resolveColumns(row);
        header = [seq, view.ttl, view.shape, columns.length, ...columns];
      }
      const key = view.key.fill(row);
      batch.push(key);
      for (const column of columns) batch.push(toRedisString(row[column]));
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
          while ((await scripts.run<number>('vkSweepRows', scriptKeys, [seq, SWEEP_CHUNK, fieldList()])) > 0);
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
        const deleted = await scripts.run<string[] | -1>('vkDeleteRows', scriptKeys, [seq, ...new Set(gone)]);
        if (deleted === -1) return { rows, changedKeys: [], superseded: true, written };
        changed.push(...deleted); // all of them, unless a newer run wrote some meanwhile
      }
      return { rows, changedKeys: superseded ? [] : changed, superseded, written };
    },

    async abort() {
      await inFlight.drain().catch(() => undefined);
    },
  };
}
