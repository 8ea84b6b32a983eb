import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { SRC_INDEX } from '../helpers/daemon.ts';

// Bad jobs folders and definition files, as a user meets them: one line naming the folder or the
// file and what to do. All of these fail before any connection, so they need no services.

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'vk-jobs-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

const EXPECTED = 'expected `export default defineView(…)` or `export default defineSink(…)`';

async function folder(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(dir, file), text);
  return dir;
}

async function oneLine(args: string[], jobsDir: string): Promise<{ code: number | null; line: string }> {
  const result = await runCli(args, { VK_JOBS_DIR: jobsDir, DATABASE_URL: 'postgres://127.0.0.1:1/none' });
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(result.stdout).toBe('');
  return { code: result.code, line: lines[0]! };
}

describe('a jobs folder that is missing or empty', () => {
  it.each(['start', 'check', 'schema'])(
    '%s exits 2 naming the folder and viewkeeper init',
    async (command) => {
      const missing = path.join(root, 'no-such-folder');
      expect(await oneLine([command], missing)).toEqual({
        code: 2,
        line: `viewkeeper ${command}: jobs folder ${missing} does not exist: run \`viewkeeper init\` to create one, or set VK_JOBS_DIR to yours`,
      });
      const empty = await folder('empty', {
        'README.md': '# jobs\n',
        'schema.d.ts': 'export interface Database {}\n',
      });
      expect(await oneLine([command], empty)).toEqual({
        code: 2,
        line: `viewkeeper ${command}: jobs folder ${empty} holds no definitions (.ts, .mts, .js or .mjs files): run \`viewkeeper init\` for a starter view and sink, or set VK_JOBS_DIR to your folder`,
      });
    },
  );
});

describe('a definition file that is not one', () => {
  const library = JSON.stringify(SRC_INDEX);
  it.each([
    [
      'imports the package where it is not installed',
      'user.mts',
      "import { defineView } from 'viewkeeper';\nexport default defineView;\n",
      (file: string) =>
        `${file}: cannot import "viewkeeper": install it in this project (npm install viewkeeper)`,
    ],
    [
      'imports the library from a path that does not resolve',
      'user.ts',
      "import { defineView } from '../../src/index.ts';\nexport default defineView;\n",
      (file: string) =>
        `${file}: cannot import ${path.resolve(path.dirname(file), '../../src/index.ts')}: no such file; definitions import defineView and defineSink from "viewkeeper"`,
    ],
    [
      'exports nothing (ES module)',
      'empty.mts',
      'const unused = 1;\n',
      (file: string) => `${file} exports nothing: ${EXPECTED}`,
    ],
    [
      'is empty (loaded as CommonJS)',
      'empty.ts',
      '',
      (file: string) => `${file} exports nothing: ${EXPECTED}`,
    ],
    [
      'has only named exports',
      'named.mjs',
      'export const view = { kind: "view", name: "named" };\n',
      (file: string) => `${file} has no default export (it exports view): ${EXPECTED}`,
    ],
    [
      'exports defineView itself (one call too few)',
      'curried.mts',
      `import { defineView } from ${library};\nexport default defineView;\n`,
      (file: string) =>
        `${file}: the default export is a function, ${EXPECTED} — note the two calls: defineView<DB>()({ … })`,
    ],
    [
      'exports a number',
      'number.mts',
      'export default 42;\n',
      (file: string) => `${file}: the default export is number, ${EXPECTED}`,
    ],
    [
      'exports an object that is not a definition',
      'object.mts',
      'export default { kind: "widget", name: "w" };\n',
      (file: string) => `${file}: the default export is an object that is not a definition, ${EXPECTED}`,
    ],
  ])('that %s: one line naming the file, exit 1', async (what, file, text, message) => {
    const dir = await folder(what.replaceAll(/\W+/g, '-'), { [file]: text });
    expect(await oneLine(['schema'], dir)).toEqual({
      code: 1,
      line: `viewkeeper schema: ${message(path.join(dir, file))}`,
    });
  });
});
