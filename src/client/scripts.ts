import type { Redis } from 'ioredis';
import { defineScripts, type LuaScripts } from '../redis/lua.ts';
import type { ClientRedis } from './connection.ts';

// The client's Lua scripts, one per atomic step of cache-aside; each file's header lists KEYS/ARGV.
// Through the one loader (redis/lua.ts, which imports no daemon code). They take a variable number
// of keys: the key count is passed on every call.
const at = (file: string) => new URL(`./scripts/${file}`, import.meta.url);
const CLIENT_SCRIPTS = defineScripts({
  vkcRead: { file: at('cache-read.lua'), keys: 'variable' },
  vkcAcquire: { file: at('cache-acquire.lua'), keys: 'variable' },
  vkcWrite: { file: at('cache-write.lua'), keys: 'variable' },
  vkcRelease: { file: at('lock-release.lua'), keys: 'variable' },
  vkcExtend: { file: at('lock-extend.lua'), keys: 'variable' },
  vkcInvalidateKey: { file: at('invalidate-key.lua'), keys: 'variable' },
  vkcInvalidateTag: { file: at('invalidate-tag.lua'), keys: 'variable' },
  vkcTagVersions: { file: at('tag-versions.lua'), keys: 'variable' },
});

/** `run` (replies as strings/numbers) and `runBuffer` (bulk replies as Buffers, for encoded entries). */
export type ClientScripts = ReturnType<typeof CLIENT_SCRIPTS.load>;
export type ClientScript = ClientScripts extends LuaScripts<infer Name> ? Name : never;

/**
 * Registers the client scripts on a connection (EVALSHA, falling back to EVAL). A Cluster has the
 * same defineCommand and routes each call by its first key; the loader is typed for one server only.
 */
export function loadClientScripts(redis: ClientRedis): ClientScripts {
  return CLIENT_SCRIPTS.load(redis as Redis);
}
