import type { Redis } from 'ioredis';
import { captureKeys, refreshReceiptKeys } from '../redis/keys.ts';

// Waiting for refreshes the daemon owes, by the refresh backlog's receipts (sinks/scripts/*.lua):
// every mark takes a sequence number, and each owed entry keeps its earliest mark not yet covered
// by a successful run (a run claimed after the mark). A refresh owed by a mark `seq` is written once
// its entry's pending mark is gone or above `seq`. That holds however the entry was coalesced, and a
// hot entry marked again and again does not starve the wait: the first run claimed after `seq`
// settles it. Polled, because the receipt changes after the run's event is published.

/**
 * A mark to wait for: `owed` entries, or (without them) every entry marked up to `seq`; with
 * `capture`, also the mark the drainer records for that transaction's captured changes.
 */
export interface Receipt {
  seq: number;
  owed?: readonly string[];
  capture?: string;
}

/** Whether every refresh the receipts owe has been written. */
export async function receiptsSettled(
  redis: Redis,
  prefix: string,
  receipts: readonly Receipt[],
): Promise<boolean> {
  const keys = refreshReceiptKeys(prefix);
  const listed = receipts.filter((receipt) => receipt.owed && receipt.owed.length > 0);
  const unlisted = receipts.filter((receipt) => !receipt.owed);
  const pipeline = redis.pipeline();
  for (const receipt of listed) pipeline.zmscore(keys.pending, ...receipt.owed!);
  if (unlisted.length > 0) pipeline.zrange(keys.pending, '0', '0', 'WITHSCORES');
  const replies = (await pipeline.exec()) ?? [];
  for (const [error] of replies) if (error) throw error;
  for (const [index, receipt] of listed.entries()) {
    const scores = replies[index]![1] as (string | null)[];
    if (scores.some((score) => score !== null && Number(score) <= receipt.seq)) return false;
  }
  if (unlisted.length > 0) {
    const [, lowest] = replies[listed.length]![1] as string[];
    const highest = Math.max(...unlisted.map((receipt) => receipt.seq));
    if (lowest !== undefined && Number(lowest) <= highest) return false;
  }
  return true;
}

/** The backlog's latest mark: every refresh owed by what has been drained or committed so far is at or below it. */
export async function latestMark(redis: Redis, prefix: string): Promise<number> {
  return Number((await redis.get(refreshReceiptKeys(prefix).seq)) ?? 0);
}

/**
 * The mark covering transaction `txid`'s captured changes, once a drainer has recorded it (see
 * capture/drainer.ts); undefined if `deadline` passes first.
 */
async function captureMark(redis: Redis, prefix: string, txid: string, deadline: number) {
  for (let pause = 2; ; pause = Math.min(50, pause * 1.5)) {
    const seq = await redis.get(captureKeys(prefix).receipt(txid));
    if (seq !== null) return Number(seq);
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
  }
}

/** Polls until the receipts are settled (true) or `deadline` (epoch ms) passes (false). */
export async function waitForReceipts(
  redis: Redis,
  prefix: string,
  given: readonly Receipt[],
  deadline: number,
): Promise<boolean> {
  const receipts = [...given];
  for (const { capture } of given) {
    if (capture === undefined) continue;
    const seq = await captureMark(redis, prefix, capture, deadline);
    if (seq === undefined) return false;
    receipts.push({ seq });
  }
  if (receipts.length === 0) return true;
  for (let pause = 2; ; pause = Math.min(50, pause * 1.5)) {
    if (await receiptsSettled(redis, prefix, receipts)) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
  }
}
