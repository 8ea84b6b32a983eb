import { type Job, UnrecoverableError } from 'bullmq';
import type { Kysely } from 'kysely';
import { QUEUES, type WriteBehindJobData, type WriteBehindJobResult } from '../contract.ts';
import { capturingTxid } from '../db/capture-outbox.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import { backoffMs, isTransient } from '../lib/transient.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { captureKeys } from '../redis/keys.ts';
import {
  type AppendRequest,
  type BatchEntry,
  type BatchOutcome,
  type CommitBatchOptions,
  commitBatch,
  type RefreshTargetRequest,
} from '../sinks/commit-batch.ts';
import type { SinkDefinition } from '../sinks/define-sink.ts';
import { pruneLedger } from '../sinks/ledger.ts';
import { createRefreshBacklog, type RefreshBacklog } from '../sinks/refresh-backlog.ts';
import { refreshTargetProblems } from '../sinks/refresh-targets.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import type { RefreshEngine } from '../views/refresh-engine.ts';
import type { Registry } from '../views/registry.ts';
import { createWorker, storedDataBytes, undecodableReason } from './factories.ts';
import { parseWriteJob, sinksOf, type WriteRequest } from './write-behind-payload.ts';

export interface WriteBehindWorkerOptions {
  /** Queue Redis connection with `maxRetriesPerRequest: null`; owned by the caller. */
  connection: RedisConnection;
  prefix: string;
  /** Sinks (and the views they refresh). */
  registry: Registry;
  // biome-ignore lint/suspicious/noExplicitAny: sinks bring their own database types
  db: Kysely<any>;
  engine: RefreshEngine;
  logger: Logger;
  /** A batch is committed once it holds this many ops… @defaultValue 20000 */
  maxBatchOps?: number;
  /** …or this long after its first job arrived, whichever comes first. @defaultValue 20 */
  batchWindowMs?: number;
  /** Jobs fetched in parallel while the queue has more. @defaultValue 8 */
  fetchers?: number;
  /**
   * Job lock lifetime, renewed while a job waits in a batch; also the lease of a claimed refresh.
   * A dead daemon's jobs and refreshes are taken over after about this long. @defaultValue 15000
   */
  lockDurationMs?: number;
  /** Refreshes run at once after commits (1 while batches come full). @defaultValue 8 */
  refreshConcurrency?: number;
  /** Ledger rows older than this are deleted (hourly). @defaultValue 14 days */
  retentionMs?: number;
  /** A job whose batches keep failing transiently fails for good after this many starts. @defaultValue 25 */
  maxStarts?: number;
  /**
   * The refresh backlog to mark (shared with change capture, so both coalesce); owned by the caller.
   * @defaultValue one of the worker's own, closed with it
   */
  backlog?: RefreshBacklog;
  /**
   * Views whose refreshes a commit leaves to change capture, asked inside the commit's transaction
   * (the captured changes of that transaction refresh them; refreshing here too would double the work).
   */
  leaveToCapture?: CommitBatchOptions['leaveToCapture'];
  /** Told about every batch (metrics); must not throw. */
  observer?: WriteBehindObserver;
  /** Called on every turn of the fetch and commit loops: a loop that stops turning is wedged. */
  heartbeat?: (loop: 'fetch' | 'commit') => void;
}

/** What the operations surface learns from the write-behind worker: counts by sink, no op content. */
export interface WriteBehindObserver {
  /** Ops of sinks that did not validate (the job failed at once, nothing written). */
  rejected(sink: string, ops: number): void;
  /** A committed batch: per sink, ops applied, skipped as duplicates and refused by the database. */
  committed(
    seconds: number,
    bySink: Map<string, { applied: number; duplicates: number; failed: number }>,
  ): void;
  /** A batch given back to the queue after its commit failed. */
  givenBack(seconds: number): void;
}

export interface WriteBehindWorker {
  /**
   * Stops fetching, commits the open batch and completes its jobs, then waits (within `timeoutMs`)
   * for running refreshes. Jobs it could not finish in time stay locked until their lock expires
   * and then go to another daemon (their ops are not lost, and not applied twice). Idempotent.
   */
  close(timeoutMs: number): Promise<void>;
}

export const WRITE_BEHIND_DEFAULTS = {
  maxBatchOps: 20_000,
  batchWindowMs: 20,
  fetchers: 8,
  lockDurationMs: 15_000,
  refreshConcurrency: 8,
  retentionMs: 14 * 24 * 3600 * 1000,
  maxStarts: 25,
} as const;

