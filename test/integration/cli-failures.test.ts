import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDemo } from '../../demo/migrate.ts';
import { type CliResult, runCli } from '../helpers/cli.ts';
import { createJobsDir, REPO_JOBS, SRC_INDEX, startDaemon } from '../helpers/daemon.ts';
import { type PrivatePostgres, startPrivatePostgres } from '../helpers/postgres-server.ts';
import { freePort, startThrowawayRedis, type ThrowawayRedis } from '../helpers/redis-server.ts';

// Every CLI command on its failure paths, against servers of this file's own: a Redis whose password
// has been rotated, a Postgres with a password, ports nobody listens on. Each failure is one line on
// stderr naming what failed, the variable and the host, with the documented exit code, in bounded
// time; no password ever appears in any output, raw or URL-encoded, LOG_LEVEL=debug included.

const OLD = 'old-redis-pass:7/x';
const NEW = 'new-redis-pass@8';
const WRONG = 'never-valid-pass#9';
const PG_PASS = 'pg-right-pass%4';
const PG_WRONG = 'pg-wrong-pass&5';
const ALL = [OLD, NEW, WRONG, PG_PASS, PG_WRONG];

let redis: ThrowawayRedis;
let postgres: PrivatePostgres;
let good: Record<string, string>;
// Database 1: the database-number test checks that nothing ever lands in database 0.
const redisAt = (password: string, db = 1) =>
  `redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}/${db}`;
const pgAt = (password: string) =>
  postgres.url
    .replace(encodeURIComponent(PG_PASS), encodeURIComponent(password))
    .replace(/\/postgres$/, '/vk');

beforeAll(async () => {
  redis = await startThrowawayRedis(undefined, ['--requirepass', OLD]);
  // Rotated: the URLs with OLD worked until now.
  const admin = new Redis(redisAt(OLD));
  await admin.config('SET', 'requirepass', NEW);
  admin.disconnect();
  postgres = await startPrivatePostgres({ password: PG_PASS });
  await migrateDemo(pgAt(PG_PASS));
  good = {
    DATABASE_URL: pgAt(PG_PASS),
    REDIS_URL: redisAt(NEW),
    VK_PREFIX: 'vkf',
    VK_JOBS_DIR: REPO_JOBS,
    LOG_LEVEL: 'debug',
  };
});
afterAll(async () => {
  await redis?.kill();
  await postgres?.stop();
});

/** Every password of this file, raw and URL-encoded, that occurs in the output. */
function leaked(result: CliResult | string): string[] {
  const output = typeof result === 'string' ? result : result.stdout + result.stderr;
  return ALL.flatMap((secret) => [secret, encodeURIComponent(secret)]).filter((form) =>
    output.includes(form),
  );
}

function oneLine(result: CliResult): string {
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
  expect(lines, result.stderr).toHaveLength(1);
  return lines[0]!;
}

/**
 * What "bounded" is checked against: the commands give up after 5 s (refresh --wait: its --timeout
 * of 5 s); the rest is starting a TypeScript process, which takes many seconds on a loaded machine.
 * Before, refresh --wait hung for good.
 */
const BOUND_MS = 30_000;

const COMMANDS = [
  ['start'],
  ['status'],
  ['refresh', 'user_stats'],
  ['refresh', 'user_stats', '--wait', '--timeout', '5'],
  ['migrate'],
];

