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

export function opOrder(jobId: string | undefined, ts: number, index: number): OpOrder {
  const job = jobId !== undefined && /^\d{1,15}$/.test(jobId) ? BigInt(jobId) : 0n;
  return { ts, seq: job * OPS_PER_JOB + BigInt(index) };
}

export function setOrder(op: object, order: OpOrder): void {
  orders.set(op, order);
}

export function orderOf(op: object): OpOrder | undefined {
  return orders.get(op);
}

/** Negative when `a` came before `b`. */
export function compareOrder(a: OpOrder, b: OpOrder): number {
  if (a.ts !== b.ts) return a.ts - b.ts;
  return a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}
