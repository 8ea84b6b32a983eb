import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeError, ViewkeeperError } from '../errors.ts';
import type { ViewDefinition } from './define-view.ts';

/** Anything a jobs/ file may default-export: a view (sinks join with the write-behind work). */
export interface Definition {
  kind: string;
  name: string;
}

export interface Registry {
  views: Map<string, ViewDefinition>;
  /** Definitions of other kinds (sinks), keyed by name. */
  others: Map<string, Definition>;
  view(name: string): ViewDefinition | undefined;
}

/** Every definition file of a jobs folder that could be loaded, and one line per file that could not. */
export interface LoadedDefinitions {
  definitions: Definition[];
  problems: string[];
}

const LOADABLE = /\.(ts|mts|js|mjs)$/;
const KINDS = ['view', 'sink'];
const EXPECTED = 'expected `export default defineView(…)` or `export default defineSink(…)`';

export function createRegistry(definitions: Definition[]): Registry {
  const views = new Map<string, ViewDefinition>();
  const others = new Map<string, Definition>();
  for (const definition of definitions) {
    const target = definition.kind === 'view' ? views : others;
    if (target.has(definition.name)) {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `two ${definition.kind}s are named ${JSON.stringify(definition.name)}`,
      );
    }
    target.set(definition.name, definition as ViewDefinition);
  }
  return { views, others, view: (name) => views.get(name) };
}

/** `jobs/user.ts` for a file under the working directory, the absolute path otherwise. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

/**
 * The definition files of `dir`, sorted. A folder that is missing or holds none is a configuration
 * problem (`E_CONFIG`, exit 2 in the CLI) with the way out: `viewkeeper init`, or VK_JOBS_DIR.
 */
async function definitionFiles(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const what =
      code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is not a folder' : describeError(error);
    throw new ViewkeeperError(
      'E_CONFIG',
      `jobs folder ${shown(dir)} ${what}: run \`viewkeeper init\` to create one, or set VK_JOBS_DIR to yours`,
      { cause: error },
    );
  }
  const files = entries.filter((file) => LOADABLE.test(file) && !file.endsWith('.d.ts')).sort();
  if (files.length === 0) {
    throw new ViewkeeperError(
      'E_CONFIG',
      `jobs folder ${shown(dir)} holds no definitions (.ts, .mts, .js or .mjs files): run \`viewkeeper init\` for a starter view and sink, or set VK_JOBS_DIR to your folder`,
    );
  }
  return files.map((file) => path.join(dir, file));
}

/** What went wrong importing a definition file, in terms of the file rather than Node's loader. */
function importProblem(file: string, error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const missing =
    code === 'ERR_MODULE_NOT_FOUND' &&
    message?.match(/^Cannot find (package|module) '([^']+)' imported from (.+)$/m);
  if (missing) {
    const [, kind, target, from] = missing;
    const via = from && from !== file ? ` (imported by ${shown(from)})` : '';
    if (kind === 'package' && target === 'viewkeeper') {
      return `${shown(file)}: cannot import "viewkeeper"${via}: install it in this project (npm install viewkeeper)`;
    }
    if (kind === 'package')
      return `${shown(file)}: cannot import package "${target}"${via}: install it or fix the import`;
    return `${shown(file)}: cannot import ${shown(target!)}${via}: no such file; definitions import defineView and defineSink from "viewkeeper"`;
  }
  if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && file.endsWith('ts')) {
    return `${shown(file)}: this Node cannot load TypeScript (type stripping needs Node ≥ 22.18): use Node 24, or JavaScript definitions (viewkeeper init --js)`;
  }
  return `${shown(file)}: ${describeError(error)}`;
}

/** Why a module's exports are not a definition, or undefined when its default export is one. */
function exportProblem(file: string, module: Record<string, unknown>): string | undefined {
  const exported = module.default;
  // A file without import or export syntax loads as CommonJS: its "default" is an empty exports object.
  const empty =
    exported !== null &&
    typeof exported === 'object' &&
    Object.getPrototypeOf(exported) === Object.prototype &&
    Object.keys(exported).length === 0;
  if (exported === undefined || empty) {
    const names = Object.keys(module).filter((name) => name !== 'default' && name !== 'module.exports');
    return names.length === 0
      ? `${shown(file)} exports nothing: ${EXPECTED}`
      : `${shown(file)} has no default export (it exports ${names.join(', ')}): ${EXPECTED}`;
  }
  const definition = exported as Partial<Definition> | null;
  if (
    definition !== null &&
    typeof definition === 'object' &&
    typeof definition.kind === 'string' &&
    KINDS.includes(definition.kind) &&
    typeof definition.name === 'string'
  ) {
    return undefined;
  }
  if (typeof exported === 'function') {
    // `export default defineView<DB>({…})` without the second call is the usual slip.
    return `${shown(file)}: the default export is a function, ${EXPECTED} — note the two calls: defineView<DB>()({ … })`;
  }
  const got = exported === null ? 'null' : Array.isArray(exported) ? 'an array' : typeof exported;
  return `${shown(file)}: the default export is ${got === 'object' ? 'an object that is not a definition' : got}, ${EXPECTED}`;
}

/**
 * Imports every definition file in `dir` (one definition per file, as its default export) and says,
 * one line per file, why any file is not one. Throws only for the folder itself (see definitionFiles).
 */
export async function loadDefinitions(dir: string): Promise<LoadedDefinitions> {
  const definitions: Definition[] = [];
  const problems: string[] = [];
  for (const file of await definitionFiles(dir)) {
    let module: Record<string, unknown>;
    try {
      module = await import(pathToFileURL(file).href);
    } catch (error) {
      problems.push(importProblem(file, error));
      continue;
    }
    const problem = exportProblem(file, module);
    if (problem) problems.push(problem);
    else definitions.push(module.default as Definition);
  }
  return { definitions, problems };
}

/**
 * Loads `dir` for the daemon and the CLI: a file that fails to import or exports something else
 * stops start-up with the file and the reason (`E_VIEW_DEFINITION`).
 */
export async function loadRegistry(dir: string): Promise<Registry> {
  const { definitions, problems } = await loadDefinitions(dir);
  if (problems.length > 0) throw new ViewkeeperError('E_VIEW_DEFINITION', problems[0]!);
  try {
    return createRegistry(definitions);
  } catch (error) {
    throw new ViewkeeperError('E_VIEW_DEFINITION', `${shown(dir)}: ${describeError(error)}`, {
      cause: error,
    });
  }
}
