import { ViewkeeperError } from '../errors.ts';
import { isInt32, show, toInt64String, UUID } from '../wire-values.ts';

/** The types a partial-refresh parameter can have. Values are validated before any SQL runs. */
export type ParamType = 'bigint' | 'integer' | 'text' | 'uuid' | 'boolean';

/** What a view declares: parameter name → type. */
export type ParamSpec = Record<string, ParamType>;

interface ParamTypeMap {
  /** Kept as a decimal string: ids beyond 2^53 stay exact. */
  bigint: string;
  integer: number;
  text: string;
  uuid: string;
  boolean: boolean;
}

/** The validated values a view's query receives for a partial refresh. */
export type ParamValues<P extends ParamSpec> = { [K in keyof P]: ParamTypeMap[P[K]] };

export const MAX_TEXT_PARAM = 1024;

export { show };

function coerce(type: ParamType, value: unknown): ParamTypeMap[ParamType] | undefined {
  switch (type) {
    case 'bigint':
      return toInt64String(value);
    case 'integer': {
      const n = typeof value === 'string' && /^-?\d{1,10}$/.test(value) ? Number(value) : value;
      return isInt32(n) ? n : undefined;
    }
    case 'text':
      return typeof value === 'string' && value.length <= MAX_TEXT_PARAM && !value.includes('\u0000')
        ? value
        : undefined;
    case 'uuid':
      return typeof value === 'string' && UUID.test(value) ? value.toLowerCase() : undefined;
    case 'boolean':
      if (typeof value === 'boolean') return value;
      return value === 'true' ? true : value === 'false' ? false : undefined;
  }
}

const EXPECTED: Record<ParamType, string> = {
  bigint: 'a whole number between -2^63 and 2^63-1 (number or decimal string)',
  integer: 'a 32-bit whole number',
  text: `a string of at most ${MAX_TEXT_PARAM} characters`,
  uuid: 'a UUID string',
  boolean: 'true or false',
};

/**
 * Checks `raw` against the view's declared params: a plain object with exactly the declared names,
 * each of the declared type. Returns normalised values (bigint ids as canonical decimal strings, so
 * `"007"`, `7` and `"7"` are the same refresh). Throws `E_BAD_PARAMS` naming the param and value.
 */
export function validateParams<P extends ParamSpec>(
  view: string,
  spec: P | undefined,
  raw: unknown,
): ParamValues<P> {
  if (spec === undefined || Object.keys(spec).length === 0) {
    throw new ViewkeeperError(
      'E_BAD_PARAMS',
      `view ${JSON.stringify(view)} has no partial refresh, but params ${show(raw)} were given: send no params for a full rebuild`,
    );
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ViewkeeperError(
      'E_BAD_PARAMS',
      `params for view ${JSON.stringify(view)} must be an object, got ${show(raw)}`,
    );
  }
  const given = raw as Record<string, unknown>;
  const extra = Object.keys(given).filter((name) => !Object.hasOwn(spec, name));
  if (extra.length > 0) {
    throw new ViewkeeperError(
      'E_BAD_PARAMS',
      `unknown param ${JSON.stringify(extra[0])} for view ${JSON.stringify(view)}: it takes ${Object.keys(spec).join(', ')}`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [name, type] of Object.entries(spec)) {
    if (!Object.hasOwn(given, name) || given[name] === undefined) {
      throw new ViewkeeperError(
        'E_BAD_PARAMS',
        `missing param ${JSON.stringify(name)} for view ${JSON.stringify(view)}`,
      );
    }
    const value = coerce(type, given[name]);
    if (value === undefined) {
      throw new ViewkeeperError(
        'E_BAD_PARAMS',
        `param ${JSON.stringify(name)} of view ${JSON.stringify(view)} is ${show(given[name])}: expected ${EXPECTED[type]}`,
      );
    }
    out[name] = value;
  }
  return out as ParamValues<P>;
}

/** A stable identity for (view, params): same params in any key order → same string. */
export { refreshDedupId as refreshIdentity } from '../contract.ts';