describe('no password on any output', { timeout: 400_000 }, () => {
  for (const variable of ['REDIS_URL', 'QUEUE_REDIS_URL'] as const) {
    for (const [kind, password] of [
      ['wrong', WRONG],
      ['rotated', OLD],
    ] as const) {
      it(`every command with a ${kind} password in ${variable} (LOG_LEVEL=debug): zero hits`, async () => {
        const env = { ...good, QUEUE_REDIS_URL: redisAt(NEW), [variable]: redisAt(password) };
        // One at a time: five TypeScript processes at once starve a loaded 2-core machine.
        const results: CliResult[] = [];
        for (const args of COMMANDS) results.push(await runCli(args, env, 60_000));
        results.forEach((result, i) => {
          expect(leaked(result), `${COMMANDS[i]!.join(' ')}: ${result.stderr}`).toEqual([]);
        });
        // The commands that use the refused URL fail with one line saying so.
        const refused = COMMANDS.map((args, i) => ({ args, result: results[i]! })).filter(
          ({ args }) =>
            args[0] === 'start' ||
            args[0] === 'status' ||
            (variable === 'QUEUE_REDIS_URL' && args[0] === 'refresh'),
        );
        for (const { args, result } of refused) {
          expect(result.code, args.join(' ')).toBe(1);
          expect(result.stderr.split('\n')[0]).toMatch(
            new RegExp(`Redis at 127\\.0\\.0\\.1:${redis.port} \\(${variable}\\): authentication failed`),
          );
        }
      });
    }
  }

  it('every command with a wrong password in DATABASE_URL: one line, "authentication failed", zero hits', async () => {
    const env = { ...good, DATABASE_URL: pgAt(PG_WRONG) };
    for (const args of [['migrate'], ['status'], ['start']]) {
      const result = await runCli(args, env, 60_000);
      expect(leaked(result), result.stderr).toEqual([]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr.split('\n')[0]).toMatch(
        new RegExp(`Postgres at 127\\.0\\.0\\.1:${postgres.port} \\(DATABASE_URL\\): authentication failed`),
      );
    }
  });

  it('a running daemon whose Redis password is rotated under it logs the refusals without the password', async () => {
    const own = await startThrowawayRedis(undefined, ['--requirepass', OLD]);
    try {
      const url = `redis://:${encodeURIComponent(OLD)}@127.0.0.1:${own.port}/0`;
      const daemon = startDaemon({ ...good, REDIS_URL: url });
      try {
        await daemon.waitFor('daemon started', 30_000);
        const admin = new Redis(url);
        await admin.config('SET', 'requirepass', NEW);
        await admin.call('CLIENT', 'KILL', 'TYPE', 'normal'); // every connection must authenticate again
        admin.disconnect();
        await daemon.waitFor(/WRONGPASS/, 20_000);
        expect(daemon.child.exitCode).toBeNull();
      } finally {
        await daemon.stop('SIGKILL');
      }
      expect(leaked(daemon.output())).toEqual([]);
    } finally {
      await own.kill();
    }
  });

  it('an app using createClient with a refused password prints no password, in its errors or logs', async () => {
    const script = createJobsDir({
      'app.ts': `import { inspect } from 'node:util';
import { createClient } from ${JSON.stringify(SRC_INDEX)};
const log = (level: string) => (...args: unknown[]) => console.log(level, inspect(args, { depth: 8 }));
const client = createClient({
  redisUrl: process.env.REDIS_URL, queueRedisUrl: process.env.QUEUE_REDIS_URL, prefix: 'vkf',
  commandTimeoutMs: 300, connectTimeoutMs: 300, logger: { debug: log('debug'), warn: log('warn') },
  views: { v: { shape: 'value', key: 'v:{id}' } },
});
for (const call of [
  () => client.value('v', { id: 1 }),
  () => client.refresh('v', { id: 1 }, { timeoutMs: 1000 }),
  () => client.refresh('v', undefined, { wait: true, timeoutMs: 1500 }),
  () => client.write('votes', { post_id: 1, user_id: 1, value: 1 }),
  () => client.cached('c', () => 'loaded'),
]) {
  try { console.log('ok', inspect(await call())); } catch (error) { console.log('error', inspect(error, { depth: 8 })); }
}
await client.close();
`,
    });
    try {
      for (const env of [
        { REDIS_URL: redisAt(WRONG), QUEUE_REDIS_URL: redisAt(OLD) },
        { REDIS_URL: redisAt(OLD), QUEUE_REDIS_URL: redisAt(WRONG) },
      ]) {
        const output = await new Promise<string>((resolve) => {
          const child = spawn(process.execPath, [`${script.dir}/app.ts`], {
            env: { PATH: process.env.PATH ?? '', ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let text = '';
          child.stdout.on('data', (chunk) => {
            text += chunk;
          });
          child.stderr.on('data', (chunk) => {
            text += chunk;
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
          child.on('close', () => {
            clearTimeout(timer);
            resolve(text);
          });
        });
        expect(output).toMatch(/^error /m); // the calls really failed against the refusing server
        expect(output).toMatch(/^ok 'loaded'/m);
        expect(leaked(output), output).toEqual([]);
      }
    } finally {
      script.remove();
    }
  });
});

describe('CLI failures: one line, exit code, bounded time', { timeout: 300_000 }, () => {
  // LOG_LEVEL=debug adds the stack under the line, on purpose; these check what an operator sees.
  const quiet = () => ({ ...good, LOG_LEVEL: 'warn' });
  it('Redis unreachable: every command exits 1 with one line naming the variable and host, within ~5 s', async () => {
    const port = await freePort();
    const env = { ...quiet(), REDIS_URL: `redis://:${encodeURIComponent(WRONG)}@127.0.0.1:${port}/0` };
    for (const args of [['status'], ['refresh', 'user_stats'], ['start']]) {
      const result = await runCli(args, env, 60_000);
      expect(result.code, result.stderr).toBe(1);
      expect(oneLine(result)).toMatch(
        new RegExp(`^viewkeeper ${args[0]}: cannot reach Redis at 127\\.0\\.0\\.1:${port} \\(REDIS_URL\\)`),
      );
      expect(leaked(result)).toEqual([]);
      expect(result.signal).toBeNull(); // exited by itself
      expect(result.ms).toBeLessThan(BOUND_MS);
    }
  });

  it('refresh --wait --timeout 5 exits within the timeout when Redis is unreachable or refuses the password', async () => {
    const port = await freePort();
    for (const [url, pattern] of [
      [`redis://127.0.0.1:${port}/0`, /cannot reach Redis/],
      [redisAt(WRONG), /authentication failed/],
    ] as const) {
      const result = await runCli(
        ['refresh', 'user_stats', '--wait', '--timeout', '5'],
        { ...quiet(), REDIS_URL: url },
        60_000,
      );
      expect(result.signal).toBeNull(); // not killed by runCli: it exited by itself (it used to hang)
      expect(result.code).toBe(1);
      expect(oneLine(result)).toMatch(pattern);
      expect(result.ms).toBeLessThan(BOUND_MS);
    }
  });

  it('refresh blames REDIS_URL when QUEUE_REDIS_URL is unset, and QUEUE_REDIS_URL when it is the one used', async () => {
    const unset = await runCli(['refresh', 'user_stats'], { ...quiet(), REDIS_URL: redisAt(WRONG) });
    expect(oneLine(unset)).toMatch(/\(REDIS_URL\): authentication failed/);
    const set = await runCli(['refresh', 'user_stats'], { ...quiet(), QUEUE_REDIS_URL: redisAt(WRONG) });
    expect(oneLine(set)).toMatch(/\(QUEUE_REDIS_URL\): authentication failed/);
  });

  it('Postgres unreachable: migrate, status and start exit 1 with one line naming DATABASE_URL', async () => {
    const port = await freePort();
    const env = {
      ...quiet(),
      DATABASE_URL: `postgres://postgres:${encodeURIComponent(PG_WRONG)}@127.0.0.1:${port}/vk`,
    };
    for (const args of [['migrate'], ['status'], ['start']]) {
      const result = await runCli(args, env, 60_000);
      expect(result.code, result.stderr).toBe(1);
      expect(oneLine(result)).toMatch(
        new RegExp(`cannot reach Postgres at 127\\.0\\.0\\.1:${port} \\(DATABASE_URL\\)`),
      );
      expect(leaked(result)).toEqual([]);
    }
  });

  it('a Redis database number the server does not have refuses start-up and every command (exit 2), writing nothing to db 0', async () => {
    for (const variable of ['REDIS_URL', 'QUEUE_REDIS_URL']) {
      // QUEUE_REDIS_URL unset means REDIS_URL: refresh refuses db 99 in both cases.
      const env = { ...quiet(), [variable]: redisAt(NEW, 99) };
      for (const args of [['start'], ['status'], ['refresh', 'user_stats']]) {
        const result = await runCli(args, env, 60_000);
        expect(result.code, `${args.join(' ')} with ${variable}: ${result.stderr}`).toBe(2);
        expect(oneLine(result)).toMatch(new RegExp(`${variable} selects database 99, which Redis at`));
      }
    }
    const admin = new Redis(redisAt(NEW, 0));
    try {
      expect(await admin.dbsize()).toBe(0);
    } finally {
      admin.disconnect();
    }
  });

  it('refresh checks the view and params against the definitions before enqueueing (exit 2, even without --wait)', async () => {
    const unreachable = { ...quiet(), REDIS_URL: `redis://127.0.0.1:${await freePort()}/0` };
    const unknown = await runCli(['refresh', 'no_such_view'], unreachable);
    expect(unknown.code).toBe(2);
    expect(oneLine(unknown)).toMatch(/unknown view "no_such_view": known views are .*user_stats/);
    const badParam = await runCli(['refresh', 'user_stats', '--param', 'user_id=abc'], unreachable);
    expect(badParam.code).toBe(2);
    expect(oneLine(badParam)).toMatch(/user_id/);
  });

  it('refresh without loadable definitions enqueues as any producer would (the daemon judges)', async () => {
    const empty = createJobsDir({});
    try {
      const result = await runCli(['refresh', 'no_such_view'], { ...quiet(), VK_JOBS_DIR: empty.dir });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^enqueued full refresh of no_such_view/);
    } finally {
      empty.remove();
    }
  });
});
