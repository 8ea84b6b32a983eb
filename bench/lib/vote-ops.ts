import { randomUUID } from 'node:crypto';
import type { Writer } from '../../src/client/write.ts';
import { random } from '../../test/helpers/random.ts';

// Ops the write-behind benches send: deterministic, so every run and both sides of a comparison get
// the same kind of work.

export type Workload = 'uniform' | 'skewed';

export type VoteOp = {
  id: string;
  post_id: number;
  user_id: number;
  value: number;
};

/**
 * Random vote ops, ±1 (70 % up), by uniformly random users on posts drawn uniformly (`uniform`:
 * nearly every op a different (post, user) row) or with density ∝ 1/rank (`skewed`: a few hot posts
 * get most votes). Each op has a random UUID as its id, as `client.write` assigns one.
 */
export function voteOps(
  count: number,
  seed: number,
  workload: Workload,
  users: number,
  posts: number,
): VoteOp[] {
  const next = random(seed);
  return Array.from({ length: count }, () => ({
    id: randomUUID(),
    post_id:
      workload === 'uniform'
        ? 1 + Math.floor(next() * posts)
        : Math.floor(Math.exp(next() * Math.log(posts))),
    user_id: 1 + Math.floor(next() * users),
    value: next() < 0.7 ? 1 : -1,
  }));
}

/**
 * Skewed counter ops over `keys` keys (key drawn with density ∝ 1/rank, so the hottest key gets
 * about a tenth of all ops at 1,000 keys), each adding +1 or -1.
 */
export function counterOps(
  count: number,
  seed: number,
  keys: number,
): { id: string; key: number; by: number }[] {
  const next = random(seed);
  return Array.from({ length: count }, () => ({
    id: randomUUID(),
    key: Math.floor(Math.exp(next() * Math.log(keys + 1))),
    by: next() < 0.8 ? 1 : -1,
  }));
}

/** Writes `ops` with `producers` concurrent loops of `writer.write(sink, callOps ops)`. */
export async function produce(
  writer: Writer,
  sink: string,
  ops: readonly object[],
  producers = 8,
  callOps = 100,
): Promise<number> {
  const started = performance.now();
  let nextCall = 0;
  await Promise.all(
    Array.from({ length: producers }, async () => {
      for (;;) {
        const start = nextCall++ * callOps;
        if (start >= ops.length) return;
        await writer.write(sink, ops.slice(start, start + callOps) as never);
      }
    }),
  );
  return performance.now() - started;
}
