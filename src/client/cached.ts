import { randomBytes, randomUUID } from 'node:crypto';
import type { CacheKeyEvent } from '../contract.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import { type CacheEnvelope, decodeEnvelope, encodeEnvelope } from '../redis/cache-codec.ts';
import type { CacheStore } from './cache-store.ts';
import { type ClientCore, deepFreeze, isUnavailable } from './core.ts';
import type { L1Entry, L1Ticket } from './l1-cache.ts';
import { type CacheDefaults, type ResolvedCacheDefaults, resolveCacheOptions } from './options.ts';

/** Per-call options of `cached()`; anything left out comes from the client's `cache` defaults. */
export interface CachedOptions extends CacheDefaults {
  /**
   * Tags this value depends on; `invalidateTag(tag)` makes it stale everywhere in O(1). Give the same
   * tags on every call for a key (they are checked on read).
   */
  tags?: string[];
  /** Use the in-process L1 for this key (when the client has one). @defaultValue true */
  l1?: boolean;
}

export type Loader<T> = () => T | Promise<T>;

export interface CacheAside {
  cached<T>(key: string, loader: Loader<T>, options?: CachedOptions): Promise<T>;
  invalidate(key: string): Promise<boolean>;
  invalidateTag(tag: string): Promise<number>;
}

interface CallOptions extends ResolvedCacheDefaults {
  tags: string[];
  useL1: boolean;
}

type Reply = (Buffer | string | number | null)[];

/** Events stream cap for tag events, the same as the daemon's default for view events. */
export const EVENTS_MAX_LEN = 10_000;
const MAX_KEY_LENGTH = 1024;

/** XFetch (Vattani et al.): reload early with a probability that rises as expiry nears and δ grows. */
export function shouldRefreshEarly(
  envelope: CacheEnvelope,
  beta: number,
  now: number,
  random = Math.random(),
): boolean {
  return beta > 0 && envelope.d > 0 && now - envelope.d * beta * Math.log(random) >= envelope.x;
}

/** `ttl` shortened by a random fraction up to `jitter` (never lengthened: a TTL stays an upper bound). */
export function jitteredTtl(ttl: number, jitter: number, random = Math.random()): number {
  return Math.max(1, Math.round(ttl * (1 - jitter * random)));
}

function checkName(what: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_LENGTH) {
    throw new ViewkeeperError(
      'E_BAD_PARAMS',
      `${what} must be a non-empty string of at most ${MAX_KEY_LENGTH} characters, got ${JSON.stringify(value)?.slice(0, 80)}`,
    );
  }
  return value;
}

function versionOf(raw: Buffer | string | number | null | undefined): number {
  return raw === null || raw === undefined ? 0 : Number(raw.toString());
}

/**
 * Cache-aside for anything that is not a view. One load per key per expiry across every process:
 * in-process callers share one promise; processes race for a Redis lock (random token, expiry,
 * renewed while the loader runs) and the losers wait for the winner's key event (or poll), so a
 * crashed holder blocks the others for at most one lock lifetime.
 */
