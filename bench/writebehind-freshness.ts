// Write-behind freshness: `client.write` resolving → the `post_votes` event for that post whose GET
// shows a sum including the vote, at a steady rate, through a real `viewkeeper start` child process
// running the demo's sinks and views as shipped (schedules dropped). Method and latest results:
// bench/README.md ("Write-behind", freshness).
//
//   node bench/writebehind-freshness.ts [--rate 1000] [--seconds 10]
//
// BENCH_DEBUG=1 prints the refresh backlog per priority level every second.
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { refreshBacklogKey } from '../src/sinks/refresh-backlog.ts';
import { random } from '../test/helpers/random.ts';
import { log } from './lib/bench-env.ts';
import { sleep } from './lib/stats.ts';
import { voteOps } from './lib/vote-ops.ts';
import {
  prepareWriteBehindEnv,
  until,
  WB_POSTS,
  WB_PREFIX,
  WB_REDIS_URL,
  WB_USERS,
} from './lib/writebehind-env.ts';

const { values: flags } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
  },
});
const RATE = Number(flags.rate);
const SECONDS = Number(flags.seconds);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const env = await prepareWriteBehindEnv();
  const db = env.handle.db;
  const { daemon, writer, stop } = await env.startDaemon({});
  const ledgerCount = async () =>
    Number(
      (await sql<{ n: string }>`select count(*) as n from viewkeeper.write_ledger`.execute(db)).rows[0]!.n,
    );
  // Warm-up: connections, JIT, the first batch and its refreshes.
  await writer.write('votes', voteOps(2000, 99, 'uniform', WB_USERS, WB_POSTS));
  await until(daemon, async () => (await ledgerCount()) >= 2000, 50);
  await until(daemon, async () => (await env.redis.zcard(refreshBacklogKey(WB_PREFIX))) === 0, 100);

  const subscriber = new Redis(WB_REDIS_URL);
  const reader = new Redis(WB_REDIS_URL);
  const { rows: sums } = await sql<{ id: string; sum: string }>`
    select p.id, coalesce(sum(v.value), 0)::text as sum from posts p left join votes v on v.post_id = p.id
    group by p.id`.execute(db);
  const expectedSum = new Map(sums.map((row) => [row.id, Number(row.sum)]));
  const { rows: pairs } = await sql<{
    post_id: string;
    user_id: string;
  }>`select post_id, user_id from votes`.execute(db);
  const taken = new Set(pairs.map((pair) => `${pair.post_id}:${pair.user_id}`));
  const waiting = new Map<string, { threshold: number; ackedAt: number; repeat: boolean }[]>();
  const latencies: number[] = [];
  /** Writes to a post that was not written in the second before (no coalescing window in the way). */
  const firstLatencies: number[] = [];
  await subscriber.subscribe(`${WB_PREFIX}:events`);
  subscriber.on('message', async (_channel, message) => {
    const event = JSON.parse(message) as { view?: string; keys?: string[] | null };
    if (event.view !== 'post_votes' || !event.keys) return;
    const seenAt = performance.now();
    for (const key of event.keys) {
      const post = key.slice('post_votes:'.length);
      const list = waiting.get(post);
      if (!list) continue;
      const value = Number(await reader.get(key));
      const left = list.filter((entry) => {
        if (value < entry.threshold) return true;
        latencies.push(seenAt - entry.ackedAt);
        if (!entry.repeat) firstLatencies.push(seenAt - entry.ackedAt);
        return false;
      });
      if (left.length > 0) waiting.set(post, left);
      else waiting.delete(post);
    }
  });
  const next = random(3);
  const total = RATE * SECONDS;
  let repeats = 0;
  const recent = new Map<string, number>();
  const writes: Promise<void>[] = [];
  const freshStarted = performance.now();
  const monitor = process.env.BENCH_DEBUG
    ? setInterval(async () => {
        const key = refreshBacklogKey(WB_PREFIX);
        const counts = [];
        for (let level = 0; level < 4; level++) {
          counts.push(await env.redis.zcount(key, level * 1e13, level * 1e13 + 1e13 - 1));
        }
        log(
          `  t=${Math.round(performance.now() - freshStarted)} backlog by level ${counts.join(' ')} waiting ${waiting.size}`,
        );
      }, 1000)
    : undefined;
  for (let index = 0; index < total; index++) {
    const due = freshStarted + (index * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    let post: string;
    let user: string;
    do {
      post = String(1 + Math.floor(next() * WB_POSTS));
      user = String(1 + Math.floor(next() * WB_USERS));
    } while (taken.has(`${post}:${user}`));
    taken.add(`${post}:${user}`);
    const repeat = (recent.get(post) ?? -Infinity) > performance.now() - 1000;
    if (repeat) repeats += 1;
    recent.set(post, performance.now());
    const threshold = expectedSum.get(post)! + 1;
    expectedSum.set(post, threshold);
    writes.push(
      writer.write('votes', { post_id: post, user_id: user, value: 1 }).then(() => {
        const list = waiting.get(post) ?? [];
        list.push({ threshold, ackedAt: performance.now(), repeat });
        waiting.set(post, list);
      }),
    );
  }
  await Promise.all(writes);
  clearInterval(monitor);
  const deadline = performance.now() + 15_000;
  while (waiting.size > 0 && performance.now() < deadline) await sleep(50);
  const unseen = [...waiting.values()].reduce((n, list) => n + list.length, 0);
  latencies.sort((a, b) => a - b);
  firstLatencies.sort((a, b) => a - b);
  log(`  freshness: ${latencies.length} writes seen, ${unseen} not seen within 15 s`);
  await subscriber.quit();
  await reader.quit();
  await stop();
  process.stdout.write(
    `freshness at ${RATE} ops/s (${latencies.length} writes, ${unseen} not seen within 15 s): p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(0)} ms; writes to a post written < 1 s before: ${repeats}; the others: p50 ${percentile(firstLatencies, 50).toFixed(1)} ms, p99 ${percentile(firstLatencies, 99).toFixed(1)} ms\n`,
  );
  await env.close();
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
