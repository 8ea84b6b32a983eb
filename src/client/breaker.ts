export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** How long the breaker stays open before one probe is let through. */
  cooldownMs: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

export interface Breaker {
  /**
   * Whether a call may go to Redis now. While open: no, until the cool-down has passed; then exactly
   * one caller gets `true` (the probe) and the others keep failing fast until it reports.
   */
  allow(): boolean;
  success(): void;
  failure(): void;
  state(): BreakerState;
}

/**
 * A consecutive-failure circuit breaker. Closed: every call goes through; `failureThreshold`
 * failures in a row open it. Open: calls fail fast without touching Redis. After `cooldownMs`, one
 * probe call is allowed (half-open); its success closes the breaker, its failure re-opens it for
 * another cool-down.
 */
export function createBreaker(options: BreakerOptions): Breaker {
  const now = options.now ?? Date.now;
  let state: BreakerState = 'closed';
  let failures = 0;
  let openedAt = 0;
  let probing = false;

  function open(): void {
    state = 'open';
    openedAt = now();
    probing = false;
  }

  return {
    allow() {
      if (state === 'closed') return true;
      if (state === 'open' && now() - openedAt >= options.cooldownMs) {
        state = 'half-open';
        probing = false;
      }
      if (state === 'half-open' && !probing) {
        probing = true;
        return true;
      }
      return false;
    },
    success() {
      failures = 0;
      state = 'closed';
      probing = false;
    },
    failure() {
      failures += 1;
      if (state === 'half-open' || failures >= options.failureThreshold) open();
    },
    state() {
      if (state === 'open' && now() - openedAt >= options.cooldownMs) return 'half-open';
      return state;
    },
  };
}
