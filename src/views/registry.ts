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

const LOADABLE = /\.(ts|mts|js|mjs)$/;

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

/**
 * Imports every definition file in `dir` (one definition per file, as its default export). A file
 * that fails to import or exports something else stops start-up with the file and the reason.
 */
export async function loadRegistry(dir: string): Promise<Registry> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((file) => LOADABLE.test(file) && !file.endsWith('.d.ts')).sort();
  } catch (error) {
    throw new ViewkeeperError(
      'E_VIEW_DEFINITION',
      `cannot read jobs folder ${dir} (VK_JOBS_DIR): ${describeError(error)}`,
      {
        cause: error,
      },
    );
  }
  const definitions: Definition[] = [];
  for (const file of entries) {
    const full = path.join(dir, file);
    let exported: unknown;
    try {
      exported = (await import(pathToFileURL(full).href)).default;
    } catch (error) {
      throw new ViewkeeperError('E_VIEW_DEFINITION', `${full}: ${describeError(error)}`, { cause: error });
    }
    const definition = exported as Partial<Definition> | undefined;
    if (!definition || typeof definition.kind !== 'string' || typeof definition.name !== 'string') {
      throw new ViewkeeperError(
        'E_VIEW_DEFINITION',
        `${full}: the default export must be a defineView(…) or defineSink(…) result, got ${typeof exported}`,
      );
    }
    definitions.push(definition as Definition);
  }
  try {
    return createRegistry(definitions);
  } catch (error) {
    throw new ViewkeeperError('E_VIEW_DEFINITION', `${dir}: ${describeError(error)}`, { cause: error });
  }
}
