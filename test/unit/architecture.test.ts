import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// The arrows of DESIGN.md's architecture, checked on the source instead of hoped for (STYLE habit
// 14, in the spirit of bullmq's circular-import check): the imports of every file under src/ are
// read as text, resolved to files, and grouped by top-level folder.

const SRC = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

interface Import {
  target: string;
  typeOnly: boolean;
}

// `import … from '…'`, `export … from '…'` and `import('…')`; comments and template literals are
// dropped first so that an example in a doc comment, or a file that `viewkeeper init` writes, is not
// taken for an import.
const IMPORT =
  /(?:^|\n)\s*(import|export)\s+(type\s+)?[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '')
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, '``');
  const found: Import[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const specifier = match[3] ?? match[4]!;
    if (!specifier.startsWith('.')) continue;
    found.push({ target: path.resolve(path.dirname(file), specifier), typeOnly: match[2] !== undefined });
  }
  return found;
}

/** The top-level folder under src/ (`views`, `redis`, …), or the file name for files at the root. */
function folderOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0]!;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file)]));

/** Folder → folders it imports (type imports included: a type arrow is still an arrow). */
function folderGraph(): Map<string, Set<string>> {
  const folders = new Map<string, Set<string>>();
  for (const [file, imports] of graph) {
    const from = folderOf(file);
    const targets = folders.get(from) ?? new Set<string>();
    folders.set(from, targets);
    for (const { target } of imports) {
      const to = folderOf(target);
      if (to !== from && !to.endsWith('.ts')) targets.add(to);
    }
  }
  return folders;
}

/** Every folder cycle, each as a path `a → b → … → a`. */
function folderCycles(folders: Map<string, Set<string>>): string[] {
  const cycles: string[] = [];
  for (const start of folders.keys()) {
    const walk = (at: string, trail: string[]) => {
      for (const next of folders.get(at) ?? []) {
        if (next === start) cycles.push([...trail, start].join(' → '));
        // Only cycles through folders "after" the start, so each cycle is reported once.
        else if (next > start && !trail.includes(next)) walk(next, [...trail, next]);
      }
    };
    walk(start, [start]);
  }
  return cycles;
}

/** Files reached from `entry` through runtime (non-type) imports. */
function runtimeClosure(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...entries];
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const { target, typeOnly } of graph.get(file) ?? []) if (!typeOnly) stack.push(target);
  }
  return seen;
}

function importersOf(fromFolder: string, toFolder: string): string[] {
  return [...graph]
    .filter(([file]) => folderOf(file) === fromFolder)
    .flatMap(([file, imports]) =>
      imports
        .filter(({ target }) => folderOf(target) === toFolder)
        .map(({ target }) => `${path.relative(SRC, file)} → ${path.relative(SRC, target)}`),
    );
}

describe('import arrows of src/', () => {
  it('reads the imports of every source file', () => {
    // A parser that found nothing would make every other test here pass vacuously.
    expect(files.length).toBeGreaterThan(50);
    expect(graph.get(path.join(SRC, 'daemon/daemon.ts'))!.length).toBeGreaterThan(5);
    for (const imports of graph.values()) {
      for (const { target } of imports) expect(files, `unresolved import ${target}`).toContain(target);
    }
  });

  it('no folder imports itself round a cycle', () => {
    expect(folderCycles(folderGraph())).toEqual([]);
  });

  it('storage does not reach up: src/redis and src/db import nothing from src/views', () => {
    expect([...importersOf('redis', 'views'), ...importersOf('db', 'views')]).toEqual([]);
  });

  it('the client loads no daemon code', () => {
    const entries = files.filter((file) => folderOf(file) === 'client');
    const daemonFolders = ['daemon', 'db', 'scheduler', 'cli', 'sinks', 'queues', 'views'];
    // What the client may share with the daemon: wire-level helpers with no I/O of their own.
    const shared = new Set(
      [
        'queues/factories.ts',
        'views/params.ts',
        'views/key-template.ts',
        'sinks/fields.ts',
        'queues/refresh-payload.ts',
      ].map((file) => path.join(SRC, file)),
    );
    const loaded = [...runtimeClosure(entries)]
      .filter((file) => daemonFolders.includes(folderOf(file)) && !shared.has(file))
      .map((file) => path.relative(SRC, file));
    expect(loaded).toEqual([]);
  });
});