export function createCacheAside(
  core: ClientCore,
  defaults: ResolvedCacheDefaults,
  store: CacheStore,
): CacheAside {
  const { keys, guard, l1, bus, stats } = core;
  /** Misses being loaded, by key: every local caller of a cold key shares one load. */
  const loading = new Map<string, Promise<unknown>>();
  /** Keys being reloaded in the background (early refresh, stale-while-revalidate). */
  const refreshing = new Set<string>();

  function callOptions(options: CachedOptions | undefined): CallOptions {
    const resolved = resolveCacheOptions(options, defaults, 'cached() ');
    const tags = [...new Set(options?.tags ?? [])].sort();
    for (const tag of tags) checkName('a tag', tag);
    return { ...resolved, tags, useL1: l1 !== undefined && options?.l1 !== false };
  }

  const groupsOf = (key: string, options: CallOptions) => [
    `c:${key}`,
    ...options.tags.map((tag) => `t:${tag}`),
  ];

  function tagsCurrent(envelope: CacheEnvelope, options: CallOptions, versions: Reply): boolean {
    return options.tags.every((tag, i) => envelope.g?.[tag] === versionOf(versions[i]));
  }

  function begin(key: string, options: CallOptions): L1Ticket | undefined {
    return options.useL1 && bus.subscribed ? l1!.begin(groupsOf(key, options)) : undefined;
  }

  function fill(key: string, envelope: CacheEnvelope, bytes: number, ticket: L1Ticket | undefined): void {
    if (!ticket) return;
    // Only while subscribed: a copy stored while events may be missed could never be invalidated.
    if (!bus.subscribed) {
      l1!.abandon(ticket);
      return;
    }
    const entry: L1Entry = {
      value: deepFreeze(envelope),
      bytes,
      groups: ticket.groups,
      freshUntil: Math.min(envelope.x, Date.now() + core.l1TtlMs),
      id: envelope.i,
    };
    l1!.fill(`c:${key}`, entry, ticket);
  }

  function release(ticket: L1Ticket | undefined): void {
    if (ticket) l1!.abandon(ticket);
  }

  /** Redis is unreachable: a stale copy within its window, else the loader (its value is not stored). */
  async function fallback<T>(key: string, loader: Loader<T>, options: CallOptions): Promise<T> {
    const local = options.useL1 ? l1!.get(`c:${key}`) : undefined;
    const envelope = local?.value as CacheEnvelope<T> | undefined;
    if (envelope && Date.now() < envelope.s) {
      stats.add('staleServed');
      return envelope.v;
    }
    stats.add('loaderCalls');
    return loader();
  }

  /**
   * Runs the loader as the lock holder (or, after waiting too long, without the lock), stores the
   * result and publishes the key event. Returns the value as every reader will see it (JSON).
   */
  async function runLoader<T>(
    key: string,
    loader: Loader<T>,
    options: CallOptions,
    token: string,
    versions: Reply,
    ticket: L1Ticket | undefined,
  ): Promise<T> {
    const renew = token
      ? setInterval(() => {
          guard.run(() => store.extend(key, token, options.lockTtlMs)).catch(() => {});
        }, options.lockTtlMs / 3)
      : undefined;
    renew?.unref();
    const started = performance.now();
    let value: T;
    try {
      stats.add('loaderCalls');
      value = await loader();
    } catch (error) {
      release(ticket);
      if (token) guard.run(() => store.release(key, token)).catch(() => {});
      throw error;
    } finally {
      clearInterval(renew);
    }
    const now = Date.now();
    const ttl = jitteredTtl(options.ttl, options.jitter);
    const envelope: CacheEnvelope<T> = {
      v: value,
      t: now,
      d: Math.max(1, Math.round(performance.now() - started)),
      x: now + ttl,
      s: now + ttl + options.staleWhileRevalidate,
      i: randomBytes(6).toString('base64url'),
    };
    if (options.tags.length > 0) {
      envelope.g = Object.fromEntries(options.tags.map((tag, i) => [tag, versionOf(versions[i])]));
    }
    const encoded = encodeEnvelope(envelope, options.compressAbove);
    // What readers will get: the JSON round trip (a Date becomes a string here too, not only on hits).
    const stored = decodeEnvelope<T>(encoded.buffer)!.envelope;
    if (ticket) ticket.id = stored.i;
    const event: CacheKeyEvent = { cacheKey: key, id: stored.i, at: new Date(now).toISOString() };
    try {
      const written = await guard.run(() =>
        store.write(key, token, encoded.buffer, Math.max(1, stored.s - now), JSON.stringify(event)),
      );
      if (written) fill(key, stored, encoded.bytes, ticket);
      else release(ticket);
    } catch (error) {
      release(ticket);
      if (!isUnavailable(error)) throw error;
      core.logger.debug({ key, reason: describeError(error) }, 'cached value not stored');
    }
    return stored.v;
  }

  /** A miss: load once across every process, waiting for whoever holds the lock. */
  async function loadOnce<T>(key: string, loader: Loader<T>, options: CallOptions): Promise<T> {
    const token = randomUUID();
    const deadline = Date.now() + options.lockWaitMs;
    const pollMs = Math.min(250, Math.max(10, options.lockTtlMs / 10));
    let versions: Reply = [];
    for (;;) {
      // Listen before asking, so the holder's key event cannot slip between the answer and the wait.
      const wake = bus.subscribed ? bus.waitForCacheKey(key, pollMs) : undefined;
      const ticket = begin(key, options);
      let reply: Awaited<ReturnType<CacheStore['acquire']>>;
      try {
        reply = await guard.run(() => store.acquire(key, options.tags, token, options.lockTtlMs));
      } catch (error) {
        wake?.cancel();
        release(ticket);
        if (isUnavailable(error) && !core.closed()) return fallback(key, loader, options);
        throw error;
      }
      const { acquired } = reply;
      versions = reply.versions;
      const decoded = decodeEnvelope<T>(reply.raw);
      if (decoded && tagsCurrent(decoded.envelope, options, versions) && Date.now() < decoded.envelope.x) {
        // Someone stored it between our read and now.
        wake?.cancel();
        if (acquired) guard.run(() => store.release(key, token)).catch(() => {});
        fill(key, decoded.envelope, decoded.bytes, ticket);
        return decoded.envelope.v;
      }
      if (acquired) {
        wake?.cancel();
        return runLoader(key, loader, options, token, versions, ticket);
      }
      release(ticket);
      if (Date.now() >= deadline) {
        wake?.cancel();
        break;
      }
      if (wake) await wake.promise;
      else await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    core.logger.warn(
      { key, waitedMs: options.lockWaitMs },
      'cached() waited too long for another process to load; loading without the lock',
    );
    return runLoader(key, loader, options, '', versions, begin(key, options));
  }

  /**
   * Reloads in the background if no other process is at it; callers keep the value they have. `seen`
   * is the entry that asked for it: when the lock is ours but the entry is already another one (a
   * reload that finished while the caller's read was in flight, here or elsewhere), nothing is loaded.
   */
  function refreshInBackground<T>(
    key: string,
    loader: Loader<T>,
    options: CallOptions,
    seen: CacheEnvelope,
  ): void {
    if (refreshing.has(key) || loading.has(key) || core.closed()) return;
    refreshing.add(key);
    const work = (async () => {
      const token = randomUUID();
      const ticket = begin(key, options);
      try {
        const reply = await guard.run(() => store.acquire(key, options.tags, token, options.lockTtlMs));
        if (!reply.acquired) {
          release(ticket);
          return;
        }
        const current = decodeEnvelope(reply.raw)?.envelope;
        if (current && current.i !== seen.i && tagsCurrent(current, options, reply.versions)) {
          release(ticket);
          guard.run(() => store.release(key, token)).catch(() => {});
          return;
        }
        await runLoader(key, loader, options, token, reply.versions, ticket);
      } catch (error) {
        release(ticket);
        core.logger.debug({ key, reason: describeError(error) }, 'background refresh failed');
      }
    })().finally(() => refreshing.delete(key));
    core.track(work);
  }

  return {
    async cached<T>(key: string, loader: Loader<T>, raw?: CachedOptions): Promise<T> {
      checkName('a cached() key', key);
      if (typeof loader !== 'function') {
        throw new ViewkeeperError('E_BAD_PARAMS', `cached(${JSON.stringify(key)}) needs a loader function`);
      }
      const options = callOptions(raw);
      core.hotKeys.record(keys.entry(key));
      if (options.useL1 && bus.subscribed) {
        const envelope = l1!.get(`c:${key}`) as L1Entry<CacheEnvelope<T>> | undefined;
        if (envelope && Date.now() < envelope.freshUntil) {
          stats.add('hits');
          stats.add('l1Hits');
          if (shouldRefreshEarly(envelope.value, options.beta, Date.now())) {
            refreshInBackground(key, loader, options, envelope.value);
          }
          return envelope.value.v;
        }
      }
      if (core.closed()) throw new ViewkeeperError('E_UNAVAILABLE', 'the viewkeeper client is closed');
      const ticket = begin(key, options);
      let read: Awaited<ReturnType<CacheStore['read']>>;
      try {
        read = await guard.run(() => store.read(key, options.tags));
      } catch (error) {
        release(ticket);
        if (isUnavailable(error) && !core.closed()) return fallback(key, loader, options);
        throw error;
      }
      const { versions } = read;
      const decoded = decodeEnvelope<T>(read.raw);
      if (decoded && tagsCurrent(decoded.envelope, options, versions)) {
        const { envelope } = decoded;
        const now = Date.now();
        if (now < envelope.x) {
          stats.add('hits');
          fill(key, envelope, decoded.bytes, ticket);
          if (shouldRefreshEarly(envelope, options.beta, now)) {
            refreshInBackground(key, loader, options, envelope);
          }
          return envelope.v;
        }
        if (now < envelope.s) {
          // Stale-while-revalidate: answer now, one process reloads.
          release(ticket);
          stats.add('staleServed');
          refreshInBackground(key, loader, options, envelope);
          return envelope.v;
        }
      }
      release(ticket);
      stats.add('misses');
      let flight = loading.get(key) as Promise<T> | undefined;
      if (!flight) {
        flight = loadOnce(key, loader, options).finally(() => loading.delete(key));
        loading.set(key, flight);
      }
      return flight;
    },

    async invalidate(key) {
      checkName('a cached() key', key);
      l1?.invalidate(`c:${key}`);
      const event: CacheKeyEvent = { cacheKey: key, at: new Date().toISOString() };
      return guard.run(() => store.invalidateKey(key, JSON.stringify(event)));
    },

    async invalidateTag(tag) {
      checkName('a tag', tag);
      l1?.invalidate(`t:${tag}`);
      return guard.run(() => store.invalidateTag(tag, new Date().toISOString()));
    },
  };
}
