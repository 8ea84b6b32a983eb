import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface ThrowawayRedis {
  port: number;
  url: string;
  child: ChildProcess;
  /** Kills the server (SIGKILL) and waits for it to exit. */
  kill(): Promise<void>;
}

/**
 * A private, in-memory `redis-server` on a loopback port of its own: the test suite's own server
 * (global-setup.ts), and tests that stop, restart or password-protect Redis. A developer's Redis on
 * 6379 is never touched. Resolves once it accepts connections. `args` are extra server flags
 * (`['--requirepass', 'secret']`).
 */
export async function startThrowawayRedis(port?: number, args: string[] = []): Promise<ThrowawayRedis> {
  const chosen = port ?? (await freePort());
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(chosen),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.on('error', (error) => {
    output += String(error);
  });
  const deadline = Date.now() + 5000;
  while (!/Ready to accept connections/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`throwaway redis-server on ${chosen} did not start: ${output.slice(-500)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Output is only read until ready; keep draining so a chatty server never blocks on a full pipe.
  child.stdout!.resume();
  return {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
