import type { Queue, QueueEvents } from 'bullmq';
import { Cluster, type Redis } from 'ioredis';
import { rememberUrlSecrets } from '../config/redact.ts';
import { QUEUES, type RefreshJobResult } from '../contract.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import { within } from '../lib/within.ts';
import { createQueue, createQueueEvents } from '../queues/factories.ts';
import { closeRedis, createRedis } from '../redis/connections.ts';
import { clientKeys, eventsKey } from '../redis/keys.ts';
import { isClusterUrl } from '../redis/target.ts';
import { type AfterCommitOptions, afterCommit, type SqlQueryable } from './after-commit.ts';
import type { BreakerState } from './breaker.ts';
import { createCacheStore } from './cache-store.ts';
import { type CachedOptions, createCacheAside, EVENTS_MAX_LEN, type Loader } from './cached.ts';
import { createQueueCluster } from './cluster.ts';
import { createEventsSubscriber, createFailFastRedis, createGuard } from './connection.ts';
import type { ClientCore } from './core.ts';
import { createEventBus } from './events.ts';
import type { ListReadOptions } from './group-views.ts';
import { createHotKeys } from './hot-keys.ts';
import { createL1 } from './l1-cache.ts';
import { type ClientOptions, resolveClientOptions } from './options.ts';
import { enqueueRefresh, waitForRefresh } from './refresh.ts';
import { loadClientScripts } from './scripts.ts';
import { type ClientStats, createStats } from './stats.ts';
import { resolveViews, type ViewMap, type ViewParams, type ViewsOfShape } from './view-descriptors.ts';
import { createViewReader, type ScoredMember, type ViewReadOptions, type ZsetReadOptions } from './views.ts';
import { createWriter, type WriteInput, type Writer } from './write.ts';
import type { WriteWaitOptions } from './write-wait.ts';

export interface RefreshOptions {
  /** Wait for the daemon to finish the run (a job of its own, not coalesced). @defaultValue false */
  wait?: boolean;
  /** How long to wait for the run, or for Redis to accept the job (ms). @defaultValue 30000 with wait, else commandTimeoutMs */
  timeoutMs?: number;
  /** Recorded with the job (≤ 200 characters). */
  reason?: string;
}

export interface RefreshOutcome {
  jobId: string;
  /** The run's result, with `wait: true`. */
  result?: RefreshJobResult;
}

export interface ClientHealth {
  breaker: BreakerState;
  /** Whether the events channel is subscribed (the L1 is only trusted while it is). */
  subscribed: boolean;
  l1: { entries: number; bytes: number } | null;
}

