import { sql, type Transaction } from 'kysely';
import { describeError } from '../errors.ts';
import { isTransient } from '../lib/transient.ts';
import type { SinkDefinition, SinkOp } from './define-sink.ts';

// What a committed batch owes the views: the (view, params) its sinks' `refresh` declarations name
// for its ops, and the rows their `append` targets push onto list views, computed inside the batch's
// transaction (lookups query it) once the writes are done.

/** A view to refresh after commit: whole (`params` undefined) or the keys `params` select. */
export interface RefreshTargetRequest {
  view: string;
  params: Record<string, unknown> | undefined;
  /** 0 = first: the target's position in the sink's `refresh` declaration. */
  priority: number;
}

/** Rows to append to a list view after commit (a sink's `{ append }` target). */
export interface AppendRequest {
  view: string;
  rows: Record<string, unknown>[];
  priority: number;
}

/**
 * The (view, params) to refresh for the ops that are in the database now — applied in this batch or
 * before (a redelivery after a crash between commit and refresh must still refresh).
 */
export async function refreshTargets(
  // biome-ignore lint/suspicious/noExplicitAny: any database type
  trx: Transaction<any>,
  done: Map<SinkDefinition, SinkOp[]>,
  warnings: string[],
  appends: AppendRequest[],
  nextSavepoint: () => ReturnType<typeof sql.raw>,
): Promise<RefreshTargetRequest[]> {
  const targets = new Map<string, RefreshTargetRequest>();
  let priority = 0;
  const add = (view: string, params: Record<string, unknown> | undefined) => {
    const id = `${view}\u0000${params === undefined ? '*' : JSON.stringify(params)}`;
    const seen = targets.get(id);
    if (!seen) targets.set(id, { view, params, priority });
    else seen.priority = Math.min(seen.priority, priority);
  };
  for (const [sink, ops] of done) {
    if (ops.length === 0) continue;
    for (const [index, target] of sink.refresh.entries()) {
      priority = index;
      if (target.kind === 'full') {
        add(target.view, undefined);
        continue;
      }
      if (target.kind === 'append') {
        const rows: Record<string, unknown>[] = [];
        try {
          for (const op of ops) {
            const row = target.row(op);
            if (row) rows.push(row);
          }
        } catch (error) {
          warnings.push(`sink ${sink.name}: refresh.${target.view} append threw: ${describeError(error)}`);
          add(target.view, undefined);
          continue;
        }
        if (rows.length > 0) appends.push({ view: target.view, rows, priority });
        continue;
      }
      if (target.kind === 'params') {
        for (const op of ops) {
          let produced: ReturnType<typeof target.params>;
          try {
            produced = target.params(op);
          } catch (error) {
            warnings.push(`sink ${sink.name}: refresh.${target.view} threw: ${describeError(error)}`);
            add(target.view, undefined);
            break;
          }
          for (const params of Array.isArray(produced) ? produced : produced ? [produced] : [])
            add(target.view, params);
        }
        continue;
      }
      const savepoint = nextSavepoint();
      await sql`savepoint ${savepoint}`.execute(trx);
      try {
        for (const params of await target.lookup(trx, ops)) add(target.view, params);
        await sql`release savepoint ${savepoint}`.execute(trx);
      } catch (error) {
        if (isTransient(error)) throw error;
        await sql`rollback to savepoint ${savepoint}`.execute(trx);
        warnings.push(`sink ${sink.name}: refresh.${target.view} lookup failed: ${describeError(error)}`);
        add(target.view, undefined);
      }
    }
  }
  return [...targets.values()];
}
