import {
  type Job,
  type JobJson,
  type JobsOptions,
  type Processor,
  Queue,
  QueueEvents,
  UnrecoverableError,
  Worker,
  type WorkerOptions,
} from 'bullmq';
import type { RedisConnection } from '../redis/connections.ts';

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
  connection: RedisConnection,
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
  connection: RedisConnection,
  prefix: string,
  onError: BullErrorHandler = ignore,
): QueueEvents {
  // QueueEvents blocks on XREAD: BullMQ gives it a duplicate of `connection` of its own (and closes it).
  const events = new QueueEvents(name, { connection, prefix });
  events.on('error', onError);
  return events;
}

/** Jobs whose stored data is not JSON, with the one-line reason they fail with. */
const undecodable = new WeakMap<Job, string>();

/**
 * The reason a job taken by a worker of this module must fail at once (its data is not JSON), or
 * undefined. Workers with a processor fail such jobs themselves; hand-fetching consumers (the
 * write-behind batcher) ask here before reading `job.data`, which is `null` for them.
 */
export function undecodableReason(job: Job): string | undefined {
  return undecodable.get(job);
}

const storedBytes = new WeakMap<Job, number>();

/** UTF-8 bytes of the job's data as stored in Redis (taken by this module's workers), if known. */
export function storedDataBytes(job: Job): number | undefined {
  return storedBytes.get(job);
}

/**
 * BullMQ (6.x) moves a job to active in Redis and only then parses its `data` field, in
 * `Job.fromJSON` called from the worker's protected `createJob`. Data that is not JSON (written by
 * a producer in another language, or by hand) throws there: the job stays active and locked with no
 * one holding it, stalls, is taken again and throws again, for ever. Catching the parse error here
 * turns it into a job BullMQ can fail: the stored data is left as it is (for inspection), the job
 * object gets `data: null` and a reason, and the processor wrapper below fails it without retries.
 */
class DecodingWorker<Data, Result> extends Worker<Data, Result> {
  protected override createJob(json: JobJson, jobId: string): Job<Data, Result> {
    try {
      const job = super.createJob(json, jobId);
      // Measured on the stored text, so a consumer checking the size need not serialise it again.
      if (typeof json.data === 'string') storedBytes.set(job, Buffer.byteLength(json.data));
      return job;
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      const job = super.createJob({ ...json, data: 'null' }, jobId);
      undecodable.set(job, `job data is not JSON: ${error.message.split('\n')[0]}`);
      return job;
    }
  }
}

export function createWorker<Data, Result>(
  name: string,
  /** null: jobs are fetched by hand (`getNextJob`), as the write-behind batcher does. */
  processor: Processor<Data, Result> | null,
  connection: RedisConnection,
  prefix: string,
  options: Omit<WorkerOptions, 'connection' | 'prefix'>,
  /** Told about every job failed for undecodable data (for the log). */
  onUndecodable?: (job: Job, reason: string) => void,
  onError: BullErrorHandler = ignore,
): Worker<Data, Result> {
  const guarded: Processor<Data, Result> | null =
    processor &&
    ((job, token, signal) => {
      const reason = undecodableReason(job);
      if (reason !== undefined) {
        onUndecodable?.(job, reason);
        throw new UnrecoverableError(reason);
      }
      return processor(job, token, signal);
    });
  const worker = new DecodingWorker<Data, Result>(name, guarded, {
    connection,
    prefix,
    removeOnComplete: RETENTION.completed,
    removeOnFail: RETENTION.failed,
    ...options,
  });
  worker.on('error', onError);
  return worker;
}
