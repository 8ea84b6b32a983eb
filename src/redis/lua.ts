import { readFileSync } from 'node:fs';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';

// The one Lua script loader. Every owner (the refresh engine's writers, the client's cache-aside,
// the write-behind refresh backlog, coverage, chunked rebuilds) declares a table of its scripts —
// one .lua file per atomic operation, each with a header listing its KEYS and ARGV — and gets a
// typed caller per connection. Scripts are registered with ioredis' defineCommand: EVALSHA, falling
// back to EVAL once per connection. Depends on nothing but ioredis, so the client may import it.

/** One script: its file, and how many KEYS it takes (`'variable'`: given on every call). */
export interface ScriptSpec {
  file: URL;
  keys: number | 'variable';
}

type Arg = string | number | Buffer;
type ScriptFn = (...args: Arg[]) => Promise<unknown>;

/** Calls the scripts of one table on one connection. */
export interface LuaScripts<Name extends string> {
  run<T = unknown>(name: Name, keys: string[], args: Arg[]): Promise<T>;
  /** Like `run`, with bulk replies as Buffers (for binary values). */
  runBuffer<T = unknown>(name: Name, keys: string[], args: Arg[]): Promise<T>;
  /** Queues the script on a pipeline or multi. */
  queue(pipeline: ChainableCommander, name: Name, keys: string[], args: Arg[]): void;
}

/**
 * Declares a table of scripts; `load(redis)` registers them on a connection (idempotent) and
 * returns the caller. Files are read once, on the first `load`, never at import time. Command names
 * must be unique across tables (they live on the connection): prefix them by owner.
 */
export function defineScripts<Name extends string>(table: Record<Name, ScriptSpec>) {
  let sources: Map<Name, string> | undefined;
  const names = Object.keys(table) as Name[];
  return {
    load(redis: Redis | Cluster): LuaScripts<Name> {
      sources ??= new Map(names.map((name) => [name, readFileSync(table[name].file, 'utf8')]));
      const commands = redis as unknown as Record<string, ScriptFn>;
      for (const [name, lua] of sources) {
        if (typeof commands[name] !== 'function') {
          const keys = table[name].keys;
          redis.defineCommand(name, { numberOfKeys: keys === 'variable' ? undefined : keys, lua });
        }
      }
      // 'variable': the caller passes the number of keys first (ioredis' convention).
      const head = (name: Name, keys: string[]): Arg[] =>
        table[name].keys === 'variable' ? [keys.length, ...keys] : keys;
      return {
        run<T>(name: Name, keys: string[], args: Arg[]) {
          return commands[name]!.call(redis, ...head(name, keys), ...args) as Promise<T>;
        },
        runBuffer<T>(name: Name, keys: string[], args: Arg[]) {
          return commands[`${name}Buffer`]!.call(redis, ...head(name, keys), ...args) as Promise<T>;
        },
        queue(pipeline, name, keys, args) {
          (pipeline as unknown as Record<string, (...a: Arg[]) => unknown>)[name]!(
            ...head(name, keys),
            ...args,
          );
        },
      };
    },
  };
}
