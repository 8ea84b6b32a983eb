import { Writable } from 'node:stream';
import type { Queue } from 'bullmq';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUEUES } from '../../src/contract.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { defineView } from '../../src/index.ts';
import { isTransient } from '../../src/lib/transient.ts';
import { createLogger } from '../../src/logging/create-logger.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { createRefreshEngine, type RefreshEngine } from '../../src/views/refresh-engine.ts';
import { type CliResult, runCli } from '../helpers/cli.ts';
import { REPO_JOBS } from '../helpers/daemon.ts';
import { type HttpDaemon, startHttpDaemon } from '../helpers/http.ts';
import { type ReplicaDb, type ReplicaStack, startReplicaStack } from '../helpers/replica-stack.ts';
import { actualContent, expectedContent, loadDemoViews } from '../helpers/views.ts';
import { until } from '../helpers/wait.ts';

// DATABASE_READ_URL on a real streaming standby (pg_basebackup -R of a private, password-protected
// primary). Replay is paused to make the standby lag on purpose: a full rebuild that read it then
// would carry a pre-write snapshot under a newer sequence than the refresh that followed the write.

const PASSWORD = 'replica-secret-4c7e';

let stack: ReplicaStack;
const teardown: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  stack = await startReplicaStack(PASSWORD);
  teardown.push(() => stack.stop());
}, 120_000);

afterAll(async () => {
  while (teardown.length > 0) await teardown.pop()!().catch(() => undefined);
});

