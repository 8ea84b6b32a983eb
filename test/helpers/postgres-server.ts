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
}

export interface PrivatePostgresOptions {
  /** Password of the `postgres` user; with it, the cluster uses scram-sha-256 instead of trust. */
  password?: string;
  /** Extra `postgres -c` settings, `{ max_connections: '50' }`. */
  settings?: Record<string, string>;
}

/** Postgres refuses to run as root: run its tools as the postgres user when we are root. */
function asPostgres(command: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const tool = path.join(BIN, command);
  if (process.getuid?.() !== 0) return run(tool, args);
  return run('runuser', ['-u', 'postgres', '--', tool, ...args]);
}

/**
 * A Postgres cluster of the test's own (initdb in a temporary directory, a free loopback port): for
 * tests that restart, stop or password-protect Postgres, which the shared server must never suffer.
 * Torn down by `stop()`; a cluster that fails to start is removed before the error is thrown.
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const port = await freePort();
  const root = mkdtempSync(path.join(tmpdir(), 'vk-pg-'));
  const data = path.join(root, 'data');
  const log = path.join(root, 'server.log');
  chmodSync(root, 0o777);
  if (process.getuid?.() === 0) await run('chown', ['postgres', root]);
  let stopped = false;
  const ctl = (...args: string[]) => asPostgres('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', ...args]);
  const settings = Object.entries({
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    ...options.settings,
  })
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ');
  // A test process that exits without calling stop() (a crash, a forgotten teardown) still stops it.
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
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    await ctl('stop', '-m', 'immediate').catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const auth = options.password
      ? ['--auth=scram-sha-256', `--pwfile=${path.join(root, 'pw')}`]
      : ['--auth=trust'];
    if (options.password) writeFileSync(path.join(root, 'pw'), options.password, { mode: 0o644 });
    await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--no-sync', ...auth]);
    await ctl('start', '-o', `${settings} -c fsync=off -c unix_socket_directories=''`);
  } catch (error) {
    await stop();
    throw error;
  }
  const credentials = options.password ? `postgres:${encodeURIComponent(options.password)}@` : 'postgres@';
  return {
    port,
    url: `postgres://${credentials}127.0.0.1:${port}/postgres`,
    async restart() {
      await ctl('restart', '-m', 'fast', '-o', `${settings} -c fsync=off -c unix_socket_directories=''`);
    },
    stop,
  };
}
