import type { Redis } from 'ioredis';
import { defineScripts, type LuaScripts } from './lua.ts';

// The refresh engine's scripts: one Lua file per atomic operation; each file's header documents its
// KEYS and ARGV. Loaded by the one loader (lua.ts).
const at = (file: string) => new URL(`./scripts/${file}`, import.meta.url);
const ENGINE_SCRIPTS = defineScripts({
  vkAcquireRun: { file: at('acquire-run.lua'), keys: 'variable' },
  vkExtendLock: { file: at('extend-lock.lua'), keys: 'variable' },
  vkFinishRun: { file: at('finish-run.lua'), keys: 'variable' },
  vkFailRun: { file: at('fail-run.lua'), keys: 'variable' },
  vkWriteRows: { file: at('write-rows.lua'), keys: 2 },
  vkDeleteRows: { file: at('delete-rows.lua'), keys: 2 },
  vkSweepRows: { file: at('sweep-rows.lua'), keys: 2 },
  vkWriteMembers: { file: at('write-members.lua'), keys: 3 },
  vkSwapMembers: { file: at('swap-members.lua'), keys: 4 },
  vkSwapValue: { file: at('swap-value.lua'), keys: 2 },
});

/** Calls one of the engine's scripts. */
export type Scripts = ReturnType<typeof ENGINE_SCRIPTS.load>;
export type ScriptName = Scripts extends LuaScripts<infer Name> ? Name : never;

/** Registers the scripts on `redis` (idempotent) and returns a typed caller. */
export function loadScripts(redis: Redis): Scripts {
  return ENGINE_SCRIPTS.load(redis);
}
