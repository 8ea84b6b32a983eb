import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import { eventsKey, runKeys, viewKeys } from '../redis/keys.ts';
import { loadScripts, type Scripts } from '../redis/scripts.ts';
import { createJsonWriter } from '../redis/writers/json-writer.ts';
import { createRowWriter } from '../redis/writers/row-writer.ts';
import type { RunScope, ShapeWriter, WriterContext } from '../redis/writers/shape-writer.ts';
import { createZsetWriter } from '../redis/writers/zset-writer.ts';
import type { ViewDefinition } from './define-view.ts';
import { refreshIdentity } from './params.ts';

export interface RefreshEngineOptions {
  // biome-ignore lint/suspicious/noExplicitAny: views bring their own database types
  db: Kysely<any>;
  /** The views Redis (not the queue Redis). */
  redis: Redis;
  prefix: string;
  logger: Logger;
  /** Rows fetched from the Postgres cursor per round trip. @defaultValue 2000 */
  chunkSize?: number;
  /** Lock lifetime; renewed every third of it while a run lasts. @defaultValue 30000 */
  lockTtlMs?: number;
  /** Approximate length the events stream is capped at. @defaultValue 10000 */
  eventsMaxLen?: number;
}

export type RefreshOutcome =
  | {
      status: 'done';
      view: string;
      kind: RunScope['kind'];
      rows: number;
      keys: string[] | null;
      version: number;
      ms: number;
      superseded: boolean;
    }
  /** Another run of the same (view, params) holds the lock, or its coalescing window is open. */
  | { status: 'busy'; reason: 'locked' | 'coalescing'; retryInMs: number };

export interface RefreshEngine {
  /**
   * Runs one refresh of `view`: full when `params` is undefined, else partial (params already
   * validated). Never runs concurrently with another run of the same (view, params), anywhere.
   */
  refresh(
    view: ViewDefinition,
    params?: Record<string, unknown>,
    options?: { signal?: AbortSignal },
  ): Promise<RefreshOutcome>;
}

export const ENGINE_DEFAULTS = { chunkSize: 2000, lockTtlMs: 30_000, eventsMaxLen: 10_000 } as const;

function createWriter(ctx: WriterContext): ShapeWriter {
  switch (ctx.view.shape) {
    case 'hash':
    case 'value':
      return createRowWriter(ctx);
    case 'zset':
      return createZsetWriter(ctx);
    case 'json':
      return createJsonWriter(ctx);
  }
}

/**
 * The refresh engine: trigger-agnostic (queue jobs, cron, write-behind all call `refresh`). One run:
 * acquire the (view, params) lock and a sequence number → stream the query from Postgres through a
 * cursor → write Redis in batches while the stream continues → sweep or swap → metadata, event,
 * coalescing window and lock release in one script.
 */
export function createRefreshEngine(options: RefreshEngineOptions): RefreshEngine {
  const { db, redis, prefix } = options;
  const scripts: Scripts = loadScripts(redis);
  const chunkSize = options.chunkSize ?? ENGINE_DEFAULTS.chunkSize;
  const lockTtlMs = options.lockTtlMs ?? ENGINE_DEFAULTS.lockTtlMs;
  const eventsMaxLen = options.eventsMaxLen ?? ENGINE_DEFAULTS.eventsMaxLen;
  const logger = options.logger.child({ component: 'refresh' });

  return {
    async refresh(view, params, runOptions = {}) {
      const scope: RunScope = params ? { kind: 'partial', params } : { kind: 'full' };
      const identity = refreshIdentity(view.name, params);
      const keys = viewKeys(prefix, view.name);
      const run = runKeys(prefix, identity);
      const token = randomUUID();
      const [state, value] = await scripts.run<[number, number]>(
        'vkAcquireRun',
        [keys.meta, run.lock, run.window],
        [token, lockTtlMs],
      );
      if (state !== 0) {
        return {
          status: 'busy',
          reason: state === 1 ? 'locked' : 'coalescing',
          retryInMs: Math.max(10, value),
        };
      }
      const seq = value;
      const started = performance.now();
      const renew = setInterval(() => {
        scripts.run('vkExtendLock', [run.lock], [token, lockTtlMs]).catch(() => undefined);
      }, lockTtlMs / 3);
      renew.unref();
      const writer = createWriter({ redis, scripts, prefix, view, scope, seq });
      try {
        const query = view.query(db, params);
        for await (const raw of query.stream({ chunkSize, signal: runOptions.signal })) {
          const pending = writer.add(view.map ? view.map(raw) : raw);
          if (pending) await pending;
        }
        const summary = await writer.finish();
        const ms = Math.round(performance.now() - started);
        const version = await scripts.run<number>(
          'vkFinishRun',
          [keys.meta, run.lock, run.window, eventsKey(prefix)],
          [
            token,
            view.coalesceMs,
            eventsKey(prefix),
            new Date().toISOString(),
            ms,
            scope.kind === 'full' ? summary.rows : '',
            summary.changedKeys === null ? 'null' : JSON.stringify(summary.changedKeys),
            view.name,
            eventsMaxLen,
            scope.kind,
          ],
        );
        logger.info(
          {
            view: view.name,
            params,
            rows: summary.rows,
            ms,
            version,
            superseded: summary.superseded || undefined,
          },
          'refreshed',
        );
        return {
          status: 'done',
          view: view.name,
          kind: scope.kind,
          rows: summary.rows,
          keys: summary.changedKeys,
          version,
          ms,
          superseded: summary.superseded,
        };
      } catch (error) {
        await writer.abort().catch(() => undefined);
        await scripts
          .run(
            'vkFailRun',
            [keys.meta, run.lock],
            [token, describeError(error).slice(0, 500), new Date().toISOString()],
          )
          .catch(() => undefined);
        throw error;
      } finally {
        clearInterval(renew);
      }
    },
  };
}
