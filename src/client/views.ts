import { ViewkeeperError } from '../errors.ts';
import { viewKeys } from '../redis/keys.ts';
import type { ClientRedis } from './connection.ts';
import { type ClientCore, deepFreeze, isUnavailable } from './core.ts';
import { createGroupReader, type GroupReader } from './group-views.ts';
import type { L1Ticket } from './l1-cache.ts';
import type { OnMiss } from './options.ts';
import type { ResolvedView, ViewParams } from './view-descriptors.ts';

/** Per-read options of the view readers. */
export interface ViewReadOptions {
  /** Overrides the client's `onMiss` for this read. */
  onMiss?: OnMiss;
  /** Overrides the client's `missTimeoutMs` for this read (ms). */
  timeoutMs?: number;
}

export interface ZsetReadOptions extends ViewReadOptions {
  /** How many members, highest score first. @defaultValue 10 */
  top?: number;
  /** Return `{ member, score }` pairs instead of members. @defaultValue false */
  withScores?: boolean;
}

export interface ScoredMember {
  member: string;
  score: number;
}

export interface ViewReader extends GroupReader {
  hash<T extends Record<string, string> = Record<string, string>>(
    view: string,
    params: ViewParams,
    options?: ViewReadOptions,
  ): Promise<Readonly<T> | null>;
  value(view: string, params: ViewParams, options?: ViewReadOptions): Promise<string | null>;
  json<T = unknown>(view: string, options?: ViewReadOptions): Promise<T | null>;
  zset(view: string, options: ZsetReadOptions & { withScores: true }): Promise<readonly ScoredMember[]>;
  zset(view: string, options?: ZsetReadOptions): Promise<readonly string[]>;
  rank(view: string, member: string | number, options?: ViewReadOptions): Promise<number | null>;
}

/** Asks the daemon to refresh `view` (coalesced); resolves once the job is accepted. */
/** An enqueued refresh: `failure()` is the daemon's reason once the job failed, else undefined. */
export interface EnqueuedRefresh {
  failure(): Promise<string | undefined>;
}

export type Enqueue = (
  view: string,
  params: ViewParams | undefined,
  timeoutMs: number,
) => Promise<EnqueuedRefresh>;

/** How often a miss waiting for its refresh event checks whether the refresh job failed. */
const FAILURE_POLL_MS = 200;

/** `undefined` = the key is missing (a miss); anything else, `null` included, is an answer. */
type Fetch<T> = (redis: ClientRedis) => Promise<T | undefined>;

export interface ReadSpec<T> {
  view: ResolvedView;
  redisKey: string;
  /** Distinguishes reads of the same key (zset top 10 vs top 100) in the L1. */
  variant: string;
  params: ViewParams | undefined;
  fetch: Fetch<T>;
  bytes(value: T): number;
}

function textBytes(values: Iterable<string>): number {
  let bytes = 0;
  for (const value of values) bytes += value.length + 16;
  return bytes;
}

/**
 * Reads of the daemon's views. An L1 copy is used while the events channel is subscribed; a miss
 * enqueues a refresh and waits (bounded) for the view's event covering the key, then reads again;
 * with Redis unreachable, the L1 copy (even past its L1 lifetime) is served or `E_UNAVAILABLE` thrown.
 */
