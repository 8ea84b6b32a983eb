import { ViewkeeperError } from '../errors.ts';
import { parseKeyTemplate } from '../views/key-template.ts';
import { type ParamSpec, validateParams } from '../views/params.ts';

/** How a view lives in Redis (the same shapes as `defineView`). */
export type ClientViewShape = 'hash' | 'value' | 'zset' | 'json' | 'list' | 'set';

/**
 * What the client needs to know about a view: its shape and key template. A `ViewDefinition` from
 * `jobs/` fits as it is (its `key.source` is read), and so does a plain `{ shape, key }`.
 */
export interface ViewDescriptor {
  shape: ClientViewShape;
  /** `user_stats:{user_id}`, or a parsed template with the pattern as `source`. */
  key: string | { readonly source: string };
  /**
   * The view's refresh params and their types (a `ViewDefinition` carries them): a miss with params
   * the daemon would reject then fails at once with the reason, instead of enqueueing a refresh.
   */
  params?: ParamSpec;
}

export interface NamedViewDescriptor extends ViewDescriptor {
  name: string;
}

export type ViewMap = Record<string, ViewDescriptor>;

/** Names of the views in `V` whose shape can be `S`: `client.zset()` only accepts zset views. */
export type ViewsOfShape<V extends ViewMap, S extends ClientViewShape> = {
  [K in keyof V]: S extends V[K]['shape'] ? K : never;
}[keyof V] &
  string;

/** Values that fill a key template's placeholders. */
export type ViewParams = Record<string, string | number | bigint | boolean>;

export interface ResolvedView {
  name: string;
  shape: ClientViewShape;
  source: string;
  placeholders: string[];
  /** The Redis key for `params`; throws `E_BAD_PARAMS` when one is missing. */
  keyFor(params: ViewParams | undefined): string;
  /** Throws `E_BAD_PARAMS`, as the daemon would, when `params` do not fit the view's declared params. */
  checkRefreshParams(params: ViewParams): void;
}

const SHAPES: ClientViewShape[] = ['hash', 'value', 'zset', 'json', 'list', 'set'];
/** Shapes with one key per row or group, named by the params. */
const KEYED: ClientViewShape[] = ['hash', 'value', 'list', 'set'];

function resolveOne(name: string, descriptor: ViewDescriptor): ResolvedView {
  const source = typeof descriptor?.key === 'string' ? descriptor.key : descriptor?.key?.source;
  if (!SHAPES.includes(descriptor?.shape) || typeof source !== 'string' || source.length === 0) {
    throw new ViewkeeperError(
      'E_CONFIG',
      `client view ${JSON.stringify(name)} needs { shape: ${SHAPES.join('|')}, key: 'template:{param}' }, got ${JSON.stringify(descriptor)}`,
    );
  }
  // The daemon's own template parser: the client builds exactly the keys the daemon writes.
  let template: ReturnType<typeof parseKeyTemplate>;
  try {
    template = parseKeyTemplate(source, `client view ${JSON.stringify(name)}: key`);
  } catch (error) {
    throw new ViewkeeperError('E_CONFIG', (error as Error).message);
  }
  const placeholders = template.columns;
  const declared = descriptor.params;
  const paramSpec =
    declared && typeof declared === 'object' && Object.keys(declared).length > 0 ? declared : undefined;
  const keyed = KEYED.includes(descriptor.shape);
  if (keyed !== placeholders.length > 0) {
    throw new ViewkeeperError(
      'E_CONFIG',
      `client view ${JSON.stringify(name)}: a ${descriptor.shape} view ${keyed ? 'needs a key template with a {param}' : 'lives at one fixed key'}, got ${JSON.stringify(source)}`,
    );
  }
  return {
    name,
    shape: descriptor.shape,
    source,
    placeholders,
    keyFor(params) {
      const missing = placeholders.find((placeholder) => {
        const value = params?.[placeholder];
        return value === undefined || value === null || value === '';
      });
      if (missing !== undefined) {
        throw new ViewkeeperError(
          'E_BAD_PARAMS',
          `view ${name} needs param ${JSON.stringify(missing)} for its key ${source}; got ${JSON.stringify(params ?? {}, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`,
        );
      }
      return template.fill(params ?? {});
    },
    checkRefreshParams(params) {
      if (paramSpec) validateParams(name, paramSpec, params);
    },
  };
}

/** Validates the `views` option (a map by name, or a list of named definitions) once, at construction. */
export function resolveViews(
  views: ViewMap | readonly NamedViewDescriptor[] | undefined,
): Map<string, ResolvedView> {
  const out = new Map<string, ResolvedView>();
  if (!views) return out;
  const entries: [string, ViewDescriptor][] = Array.isArray(views)
    ? views.map((view: NamedViewDescriptor) => [view?.name, view])
    : Object.entries(views as ViewMap);
  for (const [name, descriptor] of entries) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new ViewkeeperError('E_CONFIG', `a client view has no name: ${JSON.stringify(descriptor)}`);
    }
    out.set(name, resolveOne(name, descriptor));
  }
  return out;
}
