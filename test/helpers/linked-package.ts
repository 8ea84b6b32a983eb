import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SOURCES = fileURLToPath(new URL('../../src/index.ts', import.meta.url));

/**
 * Makes `import … from 'viewkeeper'` in a project folder outside the repository load this checkout's
 * sources, as the jobs `viewkeeper init` writes expect: `node_modules/viewkeeper` re-exports
 * src/index.ts, which lies outside node_modules, so Node strips its types. (The packed and
 * installed package, built into dist/, is what the packaging test runs.)
 */
export async function linkSources(project: string): Promise<void> {
  const dir = path.join(project, 'node_modules', 'viewkeeper');
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'viewkeeper', type: 'module', exports: { '.': './index.js' } }),
  );
  await writeFile(
    path.join(dir, 'index.js'),
    `export * from ${JSON.stringify(pathToFileURL(SOURCES).href)};\n`,
  );
}

/** The `paths` a project's tsconfig needs to typecheck against this checkout's sources. */
export const SOURCE_PATHS = { viewkeeper: [SOURCES] };
