import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../bin/viewkeeper.js', import.meta.url));
/** The demo's own commands (migrate with the demo tables, seed). */
export const DEMO_CLI = fileURLToPath(new URL('../../demo/cli.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs `viewkeeper …args` as a real process with only `env` (plus PATH/HOME) in its environment, so the
 * parent's DATABASE_URL and friends never leak in. Killed after `timeoutMs`.
 */
export function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
  entry = CLI,
): Promise<CliResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** `runCli` for the demo's commands. */
export function runDemoCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<CliResult> {
  return runCli(args, env, timeoutMs, DEMO_CLI);
}
