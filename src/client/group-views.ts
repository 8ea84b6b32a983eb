import { ViewkeeperError } from '../errors.ts';
import type { ResolvedView, ViewParams } from './view-descriptors.ts';
import type { ReadSpec, ViewReadOptions } from './views.ts';

export interface ListReadOptions extends ViewReadOptions {
  /** First index (0 = the list's head; negative counts from the end). @defaultValue 0 */
  start?: number;
  /** Last index, inclusive (-1 = the last element). @defaultValue -1 */
  stop?: number;
}

/** Reads of `list` and `set` views (one Redis key per group, named by the params). */
export interface GroupReader {
  list(view: string, params: ViewParams, options?: ListReadOptions): Promise<readonly string[]>;
  set(view: string, params: ViewParams, options?: ViewReadOptions): Promise<readonly string[]>;
  isMember(
    view: string,
    params: ViewParams,
    member: string | number,
    options?: ViewReadOptions,
  ): Promise<boolean>;
}

type Read = <T>(
  spec: ReadSpec<T>,
  options: ViewReadOptions | undefined,
  empty: T | null,
) => Promise<T | null>;

function textBytes(values: readonly string[]): number {
  let bytes = 16;
  for (const value of values) bytes += value.length + 16;
  return bytes;
}

function index(view: string, name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value)) {
    throw new ViewkeeperError('E_BAD_PARAMS', `list(${view}) ${name} must be a whole number, got ${value}`);
  }
  return value;
}

/**
 * A group's key missing is a miss, as for a `hash` row: with `onMiss: 'refresh'` the group is
 * refreshed by its params and read again; a group that is still missing is empty.
 */
export function createGroupReader(
  viewOf: (name: string, shapes: ResolvedView['shape'][]) => ResolvedView,
  read: Read,
): GroupReader {
  return {
    async list(name, params, options = {}) {
      const view = viewOf(name, ['list']);
      const redisKey = view.keyFor(params);
      const start = index(name, 'start', options.start, 0);
      const stop = index(name, 'stop', options.stop, -1);
      const elements = await read<readonly string[]>(
        {
          view,
          redisKey,
          variant: `list:${start}:${stop}`,
          params,
          fetch: async (redis) => {
            const found = await redis.lrange(redisKey, start, stop);
            if (found.length > 0) return found;
            // An empty range of a list that exists is an answer.
            return (await redis.exists(redisKey)) === 1 ? [] : undefined;
          },
          bytes: textBytes,
        },
        options,
        [],
      );
      return elements ?? [];
    },

    async set(name, params, options) {
      const view = viewOf(name, ['set']);
      const redisKey = view.keyFor(params);
      const members = await read<readonly string[]>(
        {
          view,
          redisKey,
          variant: 'set',
          params,
          fetch: async (redis) => {
            const found = await redis.smembers(redisKey);
            // Sorted: Redis returns a set's members in no particular order.
            return found.length > 0 ? found.sort() : undefined;
          },
          bytes: textBytes,
        },
        options,
        [],
      );
      return members ?? [];
    },

    async isMember(name, params, member, options) {
      const view = viewOf(name, ['set']);
      const redisKey = view.keyFor(params);
      const text = String(member);
      const answer = await read<boolean>(
        {
          view,
          redisKey,
          variant: `member:${text}`,
          params,
          fetch: async (redis) => {
            if ((await redis.sismember(redisKey, text)) === 1) return true;
            return (await redis.exists(redisKey)) === 1 ? false : undefined;
          },
          bytes: () => 24 + text.length,
        },
        options,
        false,
      );
      return answer === true;
    },
  };
}
