import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { ReadReplica } from '../db/read-replica.ts';
import type { ViewkeeperDatabase } from '../db/schema.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { placementOf } from '../redis/placement.ts';
import { loadScripts, type Scripts } from '../redis/scripts.ts';
import { type ChunkedRuns, createChunkedRuns } from './chunked-run.ts';
import type { ViewDefinition } from './define-view.ts';
import { createListAppender, type ListAppender } from './list-append.ts';
import { refreshIdentity, validateParams } from './params.ts';
import { createReadRouter } from './read-route.ts';
import { createRowSource } from './row-source.ts';
import { createRunHistory, startRunClock } from './run-history.ts';
import { createRunLock } from './run-lock.ts';
import type { Done, RefreshOutcome, RunOptions } from './run-types.ts';
import { createWriter } from './writers/create-writer.ts';
import type { RunScope, WriteSummary } from './writers/shape-writer.ts';

export { splitRange } from './row-source.ts';
export type { Busy, ChunkedRun, Done, RefreshOutcome, RunOptions } from './run-types.ts';

export interface RefreshEngineOptions {
  /** Views bring their own database types; the run history table is viewkeeper's. */
  db: Kysely<ViewkeeperDatabase>;
  /** The views Redis (not the queue Redis). */
  redis: RedisConnection;
  prefix: string;
  logger: Logger;
  /** Rows fetched from the Postgres cursor per round trip. @defaultValue 2000 */
  chunkSize?: number;
  /** Lock lifetime; renewed every third of it while a run lasts. @defaultValue 30000 */
  lockTtlMs?: number;
  /** Lock lifetime of a chunked rebuild, extended by every chunk. @defaultValue 600000 */
  chunkedLockTtlMs?: number;
  /** Approximate length the events stream is capped at. @defaultValue 10000 */
  eventsMaxLen?: number;
  /**
   * A streaming standby that full rebuilds read once it has caught up (views/read-route.ts); its
   * creator closes it. @defaultValue none: every query reads `db`
   */
  replica?: ReadReplica;
  /** Longest a full rebuild waits for `replica` to catch up before reading `db`. @defaultValue 5000 */
  replicaWaitMs?: number;
}

export interface RefreshEngine extends ChunkedRuns, ListAppender {
  /**
   * Runs one refresh of `view`: full when `params` is undefined, else partial (params already
   * validated). Never runs concurrently with another run of the same (view, params), anywhere.
   */
  refresh(
    view: ViewDefinition,
    params?: Record<string, unknown>,
    options?: RunOptions,
  ): Promise<RefreshOutcome>;
  /**
   * Runs partial refreshes of `view` for every params of `paramsList` (validated) as one run where
   * the view allows it (`batchPartials`): one query, one sequence, one version bump and one event
   * naming every changed key. Each (view, params) busy elsewhere is left out and reported Busy; the
   * outcomes follow `paramsList`'s order. Views without `batchPartials` run their params one by one.
   */
  refreshBatch(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[],
    options?: RunOptions,
  ): Promise<RefreshOutcome[]>;
}

/** One request's part of a batched partial refresh: the rows and changed keys of its own key. */
function ownShare(
  view: ViewDefinition,
  params: Record<string, unknown>,
  summary: WriteSummary,
  changed: Set<string>,
): { rows: number; keys: string[] | null } {
  const template = view.shape === 'zset' ? view.member! : view.key;
  const own = template.fill(params);
  const rows = summary.written?.has(own) ? 1 : 0;
  if (view.shape === 'zset') return { rows, keys: summary.changedKeys };
  return { rows, keys: changed.has(own) ? [own] : [] };
}

export const ENGINE_DEFAULTS = {
  chunkSize: 2000,
  lockTtlMs: 30_000,
  chunkedLockTtlMs: 600_000,
  eventsMaxLen: 10_000,
  replicaWaitMs: 5000,
} as const;

/**
 * How many times a run refreshes again the list groups that a newer write (an append) touched
 * while it ran; each round takes a newer snapshot, so only appends racing that round are left.
 */
