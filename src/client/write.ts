import { randomUUID } from 'node:crypto';
import type { Job, Queue } from 'bullmq';
import { Cluster, type Redis } from 'ioredis';
import {
  MAX_OP_ID_LENGTH,
  QUEUES,
  WRITE_PAYLOAD_LIMIT_BYTES,
  type WriteBehindJobResult,
  type WriteOp,
} from '../contract.ts';
import { ViewkeeperError } from '../errors.ts';
import { createQueue } from '../queues/factories.ts';
import type { SinkDefinition } from '../sinks/define-sink.ts';
import { validateOp } from '../sinks/fields.ts';
import type { ClientRedis } from './connection.ts';
import { createWriteWaits, type WriteWaitOptions } from './write-wait.ts';

// client.write(): validate locally, enqueue durably with group commit (concurrent calls within a
// short window share one job), then apply the sink's immediate cache effect.

/** An op as an app hands it over: `id` may be left out (a random UUID is assigned). */
export interface WriteInput {
  id?: string;
  [field: string]: unknown;
}

export interface WriterOptions {
  /** The write-behind queue to use (caller-owned)… */
  queue?: Queue;
  /** …or a queue Redis connection (caller-owned) and prefix to build one (owned by the writer). */
  connection?: Redis;
  /** `VK_PREFIX` of the daemon. @defaultValue `vk` */
  prefix?: string;
  /** Sink definitions: ops are validated against them before anything is enqueued. Without them only
   * the envelope is checked (object, string id) and the daemon validates fields. */
  sinks?: readonly SinkDefinition[];
  /**
   * Views Redis: where sinks' immediate cache effects are applied. Without it they are skipped. On a
   * Redis Cluster each op's effect is a pipeline of its own, so one op's commands must address keys
   * served by one node (the keys of one row, or keys sharing a hash tag).
   */
  redis?: ClientRedis;
  /** How long the first call of a group waits for companions (ms). 0 = the next tick. @defaultValue 2 */
  windowMs?: number;
  /** Most ops in one job. @defaultValue 1000 */
  maxOps?: number;
  /** Most JSON bytes in one job (the daemon rejects jobs over 1 MB). @defaultValue 524288 */
  maxBytes?: number;
  /** Called when a cache effect fails (the write itself is already durable). */
  onCacheError?: (error: unknown, sink: string) => void;
}

export interface Writer {
  /**
   * Validates `ops` and enqueues them on the write-behind queue; resolves with their ids once Redis
   * has accepted the job(s) carrying them (and the sink's cache effect was applied). Ops of one call
   * over `maxOps`/`maxBytes` are spread over several jobs. With `wait`, resolves once the daemon has
   * done what it asks instead (write-wait.ts).
   *
   * @example const [id] = await writer.write('votes', { post_id: 7, user_id: 42, value: 1 });
   */
  write(sink: string, ops: WriteInput | readonly WriteInput[], wait?: WriteWaitOptions): Promise<string[]>;
  /** Enqueues what is waiting for its window, then closes the queue if the writer built it. */
  close(): Promise<void>;
}

export const WRITER_DEFAULTS = { windowMs: 2, maxOps: 1000, maxBytes: 512 * 1024 } as const;

type WriteJob = Job<{ ops: WriteOp[] }, WriteBehindJobResult>;

interface Waiter {
  resolve: (job: WriteJob) => void;
  reject: (error: unknown) => void;
}

interface Group {
  sink: string;
  ops: WriteOp[];
  ids: Set<string>;
  bytes: number;
  waiters: Waiter[];
  timer: NodeJS.Timeout | undefined;
}