/** The app-side library. Create one per process and share it; `close()` it on shutdown. */
// The default is `any`, not ViewMap: a client typed by its views must be assignable to the plain
// `ViewkeeperClient` (a function taking any client), and TypeScript measures V as invariant here.
// biome-ignore lint/suspicious/noExplicitAny: see above
export interface ViewkeeperClient<V extends ViewMap = any> {
  /**
   * Asks the daemon to refresh `view` — all of it, the keys `params` select, or given a list of
   * params the keys of each (one bulk job, up to 10,000) — through the refresh queue (a single key or
   * a full rebuild is coalesced with identical requests). With `wait`, resolves with the run's
   * result — for a bulk request `entries` has one outcome per element, in order, and a bad element
   * fails only its own entry — or rejects with `E_JOB_FAILED` (the daemon's reason) or `E_TIMEOUT`.
   * @example await client.refresh('user_stats', { user_id: 42 }, { wait: true });
   * @example
   * const { result } = await client.refresh('user_stats', [{ user_id: 1 }, { user_id: 2 }], { wait: true });
   * // result.entries: [{ status: 'done', rows: 1 }, { status: 'done', rows: 1 }]
   */
  refresh(
    view: string,
    params?: ViewParams | readonly ViewParams[],
    options?: RefreshOptions,
  ): Promise<RefreshOutcome>;
  /**
   * One row of a `hash` view, or null. On a miss (with `onMiss: 'refresh'`) a partial refresh with
   * these params is enqueued and the read waits for the view's event, then reads again.
   * @example const stats = await client.hash('user_stats', { user_id: 42 }); // { post_count: '3', … }
   */
  hash<T extends Record<string, string> = Record<string, string>>(
    view: ViewsOfShape<V, 'hash'>,
    params: ViewParams,
    options?: ViewReadOptions,
  ): Promise<Readonly<T> | null>;
  /** One row of a `value` view, or null. @example await client.value('post_votes', { post_id: 7 }) // '12' */
  value(
    view: ViewsOfShape<V, 'value'>,
    params: ViewParams,
    options?: ViewReadOptions,
  ): Promise<string | null>;
  /** The parsed value of a `json` view, or null. @example await client.json<Post[]>('trending_posts') */
  json<T = unknown>(view: ViewsOfShape<V, 'json'>, options?: ViewReadOptions): Promise<T | null>;
  /**
   * The top members of a `zset` view, highest score first.
   * @example await client.zset('trending', { top: 10, withScores: true }) // [{ member: '7', score: 12 }, …]
   */
  zset(
    view: ViewsOfShape<V, 'zset'>,
    options: ZsetReadOptions & { withScores: true },
  ): Promise<readonly ScoredMember[]>;
  zset(view: ViewsOfShape<V, 'zset'>, options?: ZsetReadOptions): Promise<readonly string[]>;
  /** 0-based rank of `member` in a `zset` view (0 = highest score), or null when it is not in it. */
  rank(
    view: ViewsOfShape<V, 'zset'>,
    member: string | number,
    options?: ViewReadOptions,
  ): Promise<number | null>;
  /**
   * Elements `start`..`stop` (inclusive, as LRANGE) of one group's list in a `list` view; [] when
   * the group has none. On a miss (with `onMiss: 'refresh'`) the group is refreshed by `params`.
   * @example await client.list('user_recent_votes', { user_id: 42 }, { start: 0, stop: 9 }) // newest 10
   */
  list(
    view: ViewsOfShape<V, 'list'>,
    params: ViewParams,
    options?: ListReadOptions,
  ): Promise<readonly string[]>;
  /**
   * Every member of one group's set in a `set` view, sorted; [] when the group has none.
   * @example await client.set('post_voters_today', { post_id: 7 }) // ['12', '42']
   */
  set(
    view: ViewsOfShape<V, 'set'>,
    params: ViewParams,
    options?: ViewReadOptions,
  ): Promise<readonly string[]>;
  /**
   * Whether `member` is in one group's set of a `set` view (SISMEMBER, cached in the L1 per member).
   * @example await client.isMember('post_voters_today', { post_id: 7 }, 42) // true
   */
  isMember(
    view: ViewsOfShape<V, 'set'>,
    params: ViewParams,
    member: string | number,
    options?: ViewReadOptions,
  ): Promise<boolean>;
  /**
   * Cache-aside for anything that is not a view: returns the cached value, or runs `loader` — once
   * across every process per key and expiry — and caches its result (JSON). With Redis unreachable,
   * returns a stale copy within its window or the loader's result.
   * @example
   * const profile = await client.cached(`profile:${id}`, () => fetchProfile(id), {
   *   ttl: 60_000, tags: [`user:${id}`], staleWhileRevalidate: 10_000,
   * });
   */
  cached<T>(key: string, loader: Loader<T>, options?: CachedOptions): Promise<T>;
  /** Deletes one `cached()` entry everywhere (Redis and every process's L1). Resolves with whether it existed. */
  invalidate(key: string): Promise<boolean>;
  /**
   * Makes every `cached()` entry tagged `tag` stale, in O(1) (a version bump checked on read), and
   * drops it from every process's L1. Resolves with the tag's new version.
   * @example await client.invalidateTag(`user:${id}`);
   */
  invalidateTag(tag: string): Promise<number>;
  /**
   * Write-behind: hands ops to the daemon's write-behind queue for sink `sink` (`id` = idempotency
   * key; a UUID when left out). Concurrent calls are group-committed into one job
   * (src/client/write.ts). Resolves with the op ids once Redis has accepted them — or, with `until`
   * (sinks given in the options only), once the daemon has committed them (`'committed'`) or also
   * written every view refresh they owe (`'refreshed'`); rejects with `E_OP_REJECTED` and the
   * daemon's reason if one was refused, `E_TIMEOUT` after `timeoutMs` (the ops stay queued).
   * @example await client.write('votes', { id: 'vote-7-42', post_id: 7, user_id: 42, value: 1 });
   * @example await client.write('votes', { post_id: 7, user_id: 42, value: 1 }, { until: 'refreshed' });
   */
  write(sink: string, ops: WriteInput | readonly WriteInput[], wait?: WriteWaitOptions): Promise<string[]>;
  /**
   * Read your writes for an app writing captured tables with its own SQL: call after its COMMIT;
   * resolves once change capture has drained the transaction's changes (`txid` from
   * `select pg_current_xact_id()::text` inside it; without it, every change captured so far) and the
   * refreshes they owe are written. `db` is the app's `pg` Pool or Client.
   * @example await client.afterCommit(pool, { txid, timeoutMs: 5000 });
   */
  afterCommit(db: SqlQueryable, options?: AfterCommitOptions): Promise<void>;
  /** Counters since creation (also added to `{prefix}:client:stats` in Redis periodically). */
  stats(): ClientStats;
  health(): ClientHealth;
  /** Flushes counters and releases every connection, the subscriber and timers. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a client. Connections open in the background; the first calls wait for them (at most
 * `commandTimeoutMs`). Nothing reads the environment: pass what the daemon uses.
 *
 * @example
 * import { createClient } from 'viewkeeper';
 * import userStats from './jobs/user-stats.ts';
 *
 * const client = createClient({
 *   redisUrl: process.env.REDIS_URL,
 *   views: { user_stats: userStats, trending: { shape: 'zset', key: 'trending:24h' } },
 *   l1: { maxEntries: 10_000 },
 * });
 * const stats = await client.hash('user_stats', { user_id: 42 });
 * const top = await client.zset('trending', { top: 10, withScores: true });
 * await client.close();
 */
export function createClient<const V extends ViewMap = ViewMap>(
  options: ClientOptions<V> = {},
): ViewkeeperClient<V> {
  const resolved = resolveClientOptions(options as ClientOptions<ViewMap>);
  // Whatever the client logs or throws is masked of these, wherever a library put them.
  rememberUrlSecrets([resolved.redisUrl, resolved.queueRedisUrl]);
  const views = resolveViews(options.views);
  const { prefix, logger } = resolved;
  const channel = eventsKey(prefix);

  const redis = createFailFastRedis(resolved.redisUrl, {
    name: `${prefix}:client:${resolved.name}`,
    commandTimeoutMs: resolved.commandTimeoutMs,
    connectTimeoutMs: resolved.connectTimeoutMs,
  });
  const subscriber = createEventsSubscriber(resolved.redisUrl, redis, {
    name: `${prefix}:client-events:${resolved.name}`,
    commandTimeoutMs: resolved.commandTimeoutMs,
    connectTimeoutMs: resolved.connectTimeoutMs,
  });
  const keys = clientKeys(prefix);
  const stats = createStats(keys.stats);
  const hotKeys = createHotKeys(keys.hotKeys, resolved.hotKeySampleRate);
  const l1 = resolved.l1 ? createL1(resolved.l1) : undefined;
  const guard = createGuard(redis, {
    url: resolved.redisUrl,
    commandTimeoutMs: resolved.commandTimeoutMs,
    failureThreshold: resolved.failureThreshold,
    cooldownMs: resolved.cooldownMs,
    onFailure: () => stats.add('errors'),
  });
  const bus = createEventBus(subscriber, channel, {
    view(event) {
      if (!l1) return;
      if (event.keys === null) l1.invalidate(`v:${event.view}`);
      else for (const key of event.keys) l1.invalidate(`k:${key}`);
    },
    tag: (event) => l1?.invalidate(`t:${event.tag}`),
    cacheKey: (event) => l1?.invalidate(`c:${event.cacheKey}`, event.id),
    resubscribed() {
      // Pub/sub does not replay: whatever changed while we were away is unknown, so forget it all.
      l1?.clear();
      logger.debug({ channel }, 'events re-subscribed; L1 cleared');
    },
  });

  const scripts = loadClientScripts(redis);
  let closing: Promise<void> | undefined;
  const background = new Set<Promise<unknown>>();
  const core: ClientCore = {
    prefix,
    channel,
    keys,
    guard,
    scripts,
    l1,
    l1TtlMs: resolved.l1?.ttlMs ?? 0,
    bus,
    stats,
    hotKeys,
    logger,
    closed: () => closing !== undefined,
    track(work) {
      background.add(work);
      work.finally(() => background.delete(work)).catch(() => {});
    },
  };

  // Queues are created on first use: an app that only reads never opens a queue connection.
  let queueConnection: Redis | Cluster | undefined;
  let refreshQueue: Queue | undefined;
  let refreshEvents: QueueEvents | undefined;
  let writer: Writer | undefined;
  // BullMQ takes a Cluster where it takes a Redis (its ConnectionOptions); our factories are typed
  // for one server, hence the cast. On a cluster the prefix carries a hash tag (options.ts checks),
  // so every key of a queue is in one slot, as BullMQ's scripts need.
  function queueRedis(): Redis {
    if (!queueConnection) {
      const connection = {
        name: `${prefix}:client-queue:${resolved.name}`,
        connectTimeoutMs: resolved.connectTimeoutMs,
      };
      queueConnection = isClusterUrl(resolved.queueRedisUrl)
        ? createQueueCluster(resolved.queueRedisUrl, connection)
        : createRedis(resolved.queueRedisUrl, { role: 'queue', ...connection });
      queueConnection.connect().catch(() => {});
    }
    return queueConnection as Redis;
  }
  function ensureOpen(): void {
    if (closing) throw new ViewkeeperError('E_UNAVAILABLE', 'the viewkeeper client is closed');
  }
  const unavailable = (what: string, ms: number) => () =>
    new ViewkeeperError(
      'E_UNAVAILABLE',
      `${what}: the queue Redis did not accept it within ${ms} ms (the job may still be added once it is back)`,
    );

  async function enqueue(
    view: string,
    params: ViewParams | readonly ViewParams[] | undefined,
    timeoutMs: number,
    reason?: string,
  ) {
    ensureOpen();
    refreshQueue ??= createQueue(QUEUES.refresh, queueRedis(), prefix);
    return within(
      enqueueRefresh(refreshQueue, view, params, { reason }),
      timeoutMs,
      unavailable(`refresh of ${view}`, timeoutMs),
    );
  }

  const reader = createViewReader(
    core,
    views,
    { onMiss: resolved.onMiss, missTimeoutMs: resolved.missTimeoutMs },
    async (view, params, timeoutMs) => {
      const job = await enqueue(view, params, timeoutMs, 'client miss');
      return {
        async failure() {
          // A deduplicated request returns the job it joined: its failure is ours too.
          const current = job.id ? await refreshQueue!.getJob(job.id) : undefined;
          return current && (await current.isFailed()) ? current.failedReason || 'failed' : undefined;
        },
      };
    },
  );
  const cache = createCacheAside(
    core,
    resolved.cache,
    createCacheStore({
      redis,
      scripts,
      keys,
      prefix,
      channel,
      streamMaxLen: EVENTS_MAX_LEN,
      cluster: redis instanceof Cluster,
    }),
  );

  redis.connect().catch(() => {});
  subscriber.connect().catch(() => {});
  const flushTimer =
    resolved.statsFlushMs > 0
      ? setInterval(() => {
          flushStats().catch(() => {});
        }, resolved.statsFlushMs)
      : undefined;
  flushTimer?.unref();

  async function flushStats(): Promise<void> {
    // Counters are best effort: not sent through the guard, so they never trip the breaker.
    if (redis.status !== 'ready' || guard.breaker() !== 'closed') return;
    await stats.flush(redis);
    await hotKeys.flush(redis);
  }

  async function step(name: string, work: () => Promise<unknown>, ms: number): Promise<void> {
    try {
      await within(work(), ms, () => new Error(`${name} did not close within ${ms} ms`));
    } catch (error) {
      logger.debug({ step: name, reason: describeError(error) }, 'close step failed');
    }
  }

  return {
    async refresh(view, params, refreshOptions = {}) {
      if (!refreshOptions.wait) {
        const job = await enqueue(
          view,
          params,
          refreshOptions.timeoutMs ?? resolved.commandTimeoutMs,
          refreshOptions.reason,
        );
        return { jobId: String(job.id) };
      }
      ensureOpen();
      const timeoutMs = refreshOptions.timeoutMs ?? 30_000;
      const started = Date.now();
      refreshQueue ??= createQueue(QUEUES.refresh, queueRedis(), prefix);
      refreshEvents ??= createQueueEvents(QUEUES.refresh, queueRedis(), prefix);
      // Listen before enqueueing so the completion cannot slip past; a job of its own, because a
      // coalesced request would wait on someone else's job.
      await within(refreshEvents.waitUntilReady(), timeoutMs, unavailable(`refresh of ${view}`, timeoutMs));
      const job = await within(
        enqueueRefresh(refreshQueue, view, params, { reason: refreshOptions.reason, coalesce: false }),
        Math.max(1, timeoutMs - (Date.now() - started)),
        unavailable(`refresh of ${view}`, timeoutMs),
      );
      const result = await waitForRefresh(
        job,
        refreshEvents,
        Math.max(1, timeoutMs - (Date.now() - started)),
      );
      return { jobId: String(job.id), result };
    },

    hash: (view, params, readOptions) => reader.hash(view, params, readOptions),
    value: (view, params, readOptions) => reader.value(view, params, readOptions),
    json: (view, readOptions) => reader.json(view, readOptions),
    zset: ((view: string, readOptions?: ZsetReadOptions) => reader.zset(view, readOptions)) as never,
    rank: (view, member, readOptions) => reader.rank(view, member, readOptions),
    list: (view, params, readOptions) => reader.list(view, params, readOptions),
    set: (view, params, readOptions) => reader.set(view, params, readOptions),
    isMember: (view, params, member, readOptions) => reader.isMember(view, params, member, readOptions),
    cached: (key, loader, cachedOptions) => cache.cached(key, loader, cachedOptions),
    invalidate: (key) => cache.invalidate(key),
    invalidateTag: (tag) => cache.invalidateTag(tag),

    async write(sink, ops, wait) {
      ensureOpen();
      writer ??= createWriter({
        connection: queueRedis(),
        prefix,
        sinks: options.sinks,
        redis,
        ...options.write,
        onCacheError: (error, name) =>
          logger.warn({ sink: name, reason: describeError(error) }, 'write-behind cache effect failed'),
      });
      // A wait bounds itself by its own timeoutMs.
      if (wait !== undefined) return writer.write(sink, ops, wait);
      return within(
        writer.write(sink, ops),
        resolved.commandTimeoutMs,
        unavailable(`write to ${sink}`, resolved.commandTimeoutMs),
      );
    },

    afterCommit(db, commitOptions) {
      ensureOpen();
      return afterCommit(db, queueRedis(), prefix, commitOptions);
    },

    stats: () => stats.snapshot(),
    health: () => ({
      breaker: guard.breaker(),
      subscribed: bus.subscribed,
      l1: l1 ? { entries: l1.size, bytes: l1.bytes } : null,
    }),

    close() {
      closing ??= (async () => {
        const ms = resolved.commandTimeoutMs;
        clearInterval(flushTimer);
        // Every step runs even when one fails or hangs (each is bounded).
        await step('background refreshes', () => Promise.allSettled([...background]), ms);
        await step('stats flush', flushStats, ms);
        guard.close();
        await step('events subscriber', () => bus.close(), ms);
        await step('queue events', async () => refreshEvents?.close(), ms);
        await step('refresh queue', async () => refreshQueue?.close(), ms);
        await step('writer', async () => writer?.close(), ms);
        // closeRedis uses only status, quit() and disconnect(), which a Cluster has as well.
        if (queueConnection) await step('queue redis', () => closeRedis(queueConnection as Redis), ms);
        await step('redis', () => closeRedis(redis as Redis), ms);
        for (const connection of [redis, subscriber, queueConnection]) {
          if (connection && connection.status !== 'end') connection.disconnect();
        }
        l1?.clear();
      })();
      return closing;
    },
  };
}
