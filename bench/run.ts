// Runs one bench: `node bench/run.ts <name> [args]` (or `npm run bench -- <name> [args]`) runs
// bench/<name>.ts with the args in a child process. Without a name, lists the benches.

import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('.', import.meta.url));

const benches = readdirSync(DIR)
  .filter((file) => file.endsWith('.ts') && file !== 'run.ts')
  .map((file) => file.slice(0, -'.ts'.length))
  .sort();

/** The first sentence of a bench's header comment, on one line. */
function summary(name: string): string {
  const lines = readFileSync(path.join(DIR, `${name}.ts`), 'utf8').split('\n');
  const comment: string[] = [];
  for (const line of lines) {
    if (!line.startsWith('//') || line.trim() === '//') break;
    comment.push(line.replace(/^\/\/\s*/, ''));
  }
  const text = comment.join(' ');
  const sentence = (/^(.*?)\.(\s|$)/.exec(text)?.[1] ?? text).trim();
  return sentence.length > 100 ? `${sentence.slice(0, 99)}…` : sentence;
}

function list(write: (line: string) => void): void {
  write('Usage: node bench/run.ts <name> [args]   (npm run bench -- <name> [args])');
  write('');
  write('Benches:');
  const width = Math.max(...benches.map((name) => name.length));
  for (const name of benches) write(`  ${name.padEnd(width)}  ${summary(name)}`);
}

const [name, ...args] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === '-h') {
  list((line) => process.stdout.write(`${line}\n`));
} else if (!benches.includes(name)) {
  process.stderr.write(`bench/run.ts: no bench named ${JSON.stringify(name)}\n\n`);
  list((line) => process.stderr.write(`${line}\n`));
  process.exitCode = 2;
} else {
  const child = spawn(process.execPath, [path.join(DIR, `${name}.ts`), ...args], { stdio: 'inherit' });
  // Ctrl-C reaches the child through the terminal's process group; a SIGTERM sent to this process only
  // is passed on.
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 1 : 0);
  });
}