export function createViewReader(
  core: ClientCore,
  views: Map<string, ResolvedView>,
  defaults: { onMiss: OnMiss; missTimeoutMs: number },
  enqueue: Enqueue,
): ViewReader {
  const { guard, l1, bus, stats } = core;
  /** Misses being refreshed, by Redis key: local callers share one enqueue-and-wait. */
  const refreshing = new Map<string, Promise<void>>();

  function viewOf(name: string, shapes: ResolvedView['shape'][]): ResolvedView {
    const view = views.get(name);
    if (!view) {
      throw new ViewkeeperError(
        'E_VIEW_UNKNOWN',
        `view ${JSON.stringify(name)} is not in the client's views option (known: ${[...views.keys()].join(', ') || 'none'}); pass its definition or { shape, key }`,
      );
    }
    if (!shapes.includes(view.shape)) {
      throw new ViewkeeperError(
        'E_BAD_PARAMS',
        `view ${name} is a ${view.shape} view; read it with client.${view.shape}()`,
      );
    }
    return view;
  }

  async function refreshAndWait(spec: ReadSpec<unknown>, timeoutMs: number): Promise<void> {
    const started = Date.now();
    if (!(await bus.ready(timeoutMs))) {
      throw new ViewkeeperError(
        'E_UNAVAILABLE',
        `cannot wait for a refresh of ${spec.view.name}: the events channel ${core.channel} is not subscribed`,
      );
    }
    const refreshParams = spec.view.placeholders.length > 0 ? spec.params : undefined;
    if (refreshParams) spec.view.checkRefreshParams(refreshParams);
    const waiter = bus.waitForView(
      spec.view.name,
      spec.redisKey,
      Math.max(1, timeoutMs - (Date.now() - started)),
    );
    let enqueued: EnqueuedRefresh;
    try {
      enqueued = await enqueue(
        spec.view.name,
        refreshParams,
        Math.max(1, timeoutMs - (Date.now() - started)),
      );
    } catch (error) {
      waiter.cancel();
      throw error;
    }
    // A refresh the daemon rejects (bad params, a failing query) sends no event: watch the job too,
    // so the caller gets the daemon's reason now rather than a timeout later.
    let waiting = true;
    const failed = (async (): Promise<string | undefined> => {
      while (waiting) {
        await new Promise((resolve) => setTimeout(resolve, FAILURE_POLL_MS).unref());
        if (!waiting) return undefined;
        const reason = await enqueued.failure().catch(() => undefined);
        if (reason !== undefined) return reason;
      }
      return undefined;
    })();
    const outcome = await Promise.race([
      waiter.promise.then((seen) => ({ seen })),
      failed.then((reason) => ({ reason })),
    ]);
    waiting = false;
    if ('reason' in outcome && outcome.reason !== undefined) {
      waiter.cancel();
      throw new ViewkeeperError(
        'E_JOB_FAILED',
        `${spec.redisKey} (view ${spec.view.name}) is missing and its refresh failed: ${outcome.reason}`,
      );
    }
    if (!('seen' in outcome && outcome.seen)) {
      throw new ViewkeeperError(
        'E_TIMEOUT',
        `${spec.redisKey} (view ${spec.view.name}) is missing and no refresh event arrived within ${timeoutMs} ms; is a daemon consuming the refresh queue with prefix ${core.prefix}?`,
      );
    }
  }

  async function fromRedis<T>(spec: ReadSpec<T>, l1Key: string): Promise<T | undefined> {
    const ticket: L1Ticket | undefined =
      l1 && bus.subscribed ? l1.begin([`k:${spec.redisKey}`, `v:${spec.view.name}`]) : undefined;
    try {
      const value = await guard.run(spec.fetch);
      if (value !== undefined && ticket && bus.subscribed) {
        const frozen = deepFreeze(value);
        l1!.fill(
          l1Key,
          {
            value: frozen,
            bytes: spec.bytes(value),
            groups: ticket.groups,
            freshUntil: Date.now() + core.l1TtlMs,
          },
          ticket,
        );
        return frozen;
      }
      if (ticket) l1!.abandon(ticket);
      return value;
    } catch (error) {
      if (ticket) l1!.abandon(ticket);
      throw error;
    }
  }

  async function read<T>(
    spec: ReadSpec<T>,
    options: ViewReadOptions | undefined,
    empty: T | null,
  ): Promise<T | null> {
    const l1Key = `v:${spec.redisKey}|${spec.variant}`;
    core.hotKeys.record(spec.redisKey);
    const local = l1?.get(l1Key);
    if (local && bus.subscribed && Date.now() < local.freshUntil) {
      stats.add('hits');
      stats.add('l1Hits');
      return local.value as T;
    }
    let value: T | undefined;
    try {
      value = await fromRedis(spec, l1Key);
    } catch (error) {
      if (isUnavailable(error) && local && !core.closed()) {
        stats.add('staleServed');
        return local.value as T;
      }
      throw error;
    }
    if (value !== undefined) {
      stats.add('hits');
      return value;
    }
    stats.add('misses');
    if ((options?.onMiss ?? defaults.onMiss) === 'null') return empty;
    const timeoutMs = options?.timeoutMs ?? defaults.missTimeoutMs;
    let flight = refreshing.get(spec.redisKey);
    if (!flight) {
      flight = refreshAndWait(spec as ReadSpec<unknown>, timeoutMs).finally(() =>
        refreshing.delete(spec.redisKey),
      );
      refreshing.set(spec.redisKey, flight);
    }
    await flight;
    return (await fromRedis(spec, l1Key)) ?? empty;
  }

  /** A zset or json key is missing: built-and-empty (metadata has a version) is an answer, not a miss. */
  async function builtEmpty(redis: ClientRedis, view: ResolvedView): Promise<boolean> {
    return (await redis.hexists(viewKeys(core.prefix, view.name).meta, 'version')) === 1;
  }

  return {
    ...createGroupReader(viewOf, read),

    async hash(name, params, options) {
      const view = viewOf(name, ['hash']);
      const redisKey = view.keyFor(params);
      return read(
        {
          view,
          redisKey,
          variant: 'hash',
          params,
          fetch: async (redis) => {
            const fields = await redis.hgetall(redisKey);
            return Object.keys(fields).length > 0 ? fields : undefined;
          },
          bytes: (fields) => textBytes(Object.keys(fields)) + textBytes(Object.values(fields)),
        },
        options,
        null,
      ) as never;
    },

    async value(name, params, options) {
      const view = viewOf(name, ['value']);
      const redisKey = view.keyFor(params);
      return read<string>(
        {
          view,
          redisKey,
          variant: 'value',
          params,
          fetch: async (redis) => (await redis.get(redisKey)) ?? undefined,
          bytes: (value) => value.length + 16,
        },
        options,
        null,
      );
    },

    async json(name, options) {
      const view = viewOf(name, ['json']);
      const redisKey = view.keyFor(undefined);
      let size = 0;
      return read(
        {
          view,
          redisKey,
          variant: 'json',
          params: undefined,
          fetch: async (redis) => {
            const text = await redis.get(redisKey);
            if (text === null) return undefined;
            size = text.length;
            return JSON.parse(text);
          },
          bytes: () => size + 16,
        },
        options,
        null,
      );
    },

    async zset(name: string, options: ZsetReadOptions = {}) {
      const view = viewOf(name, ['zset']);
      const redisKey = view.keyFor(undefined);
      const top = options.top ?? 10;
      if (!Number.isInteger(top) || top < 1) {
        throw new ViewkeeperError('E_BAD_PARAMS', `zset(${name}) top must be a whole number ≥ 1, got ${top}`);
      }
      const withScores = options.withScores === true;
      return read<readonly string[] | readonly ScoredMember[]>(
        {
          view,
          redisKey,
          variant: `zset:${top}:${withScores ? 's' : ''}`,
          params: undefined,
          fetch: async (redis) => {
            const flat = withScores
              ? await redis.zrange(redisKey, '0', String(top - 1), 'REV', 'WITHSCORES')
              : await redis.zrange(redisKey, '0', String(top - 1), 'REV');
            if (flat.length === 0) return (await builtEmpty(redis, view)) ? [] : undefined;
            if (!withScores) return flat;
            const pairs: ScoredMember[] = [];
            for (let i = 0; i < flat.length; i += 2)
              pairs.push({ member: flat[i]!, score: Number(flat[i + 1]) });
            return pairs;
          },
          bytes: (members) =>
            members.length === 0
              ? 16
              : typeof members[0] === 'string'
                ? textBytes(members as string[])
                : textBytes((members as ScoredMember[]).map((pair) => pair.member)) + 8 * members.length,
        },
        options,
        [],
      ) as never;
    },

    async rank(name, member, options) {
      const view = viewOf(name, ['zset']);
      const redisKey = view.keyFor(undefined);
      const text = String(member);
      return read<number | null>(
        {
          view,
          redisKey,
          variant: `rank:${text}`,
          params: undefined,
          fetch: async (redis) => {
            const rank = await redis.zrevrank(redisKey, text);
            if (rank !== null) return rank;
            // Not ranked: an answer if the set exists (or the view is built and empty), else a miss.
            return (await redis.exists(redisKey)) === 1 || (await builtEmpty(redis, view)) ? null : undefined;
          },
          bytes: () => 24 + text.length,
        },
        options,
        null,
      );
    },
  };
}
