import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// `viewkeeper start` as a child process, so its memory can be read from /proc and it has an event
// loop of its own (the bench process only produces and waits).

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  /** stdout + stderr so far (LOG_LEVEL=warn keeps it short). */
  output(): string;
  /** Rejects when the daemon exits before `promise` settles: a crashed daemon fails the bench fast. */
  guard<T>(promise: Promise<T>): Promise<T>;
  /** SIGTERM, then SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * `root`: the checkout whose bin/viewkeeper.js runs (another one to A/B a patched copy). `nodeFlags`:
 * flags for node itself (some, like --trace-gc, are refused in NODE_OPTIONS).
 */
export function startDaemon(
  env: Record<string, string>,
  root = ROOT,
  // The flags the shipped entry points use (bin/viewkeeper.js shebang, Dockerfile, compose).
  nodeFlags: string[] = ['--max-semi-space-size=4'],
): DaemonProcess {
  const child = spawn(process.execPath, [...nodeFlags, path.join(root, 'bin/viewkeeper.js'), 'start'], {
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  if (child.pid === undefined) throw new Error('could not spawn the daemon');
  return {
    child,
    pid: child.pid,
    output: () => output,
    guard(promise) {
      return Promise.race([
        promise,
        exited.then(({ code, signal }) => {
          throw new Error(`daemon exited (code ${code}, signal ${signal}):\n${output}`);
        }),
      ]);
    },
    async stop(timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resident set size and its high-water mark (VmHWM) of `pid`, in MB. */
export function readRss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Samples VmRSS of `pid` every `everyMs` until stopped; returns the peak seen. */
export function sampleRss(pid: number, everyMs = 50): { stop(): { peak: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const take = () => {
    try {
      peak = Math.max(peak, readRss(pid).rss);
      samples += 1;
    } catch {
      // the process is gone; the caller notices through guard()
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peak, samples };
    },
  };
}
