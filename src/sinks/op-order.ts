// Where an op stands among all ops ever enqueued: the enqueue time of its job (ms, producer clock),
// then the job's BullMQ id (a Redis counter, so acceptance order within a millisecond) and the op's
// index in the job. "Later wins" compares this order; it survives redelivery, because a redelivered
// job keeps its timestamp and id.

export interface OpOrder {
  /** The job's timestamp (ms since the epoch). */
  ts: number;
  /** job number × 2^20 + op index (0 as job number for custom, non-numeric job ids). */
  seq: bigint;
}

const orders = new WeakMap<object, OpOrder>();
const OPS_PER_JOB = 1n << 20n;
/** On the prototype the ops of one job share (see jobPrototype): the job's part of their order. */
const JOB = Symbol('viewkeeper.job');

interface JobPart {
  ts: number;
  base: bigint;
  /** The job's ops in job order (their index is their order within the job). */
  ops: object[];
  /** op → index, built the first time an order is asked for (only sinks that upsert ask). */
  index?: Map<object, number>;
}

/**
 * The prototype of the ops of one job: it carries their `at` (the job's enqueue time) and the job's
 * part of their order, once per job. An op made on it (`Object.create`, then `addToJob`) costs no
 * per-op `defineProperty` nor WeakMap entry, and carries nothing of its own but its fields: `at`
 * stays out of JSON, spreads and equality, not being the op's own property.
 */
export function jobPrototype(jobId: string | undefined, ts: number): object {
  const { seq } = opOrder(jobId, ts, 0);
  return { at: new Date(ts), [JOB]: { ts, base: seq, ops: [] } satisfies JobPart };
}

/** Appends `op` (made on `prototype`) to its job: its index in the job is its position. */
export function addToJob(prototype: object, op: object): void {
  (prototype as { [JOB]: JobPart })[JOB].ops.push(op);
}

export function opOrder(jobId: string | undefined, ts: number, index: number): OpOrder {
  const job = jobId !== undefined && /^\d{1,15}$/.test(jobId) ? BigInt(jobId) : 0n;
  return { ts, seq: job * OPS_PER_JOB + BigInt(index) };
}

export function setOrder(op: object, order: OpOrder): void {
  orders.set(op, order);
}

export function orderOf(op: object): OpOrder | undefined {
  const job = (op as { [JOB]?: JobPart })[JOB];
  if (job !== undefined) {
    job.index ??= new Map(job.ops.map((member, position) => [member, position]));
    const index = job.index.get(op);
    if (index !== undefined) return { ts: job.ts, seq: job.base + BigInt(index) };
  }
  return orders.get(op);
}

/** Negative when `a` came before `b`. */
export function compareOrder(a: OpOrder, b: OpOrder): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}
