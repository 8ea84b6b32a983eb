import { type JobsOptions, type Processor, Queue, QueueEvents, Worker, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';

// The only module that builds BullMQ objects, so connection and retention settings live in one place.

/** Finished jobs are trimmed so Redis memory stays bounded (age in seconds, as BullMQ wants). */
export const RETENTION = {
  completed: { age: 3600, count: 1000 },
  failed: { age: 7 * 24 * 3600, count: 10_000 },
} as const;

export function createQueue(
  name: string,
  connection: Redis,
  prefix: string,
  defaultJobOptions?: JobsOptions,
): Queue {
  return new Queue(name, { connection, prefix, defaultJobOptions });
}

export function createQueueEvents(name: string, connection: Redis, prefix: string): QueueEvents {
  // QueueEvents blocks on XREAD: it needs a connection of its own.
  return new QueueEvents(name, { connection: connection.duplicate(), prefix });
}

export function createWorker<Data, Result>(
  name: string,
  /** null: jobs are fetched by hand (`getNextJob`), as the write-behind batcher does. */
  processor: Processor<Data, Result> | null,
  connection: Redis,
  prefix: string,
  options: Omit<WorkerOptions, 'connection' | 'prefix'>,
): Worker<Data, Result> {
  return new Worker<Data, Result>(name, processor, {
    connection,
    prefix,
    removeOnComplete: RETENTION.completed,
    removeOnFail: RETENTION.failed,
    ...options,
  });
}
