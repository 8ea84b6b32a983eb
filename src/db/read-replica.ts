import { setTimeout as sleep } from 'node:timers/promises';
import { type Kysely, sql } from 'kysely';
import { describeError, ViewkeeperError } from '../errors.ts';
import type { DbHandle } from './create-db.ts';

// A streaming (physical) standby of the primary, for view queries that may read it. Two questions
// only Postgres can answer: has the standby replayed everything the primary had written at a given
// moment (catchUp), and how far behind is it now (status). Which runs ask is decided elsewhere
// (views/read-route.ts).

/** What `status --json`, `/status` and the status page say about the standby. */
export interface ReplicaStatus {
  /**
   * `streaming`: answering and replaying; `paused`: replay paused (`pg_wal_replay_pause()`);
   * `not a standby`: answering but not in recovery (promoted, or DATABASE_READ_URL names a primary);
   * `unreachable`: not answering.
   */
  state: 'streaming' | 'paused' | 'not a standby' | 'unreachable';
  /** WAL bytes the primary has written that the standby has not replayed; null when unknown. */
  lag_bytes: number | null;
  /**
   * Seconds since the last replayed commit when replay is behind what the standby received, else 0
   * (the usual measure: an idle primary is not lag); null when unknown.
   */
  lag_s: number | null;
  /** Why the state is `unreachable` or `not a standby`, one line. */
  reason: string | null;
}

export interface ReadReplica {
  // biome-ignore lint/suspicious/noExplicitAny: views bring their own database types
  db: Kysely<any>;
  /**
   * Waits until the standby has replayed the WAL the primary had written when this was called, at
   * most `maxWaitMs`. Resolves `undefined` once it has, or a one-line reason it has not (behind,
   * paused, unreachable, not a standby). Rejects only when the primary does not answer.
   */
  catchUp(maxWaitMs: number, signal?: AbortSignal): Promise<string | undefined>;
  status(): Promise<ReplicaStatus>;
  /** Rejects when the standby cannot serve full rebuilds (unreachable, or not a standby). */
  healthy(): Promise<void>;
  /** Fails with `E_CONNECT` naming DATABASE_READ_URL's host when the standby does not answer. */
  ping(): Promise<void>;
  /** Ends the standby's pool (the primary's belongs to its creator); idempotent. */
  close(): Promise<void>;
}

export interface ReadReplicaOptions {
  // biome-ignore lint/suspicious/noExplicitAny: any database
  primary: Kysely<any>;
  // biome-ignore lint/suspicious/noExplicitAny: any database
  replica: DbHandle<any>;
  /** How often catchUp() looks again. @defaultValue 25 */
  pollMs?: number;
}

interface ReplayRow {
  standby: boolean;
  replayed: boolean | null;
  paused: boolean | null;
  behind: string | null;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * The primary's WAL write position: every commit it has acknowledged with `synchronous_commit` on
 * ends at or before it (one made with it off may wait for the WAL writer, ~200 ms, to get there).
 */
async function primaryPosition(primary: Kysely<unknown>): Promise<string> {
  const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(primary);
  return rows[0]!.lsn;
}

/**
 * Wraps a standby's "canceling statement due to conflict with recovery" (SQLSTATE 40001, or 40P01
 * for a buffer-pin deadlock) in a one-line error that names the settings that prevent it; the cause
 * keeps the SQLSTATE, so it is retried like any serialization failure. Other errors are returned as
 * they are.
 */
export function explainReplicaError(error: unknown, what: string): unknown {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (
    (code === '40001' || code === '40P01') &&
    typeof message === 'string' &&
    /conflict with recovery/i.test(message)
  ) {
    return new ViewkeeperError(
      'E_REPLICA_CONFLICT',
      `${what}: the standby (DATABASE_READ_URL) cancelled the query (${describeError(error)}); it is retried — to stop it, set hot_standby_feedback = on on the standby or raise its max_standby_streaming_delay above the query's duration`,
      { cause: error },
    );
  }
  return error;
}

export function createReadReplica(options: ReadReplicaOptions): ReadReplica {
  const { primary, replica } = options;
  const pollMs = options.pollMs ?? 25;

  // pg_is_wal_replay_paused() raises outside recovery, hence the case.
  const replay = (target: string) =>
    sql<ReplayRow>`
    select pg_is_in_recovery() as standby,
      pg_last_wal_replay_lsn() >= ${target}::pg_lsn as replayed,
      case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused,
      pg_wal_lsn_diff(${target}::pg_lsn, pg_last_wal_replay_lsn())::text as behind`.execute(replica.db);

  return {
    db: replica.db,

    async catchUp(maxWaitMs, signal) {
      const target = await primaryPosition(primary);
      const deadline = Date.now() + maxWaitMs;
      for (;;) {
        let row: ReplayRow;
        try {
          row = (await replay(target)).rows[0]!;
        } catch (error) {
          return `unreachable (${describeError(error)})`;
        }
        if (!row.standby) return 'not a standby (pg_is_in_recovery() is false)';
        if (row.replayed) return undefined;
        const left = deadline - Date.now();
        if (left <= 0 || signal?.aborted) {
          const behind = formatBytes(Math.max(0, Number(row.behind ?? 0)));
          return `${behind} behind the primary after ${maxWaitMs} ms${row.paused ? ' (replay is paused)' : ''}`;
        }
        await sleep(Math.min(pollMs, left), undefined, { signal }).catch(() => undefined);
      }
    },

    status,

    async healthy() {
      const { state, reason } = await status();
      if (state === 'unreachable' || state === 'not a standby') throw new Error(reason ?? state);
    },

    ping: () => replica.ping(),
    close: () => replica.close(),
  };

  async function status(): Promise<ReplicaStatus> {
    try {
      const target = await primaryPosition(primary).catch(() => null);
      const { rows } = await sql<{
        standby: boolean;
        paused: boolean | null;
        behind: string | null;
        lag_s: number | null;
      }>`
          select pg_is_in_recovery() as standby,
            case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused,
            pg_wal_lsn_diff(${target}::pg_lsn, pg_last_wal_replay_lsn())::text as behind,
            case when pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() then 0
              else extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 end as lag_s`.execute(
        replica.db,
      );
      const row = rows[0]!;
      if (!row.standby) {
        return {
          state: 'not a standby',
          lag_bytes: null,
          lag_s: null,
          reason: 'pg_is_in_recovery() is false: full rebuilds read the primary',
        };
      }
      return {
        state: row.paused ? 'paused' : 'streaming',
        lag_bytes: row.behind === null ? null : Math.max(0, Number(row.behind)),
        lag_s: row.lag_s === null ? null : Math.round(row.lag_s * 10) / 10,
        reason: null,
      };
    } catch (error) {
      return { state: 'unreachable', lag_bytes: null, lag_s: null, reason: describeError(error) };
    }
  }
}
