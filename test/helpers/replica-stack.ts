import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { migrateDemo } from '../../demo/migrate.ts';
import type { Database } from '../../demo/schema.ts';
import { createDb, type DbHandle } from '../../src/db/create-db.ts';
import { createReadReplica, type ReadReplica } from '../../src/db/read-replica.ts';
import type { ViewkeeperDatabase } from '../../src/db/schema.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { type PrivatePostgres, type PrivateStandby, startPrivatePostgres } from './postgres-server.ts';
import { startThrowawayRedis } from './redis-server.ts';
import { seedSmall } from './views.ts';

export type ReplicaDb = DbHandle<Database & ViewkeeperDatabase>;

/** A private primary with the demo schema and small seed, its streaming standby, and a private Redis. */
export interface ReplicaStack {
  primary: PrivatePostgres;
  standby: PrivateStandby;
  /** `…/viewkeeper` on the primary and on the standby. */
  databaseUrl: string;
  readUrl: string;
  redisUrl: string;
  db: ReplicaDb;
  onStandby: ReplicaDb;
  /** The views Redis. */
  views: Redis;
  /** viewkeeper's own view of the pair, as the daemon builds it. */
  replica: ReadReplica;
  /** True once the standby has replayed what the primary had written (waits up to 10 s). */
  caughtUp(): Promise<boolean>;
  pauseReplay(): Promise<unknown>;
  resumeReplay(): Promise<unknown>;
  /** Stops everything it started, last first; also what a failed start had started. */
  stop(): Promise<void>;
}

export async function startReplicaStack(password: string): Promise<ReplicaStack> {
  const started: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    while (started.length > 0) await started.pop()!().catch(() => undefined);
  };
  try {
    const primary = await startPrivatePostgres({ password, settings: { max_connections: '60' } });
    started.push(() => primary.stop());
    const databaseUrl = primary.url.replace(/\/postgres$/, '/viewkeeper');
    await migrateDemo(databaseUrl);
    const db: ReplicaDb = createDb(databaseUrl, { max: 4 });
    started.push(() => db.close());
    await seedSmall(db);
    // Taken after the demo database exists: the base backup carries it.
    const standby = await primary.startStandby();
    started.push(() => standby.stop());
    const readUrl = standby.url.replace(/\/postgres$/, '/viewkeeper');
    const onStandby: ReplicaDb = createDb(readUrl, { max: 2, variable: 'DATABASE_READ_URL' });
    started.push(() => onStandby.close());
    const replica = createReadReplica({ primary: db.db, replica: createDb(readUrl, { max: 4 }) });
    started.push(() => replica.close());
    const redis = await startThrowawayRedis();
    started.push(() => redis.kill());
    const redisUrl = `redis://127.0.0.1:${redis.port}/0`;
    const views = createRedis(redisUrl, { role: 'views', name: 'test-views' });
    started.push(() => closeRedis(views));
    await connectRedis(views, redisUrl, 'REDIS_URL');
    return {
      primary,
      standby,
      databaseUrl,
      readUrl,
      redisUrl,
      db,
      onStandby,
      views,
      replica,
      caughtUp: async () => (await replica.catchUp(10_000)) === undefined,
      pauseReplay: () => sql`select pg_wal_replay_pause()`.execute(onStandby.db),
      resumeReplay: () => sql`select pg_wal_replay_resume()`.execute(onStandby.db),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
