import { isViewkeeperError } from '../errors.ts';
import type { clientKeys } from '../redis/keys.ts';
import type { Guard } from './connection.ts';
import type { EventBus } from './events.ts';
import type { HotKeys } from './hot-keys.ts';
import type { L1Cache } from './l1-cache.ts';
import type { ClientLogger } from './options.ts';
import type { ClientScripts } from './scripts.ts';
import type { StatsRecorder } from './stats.ts';

/** What the client's parts share: connections behind the guard, the L1, the event bus, the counters. */
export interface ClientCore {
  prefix: string;
  /** `{prefix}:events`: the channel and the stream. */
  channel: string;
  keys: ReturnType<typeof clientKeys>;
  guard: Guard;
  scripts: ClientScripts;
  l1: L1Cache | undefined;
  /** How long an L1 copy is served without asking Redis (ms). */
  l1TtlMs: number;
  bus: EventBus;
  stats: StatsRecorder;
  /** Sampled reads, for the daemon's hot-key list. */
  hotKeys: HotKeys;
  logger: ClientLogger;
  closed(): boolean;
  /** Keeps track of background work (early refreshes) so `close()` can wait for it briefly. */
  track(work: Promise<unknown>): void;
}

/** Redis is down, slow or the breaker is open: the caller should fall back. */
export function isUnavailable(error: unknown): boolean {
  return isViewkeeperError(error, 'E_UNAVAILABLE');
}

/**
 * Freezes a value stored in the L1 (and its nested objects): the same object is returned to every
 * caller, so a mutation would silently change what the others read. Frozen, it throws instead.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