describe('the refresh engine with a read replica', () => {
  // Each row says which server produced it.
  const probe = defineView<{ probe_rows: { id: string; label: string } }>()({
    name: 'probe',
    shape: 'hash',
    key: 'probe:{id}',
    params: { id: 'bigint' },
    query: (q, params) => {
      let query = q
        .selectFrom('probe_rows')
        .select(['id', 'label', sql<string>`pg_is_in_recovery()::text`.as('on_replica')]);
      if (params) query = query.where('id', '=', params.id);
      return query;
    },
  });
  const lines: string[] = [];
  let engine: RefreshEngine;
  // Back-to-back runs of one view: no spacing between them.
  const again = { ignoreWindow: true };
  const onReplica = (id: number) => stack.views.hget(`probe:${id}`, 'on_replica');

  beforeAll(async () => {
    await sql`create table probe_rows (id bigint primary key, label text not null)`.execute(stack.db.db);
    await sql`insert into probe_rows select g, 'row ' || g from generate_series(1, 3) g`.execute(stack.db.db);
    const destination = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    engine = createRefreshEngine({
      db: stack.db.db,
      redis: stack.views,
      prefix: 'vke',
      logger: createLogger({ level: 'info', pretty: false, destination }),
      replica: stack.replica,
      replicaWaitMs: 300,
    });
    await until(stack.caughtUp, 'the standby to replay the probe table', 30_000);
  });

  it('a full rebuild reads the replica once it has caught up; a partial refresh reads the primary', async () => {
    const full = await engine.refresh(probe, undefined, again);
    expect(full).toMatchObject({ status: 'done', kind: 'full', rows: 3, source: 'replica' });
    expect(await onReplica(1)).toBe('true');
    const partial = await engine.refresh(probe, { id: '1' }, again);
    expect(partial).toMatchObject({ status: 'done', kind: 'partial', source: 'primary' });
    expect(await onReplica(1)).toBe('false');
    expect(await onReplica(2)).toBe('true');
  });

  it('with replay paused behind a write, a full rebuild reads the primary after the wait instead of the stale standby', async () => {
    await stack.pauseReplay();
    try {
      await sql`insert into probe_rows values (4, 'row 4')`.execute(stack.db.db);
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from probe_rows`.execute(
        stack.onStandby.db,
      );
      expect(rows[0]!.n).toBe(3); // the standby has not seen the write
      lines.length = 0;
      const full = await engine.refresh(probe, undefined, again);
      expect(full).toMatchObject({ status: 'done', kind: 'full', rows: 4, source: 'primary' });
      expect(await stack.views.hget('probe:4', 'label')).toBe('row 4');
      expect(await onReplica(4)).toBe('false');
      const warned = lines.filter((line) => line.includes('reads the primary'));
      expect(warned).toHaveLength(1);
      expect(JSON.parse(warned[0]!).msg).toMatch(
        /^full rebuild of view probe reads the primary: the replica is .+ behind the primary after 300 ms \(replay is paused\)$/,
      );
    } finally {
      await stack.resumeReplay();
    }
    await until(stack.caughtUp, 'the standby to catch up', 30_000);
    expect(await engine.refresh(probe, undefined, again)).toMatchObject({ rows: 4, source: 'replica' });
    expect(await onReplica(4)).toBe('true');
  });

  it('each chunk of a chunked rebuild chooses for itself: the caught-up replica, or the primary while replay is paused', async () => {
    const chunked = defineView<{ probe_rows: { id: string; label: string } }>()({
      name: 'chunked_probe',
      shape: 'hash',
      key: 'chunked_probe:{id}',
      chunking: { table: 'probe_rows', column: 'id', size: 2 },
      query: (q, _params, range) => {
        let query = q
          .selectFrom('probe_rows')
          .select(['id', 'label', sql<string>`pg_is_in_recovery()::text`.as('on_replica')]);
        if (range) query = query.where('id', '>=', range.from).where('id', '<', range.to);
        return query;
      },
    });
    const begun = await engine.beginChunked(chunked, again);
    if (begun.status !== 'started') throw new Error(`not started: ${JSON.stringify(begun)}`);
    expect(begun.ranges).toEqual([
      { from: '1', to: '3' },
      { from: '3', to: '5' },
    ]);
    const run = (range: (typeof begun.ranges)[number]) =>
      engine.runChunk(chunked, { seq: begun.seq, token: begun.token, range }, again);
    const first = await run(begun.ranges[0]!);
    await stack.pauseReplay();
    let second: Awaited<ReturnType<typeof run>>;
    try {
      await sql`update probe_rows set label = 'row 3, changed' where id = 3`.execute(stack.db.db);
      second = await run(begun.ranges[1]!);
    } finally {
      await stack.resumeReplay();
    }
    await engine.finishChunked(chunked, {
      seq: begun.seq,
      token: begun.token,
      startedAt: begun.startedAt,
      rows: first.rows + second.rows,
      fields: first.fields,
    });
    expect(await stack.views.hgetall('chunked_probe:1')).toEqual({ label: 'row 1', on_replica: 'true' });
    expect(await stack.views.hgetall('chunked_probe:3')).toEqual({
      label: 'row 3, changed',
      on_replica: 'false',
    });
    expect(lines.some((line) => line.includes('chunk of view chunked_probe reads the primary'))).toBe(true);
    await until(stack.caughtUp, 'the standby to catch up', 30_000);
  });

  it('a query the standby cancels for a recovery conflict fails with one transient line naming the settings', async () => {
    // Cancel at once instead of after 30 s; set in the file (a -c setting would win over it).
    await sql`alter system set max_standby_streaming_delay = 0`.execute(stack.onStandby.db);
    await sql`select pg_reload_conf()`.execute(stack.onStandby.db);
    const slow = defineView<{ probe_rows: { id: string; label: string } }>()({
      name: 'slow_probe',
      shape: 'hash',
      key: 'slow_probe:{id}',
      query: (q) =>
        q
          .selectFrom('probe_rows')
          .select(['id', 'label', sql<string>`pg_sleep(1)::text`.as('slept')])
          .orderBy('id'),
    });
    try {
      const run = engine.refresh(slow, undefined, again).then(
        () => undefined,
        (error: unknown) => error,
      );
      await until(async () => {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where state = 'active' and query like '%pg_sleep%' and pid <> pg_backend_pid()`.execute(
          stack.onStandby.db,
        );
        return rows[0]!.n > 0;
      }, 'the slow query to run on the standby');
      // Dead rows the standby's query may still need, removed on the primary: replaying that cleanup
      // conflicts with the query.
      await sql`update probe_rows set label = label || '!'`.execute(stack.db.db);
      await sql`vacuum probe_rows`.execute(stack.db.db);
      const error = (await run) as Error;
      expect(isViewkeeperError(error, 'E_REPLICA_CONFLICT'), String(error)).toBe(true);
      expect(error.message, error.message).not.toContain('\n');
      expect(error.message, error.message).toMatch(
        // Between two fetches of its cursor the backend is idle in a transaction, and the standby ends
        // the session instead of the statement: the same conflict, the same SQLSTATE.
        /^full rebuild of view slow_probe: the standby \(DATABASE_READ_URL\) cancelled the query \((canceling statement|terminating connection) due to conflict with recovery/,
      );
      expect(error.message).toContain('hot_standby_feedback = on');
      expect(error.message).toContain('max_standby_streaming_delay');
      expect(isTransient(error)).toBe(true);
    } finally {
      await sql`alter system reset max_standby_streaming_delay`.execute(stack.onStandby.db);
      await sql`select pg_reload_conf()`.execute(stack.onStandby.db);
    }
  }, 60_000);
});