/** Backlog entries listed in a job's result at most (each job of a batch carries the batch's list). */
const MAX_OWED_IN_RESULT = 100;
/** How long a commit's request for a capture receipt waits for the drainer (seconds). */
const CAPTURE_WATCH_TTL_S = 600;

type WriteJob = Job<WriteBehindJobData, WriteBehindJobResult>;

interface Held {
  job: WriteJob;
  token: string;
  request: WriteRequest;
}

/**
 * Consumes the `write-behind` queue in batches: jobs are fetched by hand (a BullMQ worker without a
 * processor), their ops validated, and the ops of many jobs committed in ONE Postgres transaction
 * with the idempotency ledger; only then are the jobs completed, and the views the ops touched
 * marked for refresh. Bad jobs fail at once with a one-line reason; an op the sink or the database
 * refuses is kept in the dead-letter table and listed in its job's result (the job completes);
 * transient failures give the jobs back with backoff.
 */
export function createWriteBehindWorker(options: WriteBehindWorkerOptions): WriteBehindWorker {
  const logger = options.logger.child({ component: 'write-behind' });
  const maxBatchOps = options.maxBatchOps ?? WRITE_BEHIND_DEFAULTS.maxBatchOps;
  const batchWindowMs = options.batchWindowMs ?? WRITE_BEHIND_DEFAULTS.batchWindowMs;
  const fetchers = options.fetchers ?? WRITE_BEHIND_DEFAULTS.fetchers;
  const lockDuration = options.lockDurationMs ?? WRITE_BEHIND_DEFAULTS.lockDurationMs;
  const retentionMs = options.retentionMs ?? WRITE_BEHIND_DEFAULTS.retentionMs;
  const maxStarts = options.maxStarts ?? WRITE_BEHIND_DEFAULTS.maxStarts;
  const sinks = sinksOf(options.registry.others.values());
  checkRefreshViews(sinks, options.registry);

  const worker = createWorker<WriteBehindJobData, WriteBehindJobResult>(
    QUEUES.writeBehind,
    null,
    options.connection,
    options.prefix,
    {
      autorun: false,
      lockDuration,
      stalledInterval: Math.max(500, lockDuration / 2),
      // A job is only "stalled" here when a daemon died holding it; several kills in a row must not
      // push acknowledged writes to the failed set.
      maxStalledCount: maxStarts,
      // Longest a blocking fetch waits (seconds): bounds how long close() waits for the fetch loop.
      drainDelay: 1,
    },
  );
  worker.on('error', (error) => logger.warn({ reason: describeError(error) }, 'write-behind worker error'));

  const ownBacklog = options.backlog === undefined;
  const backlog: RefreshBacklog =
    options.backlog ??
    createRefreshBacklog({
      redis: options.connection,
      prefix: options.prefix,
      views: (name) => options.registry.view(name),
      engine: options.engine,
      logger: options.logger,
      concurrency: options.refreshConcurrency ?? WRITE_BEHIND_DEFAULTS.refreshConcurrency,
      // A dead daemon's claimed refreshes are taken over about as soon as its jobs are.
      leaseMs: lockDuration,
    });

  const held = new Map<string, Held>();
  const pending = new Set<Promise<unknown>>();
  let open: Held[] = [];
  let openOps = 0;
  let openSince = 0;
  let stopping = false;
  let fetching = true;
  let tokens = 0;
  let wakeCommitter: (() => void) | undefined;
  let wakeFetcher: (() => void) | undefined;

  const track = (promise: Promise<unknown>) => {
    pending.add(promise);
    promise.finally(() => pending.delete(promise));
  };

  /** Sleeps up to `ms`, or until `set(wake)`'s function is called. */
  function nap(ms: number, set: (wake: (() => void) | undefined) => void): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        set(undefined);
        resolve();
      }
      set(done);
    });
  }

  function reject(job: WriteJob, token: string, reason: string): void {
    logger.warn({ jobId: job.id, sink: job.name, reason }, 'rejected write-behind job');
    // Only a known sink's name becomes a label: a job can carry any name.
    const ops = Array.isArray(job.data?.ops) ? job.data.ops.length : 1;
    options.observer?.rejected(sinks.has(job.name) ? job.name : 'unknown', ops);
    track(
      job
        .moveToFailed(new UnrecoverableError(reason), token, false)
        .catch((error) => logger.warn({ jobId: job.id, reason: describeError(error) }, 'could not fail job')),
    );
  }

  function accept(job: WriteJob): void {
    const token = job.token!;
    if (job.attemptsStarted > maxStarts) {
      reject(
        job,
        token,
        `gave up after ${job.attemptsStarted} deliveries: its batches kept failing or daemons died holding it (see daemon logs)`,
      );
      return;
    }
    const undecodable = undecodableReason(job);
    if (undecodable !== undefined) {
      reject(job, token, undecodable);
      return;
    }
    let request: WriteRequest;
    try {
      request = parseWriteJob(sinks, {
        id: job.id,
        name: job.name,
        data: job.data,
        timestamp: job.timestamp,
        dataBytes: storedDataBytes(job),
      });
    } catch (error) {
      reject(job, token, describeError(error));
      return;
    }
    const entry: Held = { job, token, request };
    held.set(job.id!, entry);
    if (open.length === 0) openSince = Date.now();
    open.push(entry);
    openOps += request.ops.length;
    if (open.length === 1 || openOps >= maxBatchOps) wakeCommitter?.();
  }

  const nextToken = () => `${worker.id}:${++tokens}`;

  async function fetchLoop(): Promise<void> {
    while (!stopping) {
      options.heartbeat?.('fetch');
      if (openOps >= maxBatchOps) {
        await nap(1000, (wake) => {
          wakeFetcher = wake;
        });
        continue;
      }
      try {
        const first = (await worker.getNextJob(nextToken(), { block: true })) as WriteJob | undefined;
        if (!first) continue;
        accept(first);
        // While the queue has more, fetch in parallel (one round trip each, no multi-fetch in BullMQ).
        while (!stopping && openOps < maxBatchOps) {
          const burst = await Promise.all(
            Array.from({ length: fetchers }, () => worker.getNextJob(nextToken(), { block: false })),
          );
          let empty = false;
          for (const job of burst) {
            if (job) accept(job as WriteJob);
            else empty = true;
          }
          if (empty) break;
        }
      } catch (error) {
        if (stopping) break;
        logger.warn({ reason: describeError(error) }, 'fetching write-behind jobs failed, retrying');
        await nap(1000, () => {});
      }
    }
  }

  async function commitLoop(): Promise<void> {
    // The post-commit stage of one batch (mark refreshes, complete jobs: RedisConnection) overlaps the commit of
    // the next (Postgres); stages run one at a time, in batch order.
    let finishing: Promise<void> = Promise.resolve();
    for (;;) {
      options.heartbeat?.('commit');
      if (open.length === 0) {
        if (!fetching) break;
        await nap(1000, (wake) => {
          wakeCommitter = wake;
        });
        continue;
      }
      const due = openSince + batchWindowMs - Date.now();
      if (!stopping && openOps < maxBatchOps && due > 0) {
        await nap(due, (wake) => {
          wakeCommitter = wake;
        });
        continue;
      }
      const batch = open;
      // A batch that filled up before its window closed means the queue holds more: writes first.
      backlog.throttle(openOps >= maxBatchOps);
      open = [];
      openOps = 0;
      wakeFetcher?.();
      const release = () => {
        for (const entry of batch) held.delete(entry.job.id!);
      };
      try {
        const started = performance.now();
        const outcome = await commitStage(batch);
        if (!outcome) {
          options.observer?.givenBack((performance.now() - started) / 1000);
          release();
          continue;
        }
        observeCommit(batch, outcome, (performance.now() - started) / 1000);
        const committedMs = Math.round(performance.now() - started);
        const previous = finishing;
        finishing = previous
          .then(() => finishStage(batch, outcome, started, committedMs))
          .catch((error) => logger.error({ reason: describeError(error) }, 'write-behind batch crashed'))
          .finally(release);
      } catch (error) {
        // Not expected (the stages handle their failures); never let the loop die.
        logger.error({ reason: describeError(error) }, 'write-behind batch crashed');
        release();
      }
    }
    await finishing;
  }

  function observeCommit(batch: Held[], outcome: BatchOutcome<Held>, seconds: number): void {
    if (!options.observer) return;
    const bySink = new Map<string, { applied: number; duplicates: number; failed: number }>();
    for (const entry of batch) {
      const result = outcome.jobs.get(entry);
      if (!result) continue;
      const sink = entry.request.sink.name;
      const counts = bySink.get(sink) ?? { applied: 0, duplicates: 0, failed: 0 };
      counts.applied += result.applied;
      counts.duplicates += result.duplicates;
      counts.failed += result.rejected.length;
      bySink.set(sink, counts);
    }
    options.observer.committed(seconds, bySink);
  }

  /**
   * Inside a commit that leaves refreshes to change capture: asks the drainer for a receipt of this
   * transaction (before it commits, so its captured rows cannot be drained first) and returns its id.
   * A transaction that captured nothing (every op a duplicate) owes capture nothing: undefined.
   */
  async function askCaptureReceipt(trx: Parameters<NonNullable<typeof options.leaveToCapture>>[0]) {
    const txid = await capturingTxid(trx);
    if (txid === undefined) return undefined;
    await options.connection.set(captureKeys(options.prefix).watch(txid), '1', 'EX', CAPTURE_WATCH_TTL_S);
    return txid;
  }

  /**
   * Commits the batch (retrying transient failures); undefined when the jobs were given back. `txid`
   * is set when some of its refreshes are left to change capture (see askCaptureReceipt).
   */
  async function commitStage(batch: Held[]): Promise<(BatchOutcome<Held> & { txid?: string }) | undefined> {
    const entries: BatchEntry<Held>[] = batch.map((entry) => ({
      job: entry,
      jobId: entry.job.id,
      sink: entry.request.sink,
      ops: entry.request.ops,
    }));
    const leaveToCapture = options.leaveToCapture;
    for (let attempt = 1; ; attempt++) {
      try {
        let txid: string | undefined;
        const outcome = await commitBatch(options.db, entries, {
          leaveToCapture:
            leaveToCapture &&
            (async (trx) => {
              const left = await leaveToCapture(trx);
              txid = left.size > 0 ? await askCaptureReceipt(trx) : undefined;
              return left;
            }),
        });
        return { ...outcome, txid };
      } catch (error) {
        const reason = describeError(error);
        if (isTransient(error) && attempt < 3 && !stopping) {
          logger.warn({ jobs: batch.length, attempt, reason }, 'write-behind batch failed, retrying');
          await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt)));
          continue;
        }
        // Give the jobs back: they come round again later (here or in another daemon).
        logger.error({ jobs: batch.length, reason }, 'write-behind batch failed: jobs go back to the queue');
        await Promise.all(
          batch.map((entry) =>
            entry.job
              .moveToDelayed(Date.now() + backoffMs(entry.job.attemptsStarted), entry.token)
              .catch((moveError) =>
                logger.warn({ jobId: entry.job.id, reason: describeError(moveError) }, 'could not delay job'),
              ),
          ),
        );
        return undefined;
      }
    }
  }

  /**
   * Pushes the batch's appends onto their lists, before its jobs complete (a crash in between
   * redelivers them, and an element already in its list is not pushed twice). What cannot be
   * appended becomes a refresh of its group (or, when the appends fail, of every group named).
   */
  async function appendToLists(appends: AppendRequest[]): Promise<RefreshTargetRequest[]> {
    const owed: RefreshTargetRequest[] = [];
    for (const { view: name, rows, priority } of appends) {
      const view = options.registry.view(name)!;
      try {
        const outcome = await options.engine.append(view, rows);
        for (const problem of outcome.problems)
          logger.warn({ view: name, reason: problem }, 'append refused');
        for (const params of outcome.refresh) owed.push({ view: name, params, priority });
      } catch (error) {
        logger.warn(
          { view: name, reason: describeError(error) },
          'append failed: refreshing its groups instead',
        );
        for (const row of rows) owed.push({ view: name, params: pickParams(view, row), priority });
      }
    }
    return owed;
  }

  async function finishStage(
    batch: Held[],
    outcome: BatchOutcome<Held> & { txid?: string },
    started: number,
    committedMs: number,
  ): Promise<void> {
    for (const warning of outcome.warnings) logger.warn({ reason: warning }, 'refresh declaration problem');

    // The refresh debt is recorded before the jobs complete: a crash in between redelivers the jobs,
    // whose ops are then skipped by the ledger but still mark their views.
    let receipt: WriteBehindJobResult['refresh'];
    try {
      const { seq, members } = await backlog.mark([
        ...outcome.refreshes,
        ...(await appendToLists(outcome.appends)),
      ]);
      if (seq > 0) receipt = { seq, ...(members.length <= MAX_OWED_IN_RESULT ? { owed: members } : {}) };
      if (outcome.txid !== undefined) receipt = { seq, ...receipt, capture: outcome.txid };
    } catch (error) {
      logger.error(
        { jobs: batch.length, reason: describeError(error) },
        'could not record refreshes after commit: jobs left to redeliver',
      );
      return;
    }
    await Promise.all(
      batch.map(async (entry) => {
        const result = outcome.jobs.get(entry)!;
        try {
          if (result.rejected.length > 0) {
            logger.warn(
              {
                jobId: entry.job.id,
                sink: entry.job.name,
                rejected: result.rejected.length,
                reason: result.rejected[0]!.reason,
              },
              'write-behind ops rejected: kept in viewkeeper.rejected_ops',
            );
          }
          await entry.job.moveToCompleted(
            {
              applied: result.applied,
              duplicates: result.duplicates,
              rejected: result.rejected,
              ...(receipt ? { refresh: receipt } : {}),
            },
            entry.token,
            false,
          );
        } catch (error) {
          // Lock lost (this daemon stalled): the job is redelivered and its ops skipped by the ledger.
          logger.warn(
            { jobId: entry.job.id, reason: describeError(error) },
            'could not finish write-behind job',
          );
        }
      }),
    );
    logger.info(
      {
        jobs: batch.length,
        ops: outcome.applied + outcome.duplicates + outcome.rejected,
        applied: outcome.applied,
        duplicates: outcome.duplicates || undefined,
        rejected: outcome.rejected || undefined,
        refreshes: outcome.refreshes.length,
        commitMs: committedMs,
        ms: Math.round(performance.now() - started),
      },
      'write-behind batch committed',
    );
  }

  const renew = setInterval(() => {
    if (held.size === 0) return;
    const entries = [...held.values()];
    worker
      .extendJobLocks(
        entries.map((entry) => entry.job.id!),
        entries.map((entry) => entry.token),
        lockDuration,
      )
      .catch((error) => logger.warn({ reason: describeError(error) }, 'could not extend write-behind locks'));
  }, lockDuration / 3);
  renew.unref();

  const prune = setInterval(() => {
    pruneLedger(options.db, retentionMs)
      .then((removed) => removed > 0 && logger.info({ removed }, 'pruned write-behind ledger'))
      .catch((error) => logger.warn({ reason: describeError(error) }, 'could not prune write-behind ledger'));
  }, 3600_000);
  prune.unref();

  worker
    .startStalledCheckTimer()
    .catch((error) => logger.warn({ reason: describeError(error) }, 'stalled check'));
  if (ownBacklog) backlog.start();
  const fetched = fetchLoop().finally(() => {
    fetching = false;
    wakeCommitter?.();
  });
  const committed = commitLoop();

  let closing: Promise<void> | undefined;
  return {
    close(timeoutMs) {
      closing ??= (async () => {
        const deadline = Date.now() + timeoutMs;
        stopping = true;
        wakeCommitter?.();
        wakeFetcher?.();
        let timer: NodeJS.Timeout | undefined;
        const flushed = await Promise.race([
          Promise.all([fetched, committed, ...pending]).then(() => true),
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), timeoutMs);
          }),
        ]);
        clearTimeout(timer);
        if (!flushed)
          logger.warn({ timeoutMs, jobs: held.size }, 'write-behind batch not flushed at shutdown timeout');
        clearInterval(renew);
        clearInterval(prune);
        if (ownBacklog) await backlog.close(Math.max(0, deadline - Date.now()));
        await Promise.race([
          worker.close(!flushed),
          new Promise((resolve) => setTimeout(resolve, 5000).unref()),
        ]);
      })();
      return closing;
    },
  };
}

/** The refresh params of the group `row` belongs to; undefined (a full refresh) when they are not all in it. */
function pickParams(view: ViewDefinition, row: Record<string, unknown>): Record<string, unknown> | undefined {
  const names = Object.keys(view.params ?? {});
  if (names.length === 0 || names.some((name) => row[name] === undefined)) return undefined;
  return Object.fromEntries(names.map((name) => [name, row[name]]));
}

/** A sink that refreshes a view the registry does not have is a definition error: stop start-up. */
function checkRefreshViews(sinks: Map<string, SinkDefinition>, registry: Registry): void {
  for (const sink of sinks.values()) {
    const [problem] = refreshTargetProblems(sink, (name) => registry.view(name));
    if (problem) throw new ViewkeeperError('E_SINK_DEFINITION', problem);
  }
}
