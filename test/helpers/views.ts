import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { seedDemo } from '../../demo/seed.ts';
import type { DbHandle } from '../../src/db/create-db.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { toRedisString } from '../../src/redis/codec.ts';
import type { RedisConnection } from '../../src/redis/connections.ts';
import { runKeys } from '../../src/redis/keys.ts';
import { scanKeys as scanEveryMaster } from '../../src/redis/scan.ts';
import type { StreamableQuery, ViewDefinition } from '../../src/views/define-view.ts';
import { refreshIdentity } from '../../src/views/params.ts';
import {
  createRefreshEngine,
  type RefreshEngine,
  type RefreshEngineOptions,
} from '../../src/views/refresh-engine.ts';
import { loadRegistry, type Registry } from '../../src/views/registry.ts';
import { indexKeysOf } from '../../src/views/writers/view-slots.ts';
import type { TestContext } from './context.ts';

type Row = Record<string, unknown>;

export const JOBS_DIR = fileURLToPath(new URL('../../demo/jobs/', import.meta.url));
export const DEMO_VIEWS = ['user', 'user_stats', 'post_votes', 'trending', 'trending_posts'] as const;
export type DemoView = (typeof DEMO_VIEWS)[number];

/**
 * What a view's Redis content is, normalised for `toEqual`: per-row views as key → fields (hash) or
 * key → string (value); zset as member → score; json as the parsed array (null when the key is missing).
 */
export type ViewContent =
  | { shape: 'hash'; keys: Record<string, Record<string, string>> }
  | { shape: 'value'; keys: Record<string, string> }
  | { shape: 'zset'; members: Record<string, number> }
  | { shape: 'json'; value: unknown }
  | { shape: 'list' | 'set'; keys: Record<string, string[]> };

/** Demo views with coalescing off (tests call refresh back to back). */
export async function loadDemoViews(): Promise<Record<DemoView, ViewDefinition>> {
  const registry: Registry = await loadRegistry(path.resolve(JOBS_DIR));
  const out = {} as Record<DemoView, ViewDefinition>;
  for (const name of DEMO_VIEWS) {
    const view = registry.view(name);
    if (!view) throw new Error(`demo view ${name} is missing from ${JOBS_DIR}`);
    out[name] = { ...view, coalesceMs: 0 };
  }
  return out;
}

/** Every view demo/jobs defines, sorted: what `status` and the status page list. */
export async function demoViewNames(): Promise<string[]> {
  return [...(await loadRegistry(path.resolve(JOBS_DIR))).views.keys()].sort();
}

export function createEngine(ctx: TestContext, options: Partial<RefreshEngineOptions> = {}): RefreshEngine {
  return createRefreshEngine({
    db: ctx.db.db,
    redis: ctx.redis,
    prefix: ctx.prefix,
    logger: silentLogger(),
    ...options,
  });
}

/**
 * Seeds the small demo data set, then moves votes lying within a few minutes of the 24 h boundary out of
 * the window, so trending / trending_posts cannot change just because the clock moved during a test.
 */
export async function seedSmall(db: DbHandle, seed = 1): Promise<void> {
  await seedDemo(db, { users: 200, postsPerUser: 3, votesPerPost: 5, seed });
  await sql`update votes set created_at = created_at - interval '20 minutes'
            where created_at > now() - interval '24 hours 5 minutes'
              and created_at <= now() - interval '23 hours 45 minutes'`.execute(db.db);
}

/** The column stored by a `value` view, or the fields of a `hash` view, resolved as the engine does. */
function storedColumns(view: ViewDefinition, row: Row): string[] {
  const rest = Object.keys(row).filter((column) => !view.key.columns.includes(column));
  if (view.shape === 'hash') return view.fields ?? rest;
  return [view.value ?? rest[0]!];
}

/** Runs the view's own query (full, or narrowed by params) and maps its rows as the engine writes them. */
export async function queryRows(db: DbHandle, view: ViewDefinition, params?: Row): Promise<Row[]> {
  // biome-ignore lint/suspicious/noExplicitAny: the demo queries are Kysely builders
  const rows = (await (view.query(db.db, params) as any).execute()) as Row[];
  return view.map ? rows.map(view.map) : rows;
}

/** What Redis should hold for `view` given the database as it is now. */
export async function expectedContent(db: DbHandle, view: ViewDefinition): Promise<ViewContent> {
  const rows = await queryRows(db, view);
  switch (view.shape) {
    case 'hash': {
      const keys: Record<string, Record<string, string>> = {};
      for (const row of rows) {
        const fields: Record<string, string> = {};
        for (const field of storedColumns(view, row)) fields[field] = toRedisString(row[field]);
        keys[view.key.fill(row)] = fields;
      }
      return { shape: 'hash', keys };
    }
    case 'value': {
      const keys: Record<string, string> = {};
      for (const row of rows) keys[view.key.fill(row)] = toRedisString(row[storedColumns(view, row)[0]!]);
      return { shape: 'value', keys };
    }
    case 'zset': {
      const members: Record<string, number> = {};
      for (const row of rows) members[view.member!.fill(row)] = Number(row[view.score!]);
      return { shape: 'zset', members };
    }
    case 'json':
      return { shape: 'json', value: JSON.parse(JSON.stringify(rows)) };
    case 'list':
    case 'set':
      // Their tests compare with an oracle of their own, in plain SQL (test/integration/group-views.test.ts).
      throw new Error(`expectedContent does not derive ${view.shape} views from their query`);
  }
}

