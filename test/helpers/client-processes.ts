import { type ChildProcess, fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { ClientOptions } from '../../src/client/options.ts';
import type { WorkerReply, WorkerRequest } from './client-worker.ts';

const WORKER = fileURLToPath(new URL('./client-worker.ts', import.meta.url));

export interface ClientProcess {
  pid: number;
  child: ChildProcess;
  /** Sends one request; resolves with its reply (rejects if the process dies first). */
  call(request: WorkerRequest): Promise<WorkerReply>;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

/** Forks a process that creates a client with `options` (JSON-able) and answers requests over IPC. */
export async function startClientProcess(options: ClientOptions, counterUrl: string): Promise<ClientProcess> {
  const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let next = 0;
  const pending = new Map<number, { resolve(reply: WorkerReply): void; reject(error: Error): void }>();
  const exited = new Promise<void>((resolve) =>
    child.on('exit', () => {
      for (const waiter of pending.values()) waiter.reject(new Error(`client process ${child.pid} exited`));
      pending.clear();
      resolve();
    }),
  );
  child.on('message', (reply: WorkerReply) => {
    pending.get(reply.id)?.resolve(reply);
    pending.delete(reply.id);
  });
  const send = (message: object) =>
    new Promise<WorkerReply>((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      child.send({ id, ...message });
    });
  const init = await send({ init: options, counterUrl });
  if (!init.ok) throw new Error(`client process failed to start: ${init.error}`);
  return {
    pid: child.pid!,
    child,
    call: (request) => send(request),
    exited,
    kill: (signal = 'SIGKILL') => {
      child.kill(signal);
    },
  };
}

/** Closes the clients (politely) and makes sure every process is gone. */
export async function stopClientProcesses(processes: ClientProcess[]): Promise<void> {
  await Promise.all(
    processes.map(async (proc) => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        await Promise.race([
          proc.call({ op: 'close' }).catch(() => {}),
          new Promise((r) => setTimeout(r, 3000)),
        ]);
        proc.child.disconnect?.();
        proc.kill('SIGKILL');
      }
      await proc.exited;
    }),
  );
}

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
 * A private, in-memory `redis-server` on its own port, for tests that stop Redis: the shared 6379 is
 * never touched. Resolves once it accepts connections.
 */
export async function startThrowawayRedis(port?: number): Promise<ThrowawayRedis> {
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
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  const deadline = Date.now() + 5000;
  while (!/Ready to accept connections/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`throwaway redis-server on ${chosen} did not start: ${output.slice(-500)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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