describe('the daemon with DATABASE_READ_URL', () => {
  let http: HttpDaemon;
  let env: Record<string, string>;
  let writeQueue: Queue;
  const outputs: CliResult[] = [];
  const cli = async (args: string[]) => {
    const result = await runCli(args, env, 60_000);
    outputs.push(result);
    return result;
  };
  /** A full rebuild through the refresh queue, waited for: the job's result. */
  const rebuild = async (view: string) => {
    const result = await cli(['refresh', view, '--wait', '--json']);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as { kind: string; source?: string };
  };
  const readyz = async () => {
    const response = await fetch(`${http.base}/readyz`);
    return { status: response.status, body: await response.json() };
  };

  beforeAll(async () => {
    env = {
      DATABASE_URL: stack.databaseUrl,
      DATABASE_READ_URL: stack.readUrl,
      REDIS_URL: stack.redisUrl,
      VK_PREFIX: 'vkd',
      VK_JOBS_DIR: REPO_JOBS,
      VK_REPLICA_WAIT_MS: '500',
      VK_AUDIT_INTERVAL_MS: '0',
    };
    const queueRedis = createRedis(stack.redisUrl, { role: 'queue', name: 'test-producer' });
    teardown.push(() => closeRedis(queueRedis));
    await connectRedis(queueRedis, stack.redisUrl, 'QUEUE_REDIS_URL');
    writeQueue = createQueue(QUEUES.writeBehind, queueRedis, 'vkd');
    teardown.push(() => writeQueue.close());
    http = await startHttpDaemon(env);
    teardown.push(() => http.daemon.stop('SIGKILL'));
    await until(stack.caughtUp, 'the standby to catch up', 30_000);
  }, 60_000);

  it('paused replay: the write-behind refresh reads the primary, a full rebuild after it keeps the new data; resumed, full rebuilds read the replica again', async () => {
    const demo = await loadDemoViews();
    expect(await rebuild('post_votes')).toMatchObject({ kind: 'full', source: 'replica' });
    expect(await actualContent(stack.views, 'vkd', demo.post_votes)).toEqual(
      await expectedContent(stack.db, demo.post_votes),
    );

    const { rows } = await sql<{ post_id: string; user_id: string }>`
      select p.id as post_id, u.id as user_id from posts p cross join users u
      where not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id)
      order by p.id, u.id limit 1`.execute(stack.db.db);
    const { post_id, user_id } = rows[0]!;
    const sumOf = async (handle: ReplicaDb) => {
      const { rows: sums } = await sql<{ sum: string | null }>`
        select sum(value)::text as sum from votes where post_id = ${post_id}`.execute(handle.db);
      return sums[0]!.sum;
    };
    const before = await stack.views.get(`post_votes:${post_id}`);
    expect(before).toBe(await sumOf(stack.db));

    await stack.pauseReplay();
    try {
      await writeQueue.add('votes', { ops: [{ id: 'replica-op-1', post_id, user_id, value: 1 }] });
      const after = String(Number(before) + 1);
      // The refresh owed by the batch read the primary: the standby still has the old sum.
      await until(
        async () => (await stack.views.get(`post_votes:${post_id}`)) === after,
        'the owed refresh',
        { timeoutMs: 60_000, detail: () => http.daemon.output().slice(-2000) },
      );
      expect(await sumOf(stack.onStandby)).toBe(before);
      // A full rebuild now takes a newer sequence: read from the paused standby, it would put the old
      // sum back. It waits VK_REPLICA_WAIT_MS, then reads the primary.
      expect(await rebuild('post_votes')).toMatchObject({ kind: 'full', source: 'primary' });
      expect(await stack.views.get(`post_votes:${post_id}`)).toBe(after);
      expect(await actualContent(stack.views, 'vkd', demo.post_votes)).toEqual(
        await expectedContent(stack.db, demo.post_votes),
      );
      expect(http.daemon.output()).toMatch(
        /full rebuild of view post_votes reads the primary: the replica is .+ \(replay is paused\)/,
      );
    } finally {
      await stack.resumeReplay();
    }
    await until(stack.caughtUp, 'the standby to catch up', 30_000);
    expect(await rebuild('post_votes')).toMatchObject({ kind: 'full', source: 'replica' });
    expect(await actualContent(stack.views, 'vkd', demo.post_votes)).toEqual(
      await expectedContent(stack.db, demo.post_votes),
    );
    expect(await rebuild('user_stats')).toMatchObject({ kind: 'full', source: 'replica' });
    expect(await actualContent(stack.views, 'vkd', demo.user_stats)).toEqual(
      await expectedContent(stack.db, demo.user_stats),
    );
  }, 120_000);

  it('the standby stopped: full rebuilds read the primary, /readyz stays ready listing it degraded, status says so; back, it is read again', async () => {
    const ready = await readyz();
    expect(ready).toEqual({ status: 200, body: { status: 'ready' } });
    const metrics = async () => (await fetch(`${http.base}/metrics`)).text();
    const up = await metrics();
    expect(up).toMatch(/^viewkeeper_replica_up 1$/m);
    expect(up).toMatch(/^viewkeeper_replica_lag_bytes \d+$/m);
    await stack.standby.halt();
    try {
      expect(await rebuild('user_stats')).toMatchObject({ kind: 'full', source: 'primary' });
      expect(http.daemon.output()).toMatch(
        /full rebuild of view user_stats reads the primary: the replica is unreachable/,
      );
      expect(await readyz()).toEqual({
        status: 200,
        body: { status: 'ready', degraded: ['postgres replica'] },
      });
      const down = await metrics();
      expect(down).toMatch(/^viewkeeper_replica_up 0$/m);
      expect(down).toMatch(/^viewkeeper_replica_lag_bytes nan$/im);
      const status = await cli(['status']);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(/^read replica: unreachable \(.+\)$/m);
      const json = await cli(['status', '--json']);
      expect(JSON.parse(json.stdout).replica).toMatchObject({ state: 'unreachable', lag_bytes: null });
    } finally {
      await stack.standby.resume();
    }
    await until(stack.caughtUp, 'the standby to catch up', 30_000);
    expect(await rebuild('user_stats')).toMatchObject({ kind: 'full', source: 'replica' });
    const json = await cli(['status', '--json']);
    expect(JSON.parse(json.stdout).replica).toMatchObject({ state: 'streaming', reason: null });
    expect(JSON.parse(json.stdout).replica.lag_bytes).toBeGreaterThanOrEqual(0);
    expect(http.daemon.child.exitCode).toBeNull();
  }, 120_000);

  it('no output carries a password: not the daemon, not the CLI, not a bad DATABASE_READ_URL', async () => {
    const refused = await runCli(['status'], {
      ...env,
      DATABASE_READ_URL: `mysql://reader:${PASSWORD}@standby-host/x`,
    });
    outputs.push(refused);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('DATABASE_READ_URL="mysql://reader:***@standby-host/x" is invalid');
    // A refused password is a mistake no waiting fixes: start stops, naming the variable.
    const wrong = 'not-the-password-93a';
    const start = await runCli(['start'], {
      ...env,
      DATABASE_READ_URL: stack.readUrl.replace(encodeURIComponent(PASSWORD), wrong),
    });
    outputs.push(start);
    expect(start.code, start.stderr).toBe(1);
    expect(start.stderr).toMatch(
      /Postgres at 127\.0\.0\.1:\d+ \(DATABASE_READ_URL\): authentication failed .*check the user and password in DATABASE_READ_URL/,
    );
    expect(`${start.stdout}${start.stderr}`).not.toContain(wrong);
    expect(await http.daemon.stop()).toBe(0);
    const everything = [http.daemon.output(), ...outputs.flatMap((result) => [result.stdout, result.stderr])];
    for (const text of everything) expect(text).not.toContain(PASSWORD);
    expect(http.daemon.output()).toContain('daemon stopped');
  }, 60_000);
});