/** `user_stats:{user_id}` → `user_stats:*`. */
export function keyPattern(view: ViewDefinition): string {
  return view.key.source.replace(/\{[A-Za-z_][A-Za-z0-9_]*\}/g, '*');
}

export async function scanKeys(redis: RedisConnection, pattern: string): Promise<string[]> {
  const found = new Set<string>();
  for await (const keys of scanEveryMaster(redis, pattern, 1000)) for (const key of keys) found.add(key);
  return [...found].sort();
}

/** Keys recorded in a per-row view's key index (tombstones of deleted rows included; every slot's on a cluster). */
export async function indexedKeys(
  redis: RedisConnection,
  prefix: string,
  view: ViewDefinition,
): Promise<string[]> {
  const found: string[] = [];
  for (const index of await indexKeysOf(redis, prefix, view.name, 'keyIndex')) {
    found.push(...(await redis.zrange(index, '0', '-1')));
  }
  return found;
}

/**
 * What Redis holds for `view`. Per-row views read every key found through the key index AND through a
 * SCAN of the key pattern, so a key the index forgot (or a leftover of a vanished row) shows up.
 */
export async function actualContent(
  redis: RedisConnection,
  prefix: string,
  view: ViewDefinition,
): Promise<ViewContent> {
  switch (view.shape) {
    case 'hash':
    case 'value': {
      const candidates = new Set([
        ...(await indexedKeys(redis, prefix, view)),
        ...(await scanKeys(redis, keyPattern(view))),
      ]);
      const hashes: Record<string, Record<string, string>> = {};
      const values: Record<string, string> = {};
      for (const key of [...candidates].sort()) {
        if (view.shape === 'hash') {
          const fields = await redis.hgetall(key);
          if (Object.keys(fields).length > 0) hashes[key] = fields;
        } else {
          const value = await redis.get(key);
          if (value !== null) values[key] = value;
        }
      }
      return view.shape === 'hash' ? { shape: 'hash', keys: hashes } : { shape: 'value', keys: values };
    }
    case 'zset': {
      const flat = await redis.zrange(view.key.fill({}), '0', '-1', 'WITHSCORES');
      const members: Record<string, number> = {};
      for (let i = 0; i < flat.length; i += 2) members[flat[i]!] = Number(flat[i + 1]);
      return { shape: 'zset', members };
    }
    case 'json': {
      const text = await redis.get(view.key.fill({}));
      return { shape: 'json', value: text === null ? null : JSON.parse(text) };
    }
    case 'list':
    case 'set': {
      const candidates = new Set([
        ...(await indexedKeys(redis, prefix, view)),
        ...(await scanKeys(redis, keyPattern(view))),
      ]);
      const keys: Record<string, string[]> = {};
      for (const key of [...candidates].sort()) {
        const items =
          view.shape === 'list' ? await redis.lrange(key, 0, -1) : (await redis.smembers(key)).sort();
        if (items.length > 0) keys[key] = items;
      }
      return { shape: view.shape, keys };
    }
  }
}

/** Every data key of the view currently in Redis (per-row: SCAN of the pattern; others: the one key). */
export async function dataKeys(redis: RedisConnection, view: ViewDefinition): Promise<string[]> {
  if (view.key.columns.length > 0) return scanKeys(redis, keyPattern(view));
  const key = view.key.fill({});
  return (await redis.exists(key)) ? [key] : [];
}

/** Deletes the coalescing window of (view, params) so the next run is not refused as 'coalescing'. */
export async function openWindow(
  redis: RedisConnection,
  prefix: string,
  view: ViewDefinition,
  params?: Row,
): Promise<void> {
  await redis.del(runKeys(prefix, refreshIdentity(view.name, params)).window);
}

export interface Gate {
  /** Resolves once the query has read its first rows (its snapshot is taken) and is waiting. */
  paused: Promise<void>;
  /** Lets the query go on. */
  release(): void;
}

/**
 * A copy of `view` whose query reads its first row from Postgres (so the statement's snapshot is taken)
 * and then waits for `release()` before handing any row to the engine: a run made slow at the worst
 * moment for the guarantees.
 */
export function gatedView(view: ViewDefinition): { view: ViewDefinition; gate: Gate } {
  let release!: () => void;
  let markPaused!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const paused = new Promise<void>((resolve) => {
    markPaused = resolve;
  });
  const query: ViewDefinition['query'] = (db, params) => {
    const inner = view.query(db, params);
    const gated: StreamableQuery<Row> = {
      async *stream(options) {
        const rows = inner.stream(options);
        try {
          const first = await rows.next();
          markPaused();
          await released;
          if (first.done) return;
          yield first.value;
          yield* rows;
        } finally {
          await rows.return?.(); // ends the cursor (releases its connection) when the consumer stops early
        }
      },
    };
    return gated;
  };
  return { view: { ...view, query }, gate: { paused, release } };
}
