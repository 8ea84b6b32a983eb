import type { ChainableCommander } from 'ioredis';
import type { Transaction } from 'kysely';
import { ViewkeeperError } from '../errors.ts';
import type { SinkTools } from './apply-helpers.ts';
import { type FieldsSpec, type OpOf, type ResolvedField, resolveFields } from './fields.ts';

type Params = Record<string, unknown>;

/** An op as `apply` sees it: validated fields, its id, and when its job was enqueued. */
export type SinkOp<F extends FieldsSpec = FieldsSpec> = OpOf<F> & { readonly at: Date };

/**
 * Which keys of a view to refresh after a batch commits:
 * - `'full'`: rebuild the whole view (once per batch, whatever the number of ops);
 * - a function of one op returning the view's partial-refresh params (or several, or undefined);
 * - `{ lookup }`: a query run inside the batch's transaction, after `apply`, returning params rows
 *   (for keys the ops do not carry, e.g. the author of a voted post);
 * - `{ append }` (`list` views, newest first): the row the view's query now returns for the op, as
 *   the query returns it (same columns and types); it is pushed onto its group's list instead of
 *   re-querying the group. Right for rows that are only ever inserted: an op that replaces a row
 *   (an upsert) needs a refresh by params, since an append cannot take the old element out.
 */
export type RefreshTarget<DB, F extends FieldsSpec> =
  | 'full'
  | ((op: SinkOp<F>) => Params | Params[] | undefined)
  | { lookup: (trx: Transaction<DB>, ops: SinkOp<F>[]) => Promise<Params[]> }
  | { append: (op: SinkOp<F>) => Params | undefined };

/**
 * What a sink file declares. See the README ("Write-behind sinks") for a complete example.
 *
 * @example
 * export default defineSink<Database>()({
 *   name: 'users',
 *   fields: { user_id: 'bigint', name: 'text', email: 'text', org_id: { type: 'bigint', nullable: true } },
 *   apply: async (trx, ops, { upsert }) => {
 *     await upsert(ops, {
 *       table: 'users',
 *       key: ['id'],
 *       columns: { id: 'bigint', name: 'text', email: 'text', org_id: 'bigint' },
 *       row: (op) => ({ id: op.user_id, name: op.name, email: op.email, org_id: op.org_id }),
 *     });
 *   },
 *   refresh: { user: (op) => ({ id: op.user_id }) },
 * });
 */
export interface SinkOptions<DB, F extends FieldsSpec> {
  /** Unique name; the write-behind queue's job name. `[a-z0-9_]`, up to 64 characters. */
  name: string;
  /** Op fields and their types. Every op carries exactly these plus `id`; validated before apply. */
  fields: F;
  /**
   * Writes a batch of new ops (never one already applied, in enqueue order, possibly several for one
   * key) inside the batch's transaction. Use set-based SQL: the `tools` helpers, or `sql` with arrays.
   * Throwing rolls back just this call's ops, which are then split to find the op at fault.
   */
  apply: (trx: Transaction<DB>, ops: SinkOp<F>[], tools: SinkTools) => Promise<void>;
  /** Views to refresh after commit, by view name. */
  refresh?: Record<string, RefreshTarget<DB, F>>;
  /**
   * The immediate cache effect the client applies once the op is enqueued (e.g. HSET the user's
   * hash), so readers see the write before the database has it. Commands go on `redis`, a pipeline.
   */
  cache?: (op: OpOf<F>, redis: ChainableCommander) => void;
  /**
   * What the idempotency ledger records. `'op'`: every op id, so an op is applied once whichever job
   * carries it (a producer may send an id again). `'job'`: one row per BullMQ job, for sinks whose
   * ops are many and small (counters): a job delivered again (daemon killed, lock lost) is skipped
   * whole, at the cost of one ledger row per job instead of one per op; an op id sent again by the
   * producer in a new job is applied again. Choose it only when producers never re-send ops.
   * @defaultValue 'op'
   */
  idempotency?: 'op' | 'job';
}

/** A refresh target after validation. */
export type ResolvedRefresh =
  | { view: string; kind: 'full' }
  | { view: string; kind: 'params'; params: (op: SinkOp) => Params | Params[] | undefined }
  | { view: string; kind: 'append'; row: (op: SinkOp) => Params | undefined }
  // biome-ignore lint/suspicious/noExplicitAny: the registry holds sinks of any database type
  | { view: string; kind: 'lookup'; lookup: (trx: Transaction<any>, ops: SinkOp[]) => Promise<Params[]> };

/** A sink after validation: what the registry holds and the write-behind worker runs. */
export interface SinkDefinition {
  kind: 'sink';
  name: string;
  fields: ResolvedField[];
  // biome-ignore lint/suspicious/noExplicitAny: the registry holds sinks of any database type
  apply: (trx: Transaction<any>, ops: SinkOp[], tools: SinkTools) => Promise<void>;
  refresh: ResolvedRefresh[];
  cache: ((op: OpOf<FieldsSpec>, redis: ChainableCommander) => void) | undefined;
  /** See SinkOptions.idempotency; absent = 'op'. */
  idempotency?: 'op' | 'job';
}

function fail(name: string, message: string): never {
  throw new ViewkeeperError('E_SINK_DEFINITION', `sink ${JSON.stringify(name)}: ${message}`);
}

/**
 * Validates a sink definition. Curried so the database type can be given while field types are
 * inferred: `defineSink<Database>()({ … })`.
 */
export function defineSink<DB>() {
  return <const F extends FieldsSpec>(options: SinkOptions<DB, F>): SinkDefinition =>
    resolveSink(options as unknown as SinkOptions<unknown, FieldsSpec>);
}

export function resolveSink(options: SinkOptions<unknown, FieldsSpec>): SinkDefinition {
  const name = options?.name;
  if (typeof name !== 'string' || !/^[a-z][a-z0-9_]{0,63}$/.test(name)) {
    fail(String(name), 'name must be 1–64 characters of a–z, 0–9 and _, starting with a letter');
  }
  const fields = resolveFields(name, options.fields);
  if (typeof options.apply !== 'function')
    fail(name, 'apply must be a function (trx, ops, tools) => Promise');
  if (options.cache !== undefined && typeof options.cache !== 'function') {
    fail(name, 'cache must be a function (op, redis) => void');
  }
  const idempotency = options.idempotency ?? 'op';
  if (idempotency !== 'op' && idempotency !== 'job') {
    fail(name, `idempotency must be 'op' or 'job', got ${JSON.stringify(idempotency)}`);
  }
  const refresh: ResolvedRefresh[] = [];
  for (const [view, target] of Object.entries(options.refresh ?? {})) {
    if (target === 'full') refresh.push({ view, kind: 'full' });
    else if (typeof target === 'function') refresh.push({ view, kind: 'params', params: target as never });
    else if (
      target &&
      typeof target === 'object' &&
      'lookup' in target &&
      typeof target.lookup === 'function'
    ) {
      refresh.push({ view, kind: 'lookup', lookup: target.lookup as never });
    } else if (
      target &&
      typeof target === 'object' &&
      'append' in target &&
      typeof target.append === 'function'
    ) {
      refresh.push({ view, kind: 'append', row: target.append as never });
    } else {
      fail(name, `refresh.${view} must be 'full', a function of an op, { lookup } or { append }`);
    }
  }
  return {
    kind: 'sink',
    name,
    fields,
    apply: options.apply as SinkDefinition['apply'],
    refresh,
    cache: options.cache as SinkDefinition['cache'],
    idempotency,
  };
}
