import type { Kysely } from 'kysely';
import { type OutboxStats, outboxStats } from '../db/capture-outbox.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { captureKeys } from '../redis/keys.ts';
import { captureProblems } from './install.ts';
import type { CapturedTable } from './tables.ts';
import { installedCaptures, isCurrent } from './triggers.ts';

/** What `capture status` (and the capture part of `status`) reports. */
export interface CaptureStatus {
  tables: { table: string; columns: string[]; views: string[]; installed: boolean }[];
  /** One line each: tables missing, renamed, or with missing or outdated triggers. */
  problems: string[];
  outbox: OutboxStats;
  /** Rows drained by all daemons in the last 5 minutes, and that as rows per second. */
  drained: { last5min: number; perSecond: number };
}

const WINDOW_MINUTES = 5;

/** Rows drained over the last five minutes (the current minute counted as far as it has gone). */
export async function drainRate(redis: RedisConnection, prefix: string): Promise<CaptureStatus['drained']> {
  const keys = captureKeys(prefix);
  const now = Date.now();
  const minute = Math.floor(now / 60_000);
  const minutes = Array.from({ length: WINDOW_MINUTES }, (_, i) => keys.drained(minute - i));
  const counts = await redis.mget(...minutes);
  const total = counts.reduce((sum, value) => sum + Number(value ?? 0), 0);
  const seconds = (WINDOW_MINUTES - 1) * 60 + (now % 60_000) / 1000;
  return { last5min: total, perSecond: Math.round((total / seconds) * 10) / 10 };
}

export async function captureStatus(
  // biome-ignore lint/suspicious/noExplicitAny: the user's database of any type
  db: Kysely<any>,
  redis: RedisConnection,
  prefix: string,
  tables: Map<string, CapturedTable>,
): Promise<CaptureStatus> {
  const installed = await installedCaptures(db);
  return {
    tables: [...tables.values()].map((table) => ({
      table: table.table,
      columns: table.columns,
      views: [...new Set(table.rules.map(({ view }) => view.name))],
      installed: isCurrent(
        installed.find((entry) => entry.declared === table.table && entry.sameRelation),
        table,
      ),
    })),
    problems: await captureProblems(db, tables),
    outbox: await outboxStats(db),
    drained: await drainRate(redis, prefix),
  };
}
