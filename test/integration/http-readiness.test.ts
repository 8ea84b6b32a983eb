import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDemo } from '../../demo/migrate.ts';
import { createProgress } from '../../src/http/progress.ts';
import { createReadiness } from '../../src/http/readiness.ts';
import { createQueue } from '../../src/queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { REPO_JOBS } from '../helpers/daemon.ts';
import { type HttpDaemon, startHttpDaemon, until } from '../helpers/http.ts';
import { freePort, startThrowawayRedis, type ThrowawayRedis } from '../helpers/redis-server.ts';

// Readiness means "working": it turns red when Postgres or Redis goes away and green when they come
// back, and when a worker loop stops turning although it has work. Destructive, so on servers of
// its own: a private redis-server and a private Postgres cluster (initdb) on free loopback ports.

const run = promisify(execFile);
const PG_BIN = '/usr/lib/postgresql/15/bin';

/** A throwaway Postgres cluster owned by the postgres user (postgres refuses to run as root). */
async function startPostgres(): Promise<{
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
}> {
  const dir = await mkdtemp(path.join(tmpdir(), 'vk-pg-'));
  await chmod(dir, 0o700);
  const { stdout } = await run('id', ['-u', 'postgres']);
  const uid = Number(stdout.trim());
  await chown(dir, uid, uid);
  const port = await freePort();
  const asPostgres = (command: string, args: string[]) =>
    run('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, command), ...args]);
  await asPostgres('initdb', ['-D', path.join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async () => {
    await asPostgres('pg_ctl', [
      '-D',
      path.join(dir, 'data'),
      '-o',
      options,
      '-l',
      path.join(dir, 'log'),
      '-w',
      'start',
    ]);
  };
  const stop = async () => {
    await asPostgres('pg_ctl', ['-D', path.join(dir, 'data'), '-m', 'fast', '-w', 'stop']).catch(
      () => undefined,
    );
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/viewkeeper`,
    start,
    stop,
    async remove() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let postgres: Awaited<ReturnType<typeof startPostgres>>;
let redis: ThrowawayRedis;
let daemon: HttpDaemon | undefined;

async function readyz(): Promise<{ status: number; body: { status: string; failing?: string[] } }> {
  const response = await fetch(`${daemon!.base}/readyz`);
  return { status: response.status, body: (await response.json()) as { status: string; failing?: string[] } };
}

beforeAll(async () => {
  postgres = await startPostgres();
  await migrateDemo(postgres.url);
  redis = await startThrowawayRedis();
});

afterAll(async () => {
  if (daemon && daemon.daemon.child.exitCode === null) daemon.daemon.child.kill('SIGKILL');
  await daemon?.daemon.exited;
  await redis?.kill();
  await postgres?.remove();
});

describe('/readyz follows the databases', () => {
  it('turns red when Redis goes away and green when it is back; same for Postgres; /livez stays green', async () => {
    daemon = await startHttpDaemon({
      DATABASE_URL: postgres.url,
      REDIS_URL: `${redis.url}/0`,
      VK_PREFIX: 'vkready',
      VK_JOBS_DIR: REPO_JOBS,
    });
    await until(async () => (await readyz()).status === 200, 'ready at start');

    await redis.kill();
    await until(async () => (await readyz()).status === 503, 'red without Redis');
    expect((await readyz()).body.failing).toEqual(expect.arrayContaining(['views redis', 'queue redis']));
    expect((await fetch(`${daemon.base}/livez`)).status).toBe(200);
    redis = await startThrowawayRedis(redis.port);
    await until(async () => (await readyz()).status === 200, 'green with Redis back', 30_000);

    await postgres.stop();
    await until(async () => (await readyz()).status === 503, 'red without Postgres');
    expect((await readyz()).body.failing).toEqual(['postgres']);
    expect((await fetch(`${daemon.base}/livez`)).status).toBe(200);
    await postgres.start();
    await until(async () => (await readyz()).status === 200, 'green with Postgres back', 30_000);
    // A stack printed anywhere (pino lines are single-line JSON) shows with its neighbours.
    const stack = /.*\n.*\n\s+at .*/.exec(daemon.daemon.output());
    expect(stack?.[0], stack?.[0]).toBeUndefined();
  });
});

describe('worker progress', () => {
  let connection: Redis;
  let queue: Queue;

  beforeAll(async () => {
    connection = createRedis(`${redis.url}/1`, { role: 'queue', name: 'readiness-test' });
    await connectRedis(connection, `${redis.url}/1`, 'REDIS_URL');
    queue = createQueue('refresh', connection, 'vkprogress');
  });

  afterAll(async () => {
    await queue?.close();
    if (connection) await closeRedis(connection);
  });

  it('a worker with waiting jobs and no beat for longer than stallMs turns readiness red; a beat turns it green', async () => {
    const progress = createProgress({ stallMs: 300, backlog: () => queue.getWaitingCount() });
    const readiness = createReadiness({
      probes: { redis: () => connection.ping() },
      workers: { refresh: progress },
    });
    expect(await readiness.check()).toEqual({ ready: false, failing: ['starting'] });
    readiness.started();

    // Idle for longer than stallMs with nothing to do: still ready.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect((await readiness.check()).ready).toBe(true);

    // Work arrives and nothing takes it: ready until it has waited stallMs, then red.
    await queue.add('user_stats', {});
    expect((await readiness.check()).ready).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await readiness.check()).toEqual({ ready: false, failing: ['worker:refresh'] });

    progress.beat();
    expect((await readiness.check()).ready).toBe(true);
    readiness.stopping();
    expect(await readiness.check()).toEqual({ ready: false, failing: ['stopping'] });
  });

  it('a degradable dependency that fails is listed as degraded and leaves the daemon ready; a required one does not', async () => {
    let replicaUp = false;
    const readiness = createReadiness({
      probes: { redis: () => connection.ping() },
      degradable: { 'postgres replica': async () => (replicaUp ? 1 : Promise.reject(new Error('down'))) },
      workers: {},
    });
    readiness.started();
    expect(await readiness.check()).toEqual({ ready: true, failing: [], degraded: ['postgres replica'] });
    replicaUp = true;
    expect(await readiness.check()).toEqual({ ready: true, failing: [] });
  });
});
