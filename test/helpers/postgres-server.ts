import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis-server.ts';

const run = promisify(execFile);
const BIN = process.env.VK_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  port: number;
  /** `postgres://postgres@127.0.0.1:{port}/postgres` (trust auth, or the password given). */
  url: string;
  /** Stops and starts the server (`pg_ctl restart -m fast`): every connection is cut. */
  restart(): Promise<void>;
  /** Stops the server (`-m immediate`) and removes its data directory. Safe to call more than once. */
  stop(): Promise<void>;
  /**
   * A streaming standby of this cluster (`pg_basebackup -R`, hot standby) on a free loopback port,
   * with the same password and settings (plus `settings`). Torn down by its own `stop()`; stop it
   * before this one.
   */
  startStandby(settings?: Record<string, string>): Promise<PrivateStandby>;
}

export interface PrivateStandby extends Omit<PrivatePostgres, 'startStandby'> {
  /** Stops the server (`-m fast`) and keeps its data, so that `resume()` starts it again. */
  halt(): Promise<void>;
  /** Starts a halted standby again; it reconnects to the primary and catches up. */
  resume(): Promise<void>;
}

export interface PrivatePostgresOptions {
  /** Password of the `postgres` user; with it, the cluster uses scram-sha-256 instead of trust. */
  password?: string;
  /** Extra `postgres -c` settings, `{ max_connections: '50' }`. */
  settings?: Record<string, string>;
}

/** Postgres refuses to run as root: run its tools as the postgres user when we are root. */
function asPostgres(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ stdout: string; stderr: string }> {
  const tool = path.join(BIN, command);
  const options = { env: { ...process.env, ...env } };
  if (process.getuid?.() !== 0) return run(tool, args, options);
  return run('runuser', ['-u', 'postgres', '--', tool, ...args], options);
}

/** A temporary directory the postgres user may write into (when we are root, we are not it). */
async function serverRoot(): Promise<string> {
  const root = mkdtempSync(path.join(tmpdir(), 'vk-pg-'));
  chmodSync(root, 0o777);
  if (process.getuid?.() === 0) await run('chown', ['postgres', root]);
  return root;
}

interface Managed {
  ctl(...args: string[]): Promise<unknown>;
  /** `-o` of pg_ctl start: the settings, on the command line. */
  startOptions: string;
  stop(): Promise<void>;
}

/**
 * `pg_ctl` over the data directory `root/data`, and the teardown: `stop()` and, for a test process that
 * exits without calling it (a crash, a forgotten teardown), an exit hook.
 */
function manage(root: string, port: number, settings: Record<string, string>): Managed {
  const data = path.join(root, 'data');
  const log = path.join(root, 'server.log');
  let stopped = false;
  const ctl = (...args: string[]) => asPostgres('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', ...args]);
  const startOptions = Object.entries({
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    fsync: 'off',
    unix_socket_directories: "''",
    ...settings,
  })
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  const onExit = () => {
    if (stopped) return;
    stopped = true;
    const args = [path.join(BIN, 'pg_ctl'), '-D', data, 'stop', '-m', 'immediate'];
    try {
      if (process.getuid?.() === 0)
        execFileSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'ignore' });
      else execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' });
    } catch {}
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  return {
    ctl,
    startOptions,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', onExit);
      await ctl('stop', '-m', 'immediate').catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * A Postgres cluster of the test's own (initdb in a temporary directory, a free loopback port): for
 * tests that restart, stop or password-protect Postgres, which the shared server must never suffer.
 * Torn down by `stop()`; a cluster that fails to start is removed before the error is thrown.
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const port = await freePort();
  const root = await serverRoot();
  const settings = options.settings ?? {};
  const server = manage(root, port, settings);
  try {
    const auth = options.password
      ? ['--auth=scram-sha-256', `--pwfile=${path.join(root, 'pw')}`]
      : ['--auth=trust'];
    if (options.password) writeFileSync(path.join(root, 'pw'), options.password, { mode: 0o644 });
    await asPostgres('initdb', ['-D', path.join(root, 'data'), '-U', 'postgres', '--no-sync', ...auth]);
    await server.ctl('start', '-o', server.startOptions);
  } catch (error) {
    await server.stop();
    throw error;
  }
  const credentials = options.password ? `postgres:${encodeURIComponent(options.password)}@` : 'postgres@';
  return {
    port,
    url: `postgres://${credentials}127.0.0.1:${port}/postgres`,
    async restart() {
      await server.ctl('restart', '-m', 'fast', '-o', server.startOptions);
    },
    stop: () => server.stop(),
    startStandby: (extra = {}) =>
      startStandby(port, credentials, options.password, { ...settings, ...extra }),
  };
}

/**
 * `pg_basebackup -R` of the primary at `primaryPort` into a new data directory (it streams the WAL
 * it needs and writes `standby.signal` and `primary_conninfo`), started as a hot standby. The
 * password travels in PGPASSWORD, never on a command line that an error message would repeat.
 */
async function startStandby(
  primaryPort: number,
  credentials: string,
  password: string | undefined,
  settings: Record<string, string>,
): Promise<PrivateStandby> {
  const port = await freePort();
  const root = await serverRoot();
  const server = manage(root, port, { hot_standby: 'on', ...settings });
  const env: Record<string, string> = password ? { PGPASSWORD: password } : {};
  const base = ['-D', path.join(root, 'data'), '-R', '-X', 'stream', '-c', 'fast', '--no-sync'];
  const connection = ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres'];
  try {
    await asPostgres('pg_basebackup', [...base, ...connection], env);
    await server.ctl('start', '-o', server.startOptions);
  } catch (error) {
    await server.stop();
    throw error;
  }
  const start = () => server.ctl('start', '-o', server.startOptions);
  return {
    port,
    url: `postgres://${credentials}127.0.0.1:${port}/postgres`,
    async restart() {
      await server.ctl('restart', '-m', 'fast', '-o', server.startOptions);
    },
    async halt() {
      await server.ctl('stop', '-m', 'fast');
    },
    async resume() {
      await start();
    },
    stop: () => server.stop(),
  };
}
