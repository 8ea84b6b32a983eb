import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from './cli.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** Absolute import path of the library surface, for view files written by tests. */
export const SRC_INDEX = path.join(REPO, 'src/index.ts');
export const REPO_JOBS = path.join(REPO, 'demo', 'jobs');

/**
 * A jobs folder for one test, inside the repository (under the git-ignored .vitest/) so that view
 * files written there resolve `kysely` and friends from the project's node_modules.
 */
export function createJobsDir(files: Record<string, string>): { dir: string; remove(): void } {
  const dir = path.join(REPO, '.vitest', `jobs-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  for (const [name, source] of Object.entries(files)) writeFileSync(path.join(dir, name), source);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface DaemonProcess {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Settles when the process has exited (and its output streams closed); `at` is Date.now() then. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Resolves once the output contains `pattern`; rejects if the process exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<void>;
  /** Sends `signal` and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `viewkeeper start` as a real OS process with exactly `env` (plus PATH/HOME). */
export function startDaemon(env: Record<string, string>): DaemonProcess {
  const child = spawn(process.execPath, ['--max-semi-space-size=4', CLI, 'start'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('close', (code, signal) => {
      done = true;
      resolve({ code, signal, at: Date.now() });
    }),
  );
  const matches = (pattern: RegExp | string) =>
    typeof pattern === 'string' ? output.includes(pattern) : pattern.test(output);
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!matches(pattern)) {
        if (done) throw new Error(`daemon exited before printing ${pattern}:\n${output}`);
        if (Date.now() > deadline)
          throw new Error(`daemon did not print ${pattern} within ${timeoutMs} ms:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (!done && child.exitCode === null && child.signalCode === null) child.kill(signal);
      return (await exited).code;
    },
  };
}
