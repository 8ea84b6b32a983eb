import pg from 'pg';
import { describeError } from '../errors.ts';
import { backoffMs } from '../lib/transient.ts';
import type { Logger } from '../logging/create-logger.ts';

// A LISTEN connection of its own (a pooled client would be handed to queries and lose its LISTEN).
// Whatever ends it — a restart, pg_terminate_backend, a network cut — it reconnects with backoff and
// LISTENs again, then calls onConnect: notifications sent while it was away are lost, so the owner
// must look for work at that moment (the drainer drains; its poll covers anything else).

export interface ListenerOptions {
  databaseUrl: string;
  channel: string;
  /** Called for every notification on the channel. */
  onNotify: () => void;
  /** Called after every (re)connection once LISTEN is in place. */
  onConnect: () => void;
  logger: Logger;
  /** `application_name` in pg_stat_activity. @defaultValue `viewkeeper-listen` */
  applicationName?: string;
}

export interface Listener {
  /** Connects and LISTENs; resolves once listening, or keeps retrying in the background on failure. */
  start(): Promise<void>;
  /** Whether the connection is up and LISTENing now. */
  listening(): boolean;
  /** Closes the connection and stops reconnecting. Idempotent. */
  close(): Promise<void>;
}

export function createListener(options: ListenerOptions): Listener {
  const logger = options.logger.child({ component: 'capture-listen' });
  let client: pg.Client | undefined;
  let up = false;
  let closed = false;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;

  function scheduleReconnect(reason: string): void {
    up = false;
    if (closed || retry) return;
    attempt += 1;
    const delay = Math.min(10_000, backoffMs(attempt));
    logger.warn({ reason, retryInMs: delay, attempt }, 'capture listen connection lost, reconnecting');
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, delay);
    retry.unref();
  }

  async function connect(): Promise<void> {
    if (closed) return;
    const next = new pg.Client({
      connectionString: options.databaseUrl,
      application_name: options.applicationName ?? 'viewkeeper-listen',
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    });
    // Without an 'error' listener a dropped connection would crash the process.
    next.on('error', (error) => {
      if (client === next) scheduleReconnect(describeError(error));
    });
    next.on('end', () => {
      if (client === next) scheduleReconnect('connection ended');
    });
    next.on('notification', (message) => {
      if (message.channel === options.channel) options.onNotify();
    });
    client = next;
    try {
      await next.connect();
      await next.query(`listen ${pg.escapeIdentifier(options.channel)}`);
      if (closed) {
        await next.end().catch(() => undefined);
        return;
      }
      if (attempt > 0) logger.info({ attempts: attempt }, 'capture listen connection back');
      attempt = 0;
      up = true;
      options.onConnect();
    } catch (error) {
      next.end().catch(() => undefined);
      if (client === next) scheduleReconnect(describeError(error));
    }
  }

  return {
    start: connect,
    listening: () => up,
    close() {
      closing ??= (async () => {
        closed = true;
        up = false;
        clearTimeout(retry);
        const last = client;
        client = undefined;
        await last?.end().catch(() => undefined);
      })();
      return closing;
    },
  };
}