/** Builds the writer `client.write()` is made of. */
export function createWriter(options: WriterOptions): Writer {
  const windowMs = options.windowMs ?? WRITER_DEFAULTS.windowMs;
  const maxOps = options.maxOps ?? WRITER_DEFAULTS.maxOps;
  const maxBytes = Math.min(options.maxBytes ?? WRITER_DEFAULTS.maxBytes, WRITE_PAYLOAD_LIMIT_BYTES - 64);
  if (!options.queue && !options.connection) {
    throw new ViewkeeperError('E_CONFIG', 'createWriter needs a queue or a connection');
  }
  const ownQueue = !options.queue;
  const queue = options.queue ?? createQueue(QUEUES.writeBehind, options.connection!, options.prefix ?? 'vk');
  const sinks = options.sinks ? new Map(options.sinks.map((sink) => [sink.name, sink])) : undefined;
  const open = new Map<string, Group>();
  const inFlight = new Set<Promise<void>>();
  let closed = false;
  const waits = createWriteWaits({ queue, connection: options.connection, prefix: options.prefix ?? 'vk' });

  function check(sink: string, input: WriteInput | readonly WriteInput[]): WriteOp[] {
    if (typeof sink !== 'string' || !/^[a-z][a-z0-9_]{0,63}$/.test(sink)) {
      throw new ViewkeeperError(
        'E_SINK_UNKNOWN',
        `write() needs a sink name like "votes", got ${JSON.stringify(sink)}`,
      );
    }
    const definition = sinks?.get(sink);
    if (sinks && !definition) {
      throw new ViewkeeperError(
        'E_SINK_UNKNOWN',
        `unknown sink ${JSON.stringify(sink)}: known sinks are ${[...sinks.keys()].sort().join(', ') || '(none)'}`,
      );
    }
    const list = Array.isArray(input) ? input : [input as WriteInput];
    if (list.length === 0) throw new ViewkeeperError('E_BAD_PAYLOAD', `write(${sink}) got no ops`);
    const seen = new Set<string>();
    return list.map((raw, index) => {
      const withId =
        raw !== null && typeof raw === 'object' && !Array.isArray(raw) && raw.id === undefined
          ? { ...raw, id: randomUUID() }
          : raw;
      let op: WriteOp;
      if (definition) op = validateOp(sink, definition.fields, withId, `op ${index}`) as WriteOp;
      else {
        const candidate = withId as WriteOp;
        if (candidate === null || typeof candidate !== 'object' || Array.isArray(candidate)) {
          throw new ViewkeeperError('E_BAD_PAYLOAD', `op ${index} of sink "${sink}": must be an object`);
        }
        if (
          typeof candidate.id !== 'string' ||
          candidate.id.length === 0 ||
          candidate.id.length > MAX_OP_ID_LENGTH
        ) {
          throw new ViewkeeperError(
            'E_BAD_PAYLOAD',
            `op ${index} of sink "${sink}": "id" must be a non-empty string of at most ${MAX_OP_ID_LENGTH} characters`,
          );
        }
        op = candidate;
      }
      if (seen.has(op.id)) {
        throw new ViewkeeperError(
          'E_BAD_PAYLOAD',
          `op ${index} of sink "${sink}": id ${JSON.stringify(op.id)} appears twice`,
        );
      }
      seen.add(op.id);
      return op;
    });
  }

  function flush(group: Group): void {
    clearTimeout(group.timer);
    if (open.get(group.sink) === group) open.delete(group.sink);
    const sent = (async () => {
      let job: WriteJob;
      try {
        job = (await queue.add(group.sink, { ops: group.ops })) as WriteJob;
      } catch (error) {
        for (const waiter of group.waiters) waiter.reject(error);
        return;
      }
      applyCacheEffects(group);
      for (const waiter of group.waiters) waiter.resolve(job);
    })();
    inFlight.add(sent);
    sent.finally(() => inFlight.delete(sent));
  }

  function applyCacheEffects(group: Group): void {
    const effect = sinks?.get(group.sink)?.cache;
    if (!effect || !options.redis) return;
    const redis = options.redis;
    // A cluster pipeline must stay on one node: one per op there, one for the whole group elsewhere.
    const batches = redis instanceof Cluster ? group.ops.map((op) => [op]) : [group.ops];
    for (const ops of batches) {
      try {
        const pipeline = redis.pipeline();
        for (const op of ops) effect(op as never, pipeline);
        pipeline.exec().catch((error) => options.onCacheError?.(error, group.sink));
      } catch (error) {
        options.onCacheError?.(error, group.sink);
      }
    }
  }

  function groupFor(sink: string, op: WriteOp, bytes: number): Group {
    let group = open.get(sink);
    // A full group, or one already carrying this op id (the daemon rejects a job with an id twice),
    // goes now; the op starts the next one.
    if (group && (group.ops.length >= maxOps || group.bytes + bytes > maxBytes || group.ids.has(op.id))) {
      flush(group);
      group = undefined;
    }
    if (!group) {
      group = { sink, ops: [], ids: new Set(), bytes: 16 + sink.length, waiters: [], timer: undefined };
      const created = group;
      created.timer = setTimeout(() => flush(created), windowMs);
      open.set(sink, group);
    }
    return group;
  }

  return {
    write(sink, input, wait) {
      if (closed) return Promise.reject(new ViewkeeperError('E_UNAVAILABLE', 'the writer is closed'));
      let ops: WriteOp[];
      try {
        ops = check(sink, input);
        if (wait !== undefined) waits.check(sink, wait, sinks);
      } catch (error) {
        return Promise.reject(error);
      }
      const acks: Promise<WriteJob>[] = [];
      let current: Group | undefined;
      for (const op of ops) {
        const bytes = Buffer.byteLength(JSON.stringify(op)) + 1;
        if (bytes > maxBytes) {
          return Promise.reject(
            new ViewkeeperError(
              'E_BAD_PAYLOAD',
              `op ${JSON.stringify(op.id)} of sink "${sink}" is ${bytes} bytes, over ${maxBytes}`,
            ),
          );
        }
        const group = groupFor(sink, op, bytes);
        if (group !== current) {
          current = group;
          acks.push(new Promise<WriteJob>((resolve, reject) => group.waiters.push({ resolve, reject })));
        }
        group.ops.push(op);
        group.ids.add(op.id);
        group.bytes += bytes;
      }
      // A group filled by this call need not wait for its window.
      if (current && (current.ops.length >= maxOps || current.bytes >= maxBytes)) flush(current);
      const ids = ops.map((op) => op.id);
      if (wait === undefined) return Promise.all(acks).then(() => ids);
      return waits.wait(sink, ids, acks, wait);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const group of [...open.values()]) flush(group);
      await Promise.allSettled([...inFlight]);
      await waits.close();
      if (ownQueue) await queue.close();
    },
  };
}
