import { type ChildProcess, fork } from 'node:child_process';
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
