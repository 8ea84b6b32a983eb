import type { CacheKeyEvent, InvalidationEvent, TagEvent, ViewEvent } from '../contract.ts';

/** Parses one message of `{prefix}:events`; anything else (foreign or malformed) is undefined. */
export function parseEvent(text: string): InvalidationEvent | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null) return undefined;
  const event = data as Record<string, unknown>;
  if (typeof event.view === 'string' && (event.keys === null || Array.isArray(event.keys))) {
    return event as unknown as ViewEvent;
  }
  if (typeof event.tag === 'string') return event as unknown as TagEvent;
  if (typeof event.cacheKey === 'string') return event as unknown as CacheKeyEvent;
  return undefined;
}

/**
 * What the bus needs of its subscriber connection: a standalone ioredis `Redis` is one as it is; on a
 * cluster it is cluster-subscriber.ts.
 */
export interface SubscriberConnection {
  readonly status: string;
  on(event: 'ready' | 'close', listener: () => void): unknown;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  subscribe(channel: string): Promise<unknown>;
  connect(): Promise<unknown>;
  disconnect(): void;
  quit(): Promise<unknown>;
}

export interface EventHandlers {
  view(event: ViewEvent): void;
  tag(event: TagEvent): void;
  cacheKey(event: CacheKeyEvent): void;
  /** The subscription was re-established after a loss: messages may have been missed. */
  resubscribed(): void;
}

export interface Waiter {
  /** Resolves with true when a matching event arrived, false after the timeout or on close. */
  promise: Promise<boolean>;
  cancel(): void;
}

export interface EventBus {
  /** Subscribed now: events are being received, so an in-process copy can be trusted. */
  readonly subscribed: boolean;
  /** Connects and subscribes if not yet done; resolves with whether it is subscribed within `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean>;
  /** Waits for an event of `view` covering `key` (`keys` null or containing it). Register before acting. */
  waitForView(view: string, key: string, timeoutMs: number): Waiter;
  /** Waits for a key event of the `cached()` key `key`. */
  waitForCacheKey(key: string, timeoutMs: number): Waiter;
  close(): Promise<void>;
}

interface Pending {
  matches(event: InvalidationEvent): boolean;
  resolve(matched: boolean): void;
}

/**
 * The client's one subscriber connection on `{prefix}:events`. It subscribes on every `ready` (after
 * a reconnect too) and reports a re-subscription, because Redis pub/sub does not replay what a
 * disconnected subscriber missed.
 */
export function createEventBus(
  subscriber: SubscriberConnection,
  channel: string,
  handlers: EventHandlers,
): EventBus {
  let subscribed = false;
  let everSubscribed = false;
  let closed = false;
  const pending = new Set<Pending>();
  const readyListeners = new Set<() => void>();

  subscriber.on('ready', () => {
    subscriber.subscribe(channel).then(
      () => {
        if (closed) return;
        subscribed = true;
        if (everSubscribed) handlers.resubscribed();
        everSubscribed = true;
        for (const listener of readyListeners) listener();
      },
      () => {
        // The connection dropped again before the SUBSCRIBE answered; the next 'ready' retries.
      },
    );
  });
  subscriber.on('close', () => {
    subscribed = false;
  });
  subscriber.on('message', (from: string, text: string) => {
    if (from !== channel) return;
    const event = parseEvent(text);
    if (!event) return;
    if ('view' in event) handlers.view(event);
    else if ('tag' in event) handlers.tag(event);
    else handlers.cacheKey(event);
    for (const waiter of pending) if (waiter.matches(event)) waiter.resolve(true);
  });

  function wait(matches: (event: InvalidationEvent) => boolean, timeoutMs: number): Waiter {
    let waiter!: Pending;
    let timer: NodeJS.Timeout | undefined;
    const promise = new Promise<boolean>((resolve) => {
      waiter = {
        matches,
        resolve(matched) {
          clearTimeout(timer);
          pending.delete(waiter);
          resolve(matched);
        },
      };
    });
    if (closed) waiter.resolve(false);
    else {
      pending.add(waiter);
      timer = setTimeout(() => waiter.resolve(false), timeoutMs);
    }
    return { promise, cancel: () => waiter.resolve(false) };
  }

  return {
    get subscribed() {
      return subscribed;
    },

    async ready(timeoutMs) {
      if (subscribed) return true;
      if (closed) return false;
      if (subscriber.status === 'wait') subscriber.connect().catch(() => {});
      let listener: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;
      try {
        return await new Promise<boolean>((resolve) => {
          listener = () => resolve(true);
          readyListeners.add(listener);
          timer = setTimeout(() => resolve(subscribed), timeoutMs);
        });
      } finally {
        if (listener) readyListeners.delete(listener);
        clearTimeout(timer);
      }
    },

    waitForView(view, key, timeoutMs) {
      return wait(
        (event) =>
          'view' in event && event.view === view && (event.keys === null || event.keys.includes(key)),
        timeoutMs,
      );
    },

    waitForCacheKey(key, timeoutMs) {
      return wait((event) => 'cacheKey' in event && event.cacheKey === key, timeoutMs);
    },

    async close() {
      if (closed) return;
      closed = true;
      subscribed = false;
      for (const waiter of [...pending]) waiter.resolve(false);
      if (subscriber.status === 'end') return;
      if (subscriber.status !== 'ready') {
        subscriber.disconnect();
        return;
      }
      await subscriber.quit().catch(() => subscriber.disconnect());
    },
  };
}
