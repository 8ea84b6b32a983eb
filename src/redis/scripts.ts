import type { RedisConnection } from './connections.ts';
import { defineScripts, type LuaScripts } from './lua.ts';

// The refresh engine's scripts: one Lua file per atomic operation; each file's header documents its
// KEYS and ARGV. Loaded by the one loader (lua.ts).
const at = (file: string) => new URL(`./scripts/${file}`, import.meta.url);
const ENGINE_SCRIPTS = defineScripts({
  vkTakeLocks: { file: at('take-locks.lua'), keys: 'variable' },
  vkTakeSeq: { file: at('take-seq.lua'), keys: 1 },
  vkExtendLock: { file: at('extend-lock.lua'), keys: 'variable' },
  vkFinishRun: { file: at('finish-run.lua'), keys: 'variable' },
  vkFailRun: { file: at('fail-run.lua'), keys: 'variable' },
  vkWriteRows: { file: at('write-rows.lua'), keys: 2 },
  vkDeleteRows: { file: at('delete-rows.lua'), keys: 2 },
  vkSweepRows: { file: at('sweep-rows.lua'), keys: 2 },
  vkWriteMembers: { file: at('write-members.lua'), keys: 3 },
  vkSwapMembers: { file: at('swap-members.lua'), keys: 4 },
  vkSwapValue: { file: at('swap-value.lua'), keys: 2 },
  vkWriteGroups: { file: at('write-groups.lua'), keys: 3 },
  vkSweepGroups: { file: at('sweep-groups.lua'), keys: 3 },
  vkAppendList: { file: at('append-list.lua'), keys: 3 },
  // Redis Cluster: the release step of finish-run and fail-run for locks in many slots (run-lock.ts).
  vkReleaseLocks: { file: at('release-locks.lua'), keys: 'variable' },
});

/** Calls one of the engine's scripts. */
export type Scripts = ReturnType<typeof ENGINE_SCRIPTS.load>;
export type ScriptName = Scripts extends LuaScripts<infer Name> ? Name : never;

/** Registers the scripts on `redis` (idempotent) and returns a typed caller. */
export function loadScripts(redis: RedisConnection): Scripts {
  return ENGINE_SCRIPTS.load(redis);
}