const RETRY_ROUNDS = 3;

/**
 * The refresh engine: trigger-agnostic (queue jobs, cron, write-behind all call it). One run:
 * acquire the (view, params) lock and a sequence number (run-lock.ts) → stream the query from
 * Postgres (row-source.ts) → write Redis in batches while the stream continues (writers/) → sweep or
 * swap → metadata, event, coalescing window and lock release in one script. Full rebuilds go to the
 * run history (run-history.ts); chunked rebuilds follow their own protocol (chunked-run.ts).
 */
export function createRefreshEngine(options: RefreshEngineOptions): RefreshEngine {
  const { db, redis, prefix } = options;
  const scripts: Scripts = loadScripts(redis);
  const chunkSize = options.chunkSize ?? ENGINE_DEFAULTS.chunkSize;
  const lockTtlMs = options.lockTtlMs ?? ENGINE_DEFAULTS.lockTtlMs;
  const chunkedLockTtlMs = options.chunkedLockTtlMs ?? ENGINE_DEFAULTS.chunkedLockTtlMs;
  const eventsMaxLen = options.eventsMaxLen ?? ENGINE_DEFAULTS.eventsMaxLen;
  const logger = options.logger.child({ component: 'refresh' });
  const lock = createRunLock({ scripts, prefix, eventsMaxLen, redis, placement: placementOf(redis) });
  const rows = createRowSource({ db, chunkSize });
  const route = createReadRouter({
    primary: rows,
    replica: options.replica && {
      handle: options.replica,
      rows: createRowSource({ db: options.replica.db, chunkSize }),
    },
    waitMs: options.replicaWaitMs ?? ENGINE_DEFAULTS.replicaWaitMs,
    logger,
  });
  // Said in results and log lines only when there is a choice.
  const sourceOf = (source: 'primary' | 'replica') => (options.replica ? { source } : {});
  const history = createRunHistory({ db, logger });
  const chunked = createChunkedRuns({
    redis,
    scripts,
    prefix,
    lock,
    rows,
    route,
    history,
    lockTtlMs: chunkedLockTtlMs,
    logger,
  });
  const appender = createListAppender({ redis, scripts, prefix, lock });

  /**
   * List groups a newer write touched while a run ran were skipped by it (their list may be an
   * append on top of older content): refresh them again, from a newer snapshot. A group busy
   * elsewhere is left to that run, which does the same.
   */
  async function retrySkipped(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[],
    runOptions: RunOptions,
    round: number,
  ): Promise<void> {
    if (paramsList.length === 0 || round > RETRY_ROUNDS) return;
    const again = { ...runOptions, ignoreWindow: true };
    try {
      const validated = paramsList.map((params) => validateParams(view.name, view.params, params));
      if (view.batchColumn) await run(view, validated, again, round);
      else for (const params of validated) await run(view, [params], again, round);
    } catch (error) {
      // The run itself succeeded; these groups stay as they are until their next refresh.
      logger.warn(
        { view: view.name, groups: paramsList.length, reason: describeError(error) },
        'could not refresh again the groups a newer write touched',
      );
    }
  }

  /**
   * One run over `paramsList` (undefined = a full rebuild): takes the free locks, streams, writes,
   * finishes. Returns an outcome per entry of `paramsList` (one for a full rebuild).
   */
  async function run(
    view: ViewDefinition,
    paramsList: Record<string, unknown>[] | undefined,
    runOptions: RunOptions,
    round = 0,
  ): Promise<RefreshOutcome[]> {
    const requested = paramsList ?? [undefined];
    const identities = requested.map((params) => refreshIdentity(view.name, params));
    // The same (view, params) asked twice runs once: its first params stand for it.
    const paramsOf = new Map<string, Record<string, unknown> | undefined>();
    for (const [i, identity] of identities.entries()) {
      if (!paramsOf.has(identity)) paramsOf.set(identity, requested[i]);
    }
    const unique = [...paramsOf.keys()];
    const token = randomUUID();
    const { seq, states } = await lock.acquire(view, unique, token, lockTtlMs, runOptions.ignoreWindow);
    // null = this run took the identity's lock.
    const busyOf = new Map(unique.map((identity, i) => [identity, states[i]!]));
    const taken = unique.filter((identity) => busyOf.get(identity) === null);
    if (taken.length === 0) return identities.map((identity) => busyOf.get(identity)!);
    const takenParams = paramsList && taken.map((identity) => paramsOf.get(identity)!);
    const scope: RunScope = takenParams ? { kind: 'partial', params: takenParams } : { kind: 'full' };
    const clock = startRunClock();
    // The history records the same duration as the metadata and the event: one clock per run.
    const recordFull = (outcome: { ms: number; rows: number | null; error: string | null }) =>
      scope.kind === 'full'
        ? history.record({
            view: view.name,
            kind: 'full',
            seq,
            startedAt: clock.startedAt,
            options: runOptions,
            ...outcome,
          })
        : undefined;
    const stopRenewing = lock.keepAlive(taken, token, lockTtlMs);
    const writer = createWriter({ redis, scripts, prefix, view, scope, seq });
    let explain = (error: unknown) => error;
    try {
      // After the sequence: the replica must have replayed what the primary had written by now.
      const read = await route(scope.kind, view.name, runOptions.signal);
      explain = read.explain;
      await read.rows.stream(view, writer, takenParams, undefined, runOptions.signal);
      const summary = await writer.finish();
      const ms = clock.elapsedMs();
      const version = await lock.finish(view, taken, token, { kind: scope.kind, ms, summary });
      await recordFull({ ms, rows: summary.rows, error: null });
      const failed = summary.failures ?? [];
      if (failed.length > 0) {
        // The run completed; the groups it could not write say why, in the metadata and the log.
        const more = failed.length > 1 ? ` (and ${failed.length - 1} more)` : '';
        await lock.fail(view, [], token, `${failed[0]}${more}`);
        for (const reason of failed.slice(0, 10))
          logger.warn({ view: view.name, reason }, 'group not written');
      }
      logger.info(
        {
          view: view.name,
          params: takenParams?.length === 1 ? takenParams[0] : undefined,
          keys: takenParams && takenParams.length > 1 ? takenParams.length : undefined,
          rows: summary.rows,
          ms,
          version,
          superseded: summary.superseded || undefined,
          ...sourceOf(read.source),
        },
        'refreshed',
      );
      const changed = new Set(summary.changedKeys ?? []);
      const done = (params: Record<string, unknown> | undefined): Done => ({
        status: 'done',
        view: view.name,
        kind: scope.kind,
        ...(takenParams && takenParams.length > 1 && params
          ? ownShare(view, params, summary, changed)
          : { rows: summary.rows, keys: summary.changedKeys }),
        version,
        ms,
        superseded: summary.superseded,
        ...(failed.length > 0 ? { failed } : {}),
        ...sourceOf(read.source),
      });
      await retrySkipped(view, summary.retry ?? [], runOptions, round + 1);
      return identities.map((identity, i) => busyOf.get(identity) ?? done(requested[i]));
    } catch (caught) {
      const error = explain(caught);
      const reason = describeError(error);
      await writer.abort().catch(() => undefined);
      await lock.fail(view, taken, token, reason);
      await recordFull({ ms: clock.elapsedMs(), rows: null, error: reason });
      throw error;
    } finally {
      stopRenewing();
    }
  }

  return {
    ...chunked,
    append: (view, rows) => appender.append(view, rows),

    async refresh(view, params, runOptions = {}) {
      const [outcome] = await run(view, params ? [params] : undefined, runOptions);
      return outcome!;
    },

    async refreshBatch(view, paramsList, runOptions = {}) {
      if (paramsList.length === 0) return [];
      if (view.batchColumn) return run(view, paramsList, runOptions);
      const outcomes: RefreshOutcome[] = [];
      for (const params of paramsList) outcomes.push((await run(view, [params], runOptions))[0]!);
      return outcomes;
    },
  };
}
