// The package as a user gets it: `npm pack` of this repository, installed into a scratch app outside
// it, and the README's code blocks written into that app.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** PATH with this Node (24, from the `node` devDependency) first, as `npx` in the repository has it. */
export function pathWith(nodeBin = path.dirname(process.execPath)): string {
  return `${nodeBin}${path.delimiter}${process.env.PATH ?? ''}`;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (never throws on a non-zero exit); killed after `timeoutMs`. */
/**
 * What npm needs from the environment to reach its registry on this machine: a proxy and the CA
 * that signs it (NODE_EXTRA_CA_CERTS). Without them an install that the cache cannot serve fails
 * with SELF_SIGNED_CERT_IN_CHAIN; nothing else of the test's environment leaks into the app.
 */
function networkEnv(): Record<string, string> {
  const names = [
    'NODE_EXTRA_CA_CERTS',
    'SSL_CERT_FILE',
    'SSL_CERT_DIR',
    'HTTPS_PROXY',
    'HTTP_PROXY',
    'NO_PROXY',
  ];
  const env: Record<string, string> = {};
  for (const name of names) {
    for (const variant of [name, name.toLowerCase()]) {
      const value = process.env[variant];
      if (value !== undefined) env[variant] = value;
    }
  }
  return env;
}

export function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        cwd: options.cwd,
        env: { PATH: pathWith(), HOME: process.env.HOME ?? '/tmp', ...networkEnv(), ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export interface PackedFile {
  path: string;
}

export interface ScratchApp {
  dir: string;
  tarball: string;
  files: string[];
  /** Absolute path of an installed binary (`node_modules/.bin/<name>`). */
  bin(name: string): string;
  remove(): void;
}

/**
 * Packs the repository (its `prepack` builds dist/) and installs the tarball, plus `extra` packages,
 * into a fresh app in the system's temp folder: outside the repository, so nothing resolves from it.
 */
export async function installPackedApp(extra: string[] = []): Promise<ScratchApp> {
  const root = mkdtempSync(path.join(tmpdir(), 'vk-package-'));
  try {
    const packed = await run('npm', ['pack', '--json', '--pack-destination', root], { cwd: REPO });
    if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr.slice(-2000)}`);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      files: PackedFile[];
    }[];
    const tarball = path.join(root, info!.filename);
    const dir = path.join(root, 'app');
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'package.json'),
      `${JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }, null, 2)}\n`,
    );
    const installed = await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, ...extra],
      { cwd: dir, timeoutMs: 300_000 },
    );
    if (installed.code !== 0) throw new Error(`npm install failed: ${installed.stderr.slice(-2000)}`);
    return {
      dir,
      tarball,
      files: info!.files.map((file) => file.path),
      bin: (name) => path.join(dir, 'node_modules', '.bin', name),
      remove: () => rmSync(root, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

export interface ReadmeBlock {
  section: string;
  lang: string;
  /** The `// file: …` (or `-- file: …`) path the block names on its first line, if any. */
  file: string | undefined;
  code: string;
}

/**
 * Fenced code blocks of the README's `## <section>` sections, and every block elsewhere that names
 * its file (`// file: …`), in order.
 */
export function readmeBlocks(sections: string[]): ReadmeBlock[] {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const blocks: ReadmeBlock[] = [];
  let section = '';
  let open: { lang: string; lines: string[] } | undefined;
  for (const line of readme.split('\n')) {
    if (open) {
      if (line.startsWith('```')) {
        const code = `${open.lines.join('\n')}\n`;
        const file = /^(?:\/\/|--) file: (\S+)/.exec(open.lines[0] ?? '')?.[1];
        if (sections.includes(section) || file) blocks.push({ section, lang: open.lang, file, code });
        open = undefined;
      } else {
        open.lines.push(line);
      }
    } else if (line.startsWith('## ')) {
      section = line.slice(3).trim();
    } else if (line.startsWith('```')) {
      open = { lang: line.slice(3).trim(), lines: [] };
    }
  }
  return blocks;
}

/** Writes `code` to `file` under `dir`, creating folders. */
export function writeInto(dir: string, file: string, code: string): string {
  const full = path.join(dir, file);
  mkdirSync(path.dirname(full), { recursive: true });
  writeFileSync(full, code);
  return full;
}

export interface RunningProcess {
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts a long-running command (the daemon) and collects its output. */
export function startProcess(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string> },
): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { PATH: pathWith(), HOME: process.env.HOME ?? '/tmp', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    output: () => output,
    async waitFor(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (child.exitCode !== null)
          throw new Error(`exited (${child.exitCode}) before ${pattern}: ${output}`);
        if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
