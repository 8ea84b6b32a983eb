import { readFileSync } from 'node:fs';
import type { ChainableCommander, Redis } from 'ioredis';

// One Lua file per atomic operation; each file's header documents its KEYS and ARGV.
const SCRIPTS = {
  vkAcquireRun: { file: 'acquire-run.lua', keys: 'variable' },
  vkExtendLock: { file: 'extend-lock.lua', keys: 'variable' },
  vkFinishRun: { file: 'finish-run.lua', keys: 'variable' },
  vkFailRun: { file: 'fail-run.lua', keys: 'variable' },
  vkWriteRows: { file: 'write-rows.lua', keys: 2 },
  vkDeleteRows: { file: 'delete-rows.lua', keys: 2 },
  vkSweepRows: { file: 'sweep-rows.lua', keys: 2 },
  vkWriteMembers: { file: 'write-members.lua', keys: 3 },
  vkSwapMembers: { file: 'swap-members.lua', keys: 4 },
  vkSwapValue: { file: 'swap-value.lua', keys: 2 },
  vkWriteGroups: { file: 'write-groups.lua', keys: 3 },
  vkSweepGroups: { file: 'sweep-groups.lua', keys: 3 },
  vkAppendList: { file: 'append-list.lua', keys: 3 },
} as const satisfies Record<string, { file: string; keys: number | 'variable' }>;

export type ScriptName = keyof typeof SCRIPTS;
type Arg = string | number;
type ScriptFn = (...args: Arg[]) => Promise<unknown>;

/** Calls one of viewkeeper's scripts (EVALSHA, falling back to EVAL once per connection). */
export interface Scripts {
  run<T = unknown>(name: ScriptName, keys: string[], args: Arg[]): Promise<T>;
  /** Queues the script on a pipeline or multi. */
  queue(pipeline: ChainableCommander, name: ScriptName, keys: string[], args: Arg[]): void;
}

let sources: Map<ScriptName, string> | undefined;

function readSources(): Map<ScriptName, string> {
  sources ??= new Map(
    (Object.keys(SCRIPTS) as ScriptName[]).map((name) => [
      name,
      readFileSync(new URL(`./scripts/${SCRIPTS[name].file}`, import.meta.url), 'utf8'),
    ]),
  );
  return sources;
}

/** Registers the scripts on `redis` (idempotent) and returns a typed caller. */
export function loadScripts(redis: Redis): Scripts {
  const commands = redis as unknown as Record<string, ScriptFn>;
  for (const [name, lua] of readSources()) {
    if (typeof commands[name] !== 'function') {
      const keys = SCRIPTS[name].keys;
      // 'variable': the caller passes the number of keys first (ioredis' convention).
      redis.defineCommand(name, { numberOfKeys: keys === 'variable' ? undefined : keys, lua });
    }
  }
  const head = (name: ScriptName, keys: string[]): Arg[] =>
    SCRIPTS[name].keys === 'variable' ? [keys.length, ...keys] : keys;
  return {
    run<T>(name: ScriptName, keys: string[], args: Arg[]) {
      return commands[name]!.call(redis, ...head(name, keys), ...args) as Promise<T>;
    },
    queue(pipeline, name, keys, args) {
      (pipeline as unknown as Record<string, (...a: Arg[]) => unknown>)[name]!(...head(name, keys), ...args);
    },
  };
}
