import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

// The client's Lua scripts, one per atomic step of cache-aside; each file's header lists KEYS/ARGV.
// Kept apart from the daemon's scripts (src/redis/scripts.ts): the client imports no daemon code.
const SCRIPTS = {
  vkcRead: 'cache-read.lua',
  vkcAcquire: 'cache-acquire.lua',
  vkcWrite: 'cache-write.lua',
  vkcRelease: 'lock-release.lua',
  vkcExtend: 'lock-extend.lua',
  vkcInvalidateKey: 'invalidate-key.lua',
  vkcInvalidateTag: 'invalidate-tag.lua',
} as const;

export type ClientScript = keyof typeof SCRIPTS;
type Arg = string | number | Buffer;
type ScriptFn = (numberOfKeys: number, ...args: Arg[]) => Promise<unknown>;

let sources: Map<ClientScript, string> | undefined;

function readSources(): Map<ClientScript, string> {
  sources ??= new Map(
    (Object.keys(SCRIPTS) as ClientScript[]).map((name) => [
      name,
      readFileSync(new URL(`./scripts/${SCRIPTS[name]}`, import.meta.url), 'utf8'),
    ]),
  );
  return sources;
}

export interface ClientScripts {
  /** Runs a script; replies as strings/numbers. */
  run<T = unknown>(name: ClientScript, keys: string[], args: Arg[]): Promise<T>;
  /** Runs a script; bulk replies as Buffers (for encoded entries). */
  runBuffer<T = unknown>(name: ClientScript, keys: string[], args: Arg[]): Promise<T>;
}

/**
 * Registers the client scripts on a connection (EVALSHA, falling back to EVAL). Scripts take a
 * variable number of keys, so the key count is passed on every call.
 */
export function loadClientScripts(redis: Redis): ClientScripts {
  const commands = redis as unknown as Record<string, ScriptFn>;
  for (const [name, lua] of readSources()) {
    if (typeof commands[name] !== 'function') redis.defineCommand(name, { lua });
  }
  return {
    run<T>(name: ClientScript, keys: string[], args: Arg[]) {
      return commands[name]!.call(redis, keys.length, ...keys, ...args) as Promise<T>;
    },
    runBuffer<T>(name: ClientScript, keys: string[], args: Arg[]) {
      return commands[`${name}Buffer`]!.call(redis, keys.length, ...keys, ...args) as Promise<T>;
    },
  };
}
