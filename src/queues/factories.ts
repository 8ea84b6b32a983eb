import { type JobsOptions, type Processor, Queue, QueueEvents, Worker, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';

// The only module that builds BullMQ objects, so connection and retention settings live in one place.
//
// Every object built here listens for 'error'. BullMQ forwards the errors of its connections (ours
// and the ones it duplicates for blocking reads) to the Queue, Worker or QueueEvents; one without a
// listener prints the whole error object with console.error — for a refused AUTH that is
// `command: { name: 'auth', args: ['<password>'] }` — once per reconnect attempt. Connection errors
// also surface where they matter: the command in flight fails (and is retried or reported).

/** Finished jobs are trimmed so Redis memory stays bounded (age in seconds, as BullMQ wants). */
export const RETENTION = {
  completed: { age: 3600, count: 1000 },
  failed: { age: 7 * 24 * 3600, count: 10_000 },
} as const;

/** Told of connection errors of a BullMQ object; the default drops them. */
export type BullErrorHandler = (error: Error) => void;
const ignore: BullErrorHandler = () => {};

export function createQueue(
  name: string,
  connection: Redis,
  prefix: string,
  defaultJobOptions?: JobsOptions,
  onError: BullErrorHandler = ignore,
): Queue {
  const queue = new Queue(name, { connection, prefix, defaultJobOptions });
  queue.on('error', onError);
  return queue;
}

export function createQueueEvents(
  name: string,
  connection: Redis,
  prefix: string,
  onError: BullErrorHandler = ignore,
): QueueEvents {
  // QueueEvents blocks on XREAD: BullMQ gives it a duplicate of `connection` of its own (and closes it).
  const events = new QueueEvents(name, { connection, prefix });
  events.on('error', onError);
  return events;
}

export function createWorker<Data, Result>(
  name: string,
  /** null: jobs are fetched by hand (`getNextJob`), as the write-behind batcher does. */
  processor: Processor<Data, Result> | null,
  connection: Redis,
  prefix: string,
  options: Omit<WorkerOptions, 'connection' | 'prefix'>,
  onError: BullErrorHandler = ignore,
): Worker<Data, Result> {
  const worker = new Worker<Data, Result>(name, processor, {
    connection,
    prefix,
    removeOnComplete: RETENTION.completed,
    removeOnFail: RETENTION.failed,
    ...options,
  });
  worker.on('error', onError);
  return worker;
}
