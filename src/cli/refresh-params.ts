import { MAX_BULK_PARAMS } from '../contract.ts';
import { usageError } from './command.ts';

// `refresh` flags → the params of one job. `--param name=value` (repeatable, one per name) narrows a
// single-key refresh; `--key` (repeatable, one per key) makes a bulk request. A name given twice to
// --param used to let the last value win silently; it is now a usage error that points to --key.

type Params = Record<string, unknown>;

function splitPair(flag: string, pair: string): [string, string] {
  const at = pair.indexOf('=');
  if (at <= 0) throw usageError(`${flag} ${JSON.stringify(pair)} is invalid: expected name=value`);
  return [pair.slice(0, at), pair.slice(at + 1)];
}

function oneKey(pairs: string[]): Params {
  const params: Params = {};
  for (const pair of pairs) {
    const [name, value] = splitPair('--param', pair);
    if (Object.hasOwn(params, name)) {
      throw usageError(
        `--param ${name} is given twice (${JSON.stringify(params[name])} and ${JSON.stringify(value)}): one --param per name; for several keys give one --key each, e.g. --key ${name}=${params[name]} --key ${name}=${value}`,
      );
    }
    params[name] = value;
  }
  return params;
}

/** One `--key`: `name=value` for a view with one param, or a JSON object for any view. */
function keyOf(text: string): Params {
  if (!text.trimStart().startsWith('{')) {
    const [name, value] = splitPair('--key', text);
    return { [name]: value };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw usageError(
      `--key ${JSON.stringify(text)} is not valid JSON: expected name=value or {"name": value, …}`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw usageError(`--key ${JSON.stringify(text)} must be a JSON object like {"user_id": 42}`);
  }
  return parsed as Params;
}

/**
 * The params of a `refresh` request: undefined (full rebuild), one key's (from `--param`), or a list
 * (from `--key`, a bulk request). Throws E_USAGE on a malformed flag, a name repeated in `--param`,
 * both flags at once, or more keys than one bulk request takes.
 */
export function refreshParams(
  param: string[] | undefined,
  key: string[] | undefined,
): Params | Params[] | undefined {
  const pairs = param ?? [];
  const keys = key ?? [];
  if (pairs.length > 0 && keys.length > 0) {
    throw usageError('give --param (one key) or --key (one or more keys), not both');
  }
  if (keys.length > MAX_BULK_PARAMS) {
    throw usageError(`${keys.length} --key flags: one bulk request takes at most ${MAX_BULK_PARAMS}`);
  }
  if (keys.length > 0) return keys.map(keyOf);
  return pairs.length > 0 ? oneKey(pairs) : undefined;
}
