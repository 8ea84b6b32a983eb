// Client library latencies against a plain ioredis GET in the same run, and the L1 invalidation
// delay across processes. Usage: node bench/client.ts [--ops 20000] [--trials 300]
//
// Latency rows: one operation at a time (no pipelining), after a warm-up, p50/p99 of N samples.
// Invalidation rows: a second process holds the value in its L1 and reads in a loop; this process
// changes the data and publishes the event; the delay runs from just before the publish to the
// first read in the other process that returns the new value (both clocks: performance.timeOrigin
// + performance.now(), the same machine).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createClient } from '../src/index.ts';

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/7';
const readerAt = process.argv.indexOf('--reader');
// The reader process is given the parent's prefix.
const PREFIX = readerAt >= 0 ? process.argv[readerAt + 1]! : `vkbench_client_${process.pid}`;
const VIEWS = { bench_v: { shape: 'value', key: `${PREFIX}_v:{id}` } } as const;
const VALUE = 'x'.repeat(200);
const now = () => performance.timeOrigin + performance.now();

type Message =
  | { op: 'arm'; kind: 'view' | 'tag'; expected: string }
  | { op: 'armed' }
  | { op: 'seen'; at: number }
  | { op: 'stop' };

/** The other process: keeps the value in its L1 and reads until it sees the new one. */
async function reader(): Promise<void> {
  const client = createClient({
    redisUrl: REDIS_URL,
    prefix: PREFIX,
    views: VIEWS,
    l1: true,
    statsFlushMs: 0,
  });
  while (!client.health().subscribed) await new Promise((r) => setTimeout(r, 10));
  let loaderValue = '';
  const read = (kind: 'view' | 'tag') =>
    kind === 'view'
      ? client.value('bench_v', { id: 1 })
      : client.cached('tagged', async () => loaderValue, { ttl: 600_000, tags: ['bench'] });
  process.on('message', async (message: Message) => {
    if (message.op === 'stop') {
      await client.close();
      process.exit(0);
    }
    if (message.op !== 'arm') return;
    const before = client.stats().l1Hits;
    await read(message.kind);
    await read(message.kind);
    if (client.stats().l1Hits === before) throw new Error('reader: value not served from L1');
    loaderValue = message.expected;
    process.send!({ op: 'armed' } satisfies Message);
    for (;;) {
      if ((await read(message.kind)) === message.expected) break;
      await new Promise((r) => setImmediate(r));
    }
    process.send!({ op: 'seen', at: now() } satisfies Message);
  });
  process.send!({ op: 'armed' } satisfies Message);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Latency samples (µs) of each operation, one call at a time. The operations take turns in rounds so
 * that load from other processes on a shared machine falls on all of them alike.
 */
async function latencies(ops: number, fns: (() => Promise<unknown>)[], rounds = 10): Promise<number[][]> {
  const samples = fns.map(() => [] as number[]);
  for (const fn of fns) for (let i = 0; i < 1000; i++) await fn();
  for (let round = 0; round < rounds; round++) {
    for (const [index, fn] of fns.entries()) {
      for (let i = 0; i < Math.ceil(ops / rounds); i++) {
        const started = performance.now();
        await fn();
        samples[index]!.push((performance.now() - started) * 1000);
      }
    }
  }
  return samples.map((list) => list.sort((a, b) => a - b));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ops: { type: 'string' }, trials: { type: 'string' } } });
  const ops = Number(values.ops ?? 20_000);
  const trials = Number(values.trials ?? 300);
  const raw = new Redis(REDIS_URL);
  const viewKey = `${PREFIX}_v:1`;
  await raw.set(viewKey, VALUE);
  await raw.set(`${PREFIX}_plain`, VALUE);

  const remote = createClient({ redisUrl: REDIS_URL, prefix: PREFIX, views: VIEWS, statsFlushMs: 0 });
  const local = createClient({
    redisUrl: REDIS_URL,
    prefix: PREFIX,
    views: VIEWS,
    l1: true,
    statsFlushMs: 0,
  });
  while (!local.health().subscribed) await new Promise((r) => setTimeout(r, 10));
  const loader = async () => VALUE;
  const cacheOptions = { ttl: 600_000, earlyRefresh: false } as const;

  const measured: [string, () => Promise<unknown>][] = [
    ['plain ioredis GET (baseline)', () => raw.get(`${PREFIX}_plain`)],
    ['view read, Redis hit: value()', () => remote.value('bench_v', { id: 1 })],
    ['cached() hit, Redis (no L1)', () => remote.cached('c', loader, cacheOptions)],
    ['view read, L1 hit: value()', () => local.value('bench_v', { id: 1 })],
    ['cached() hit, L1', () => local.cached('c', loader, cacheOptions)],
  ];
  const samples = await latencies(
    ops,
    measured.map(([, fn]) => fn),
  );
  const rows: [string, number[]][] = measured.map(([name], i) => [name, samples[i]!]);
  if (local.stats().l1Hits < 2 * ops) throw new Error('L1 rows were not served from the L1');

  // Invalidation delay across processes.
  const child = fork(fileURLToPath(import.meta.url), ['--reader', PREFIX], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const next = () =>
    new Promise<Message>((resolve, reject) => {
      if (exited) reject(new Error('reader process exited'));
      const onExit = () => reject(new Error('reader process exited'));
      child.once('exit', onExit);
      child.once('message', (message: Message) => {
        child.off('exit', onExit);
        resolve(message);
      });
    });
  await next();
  const delays: Record<'view' | 'tag', number[]> = { view: [], tag: [] };
  let version = 0;
  for (const kind of ['view', 'tag'] as const) {
    for (let i = 0; i < trials; i++) {
      const expected = `${kind}-${i}`;
      child.send({ op: 'arm', kind, expected } satisfies Message);
      await next();
      let t0: number;
      if (kind === 'view') {
        // What the daemon does at the end of a partial refresh: write, then publish the event.
        await raw.set(viewKey, expected);
        t0 = now();
        await raw.publish(
          `${PREFIX}:events`,
          JSON.stringify({
            view: 'bench_v',
            keys: [viewKey],
            version: ++version,
            at: new Date().toISOString(),
          }),
        );
      } else {
        t0 = now();
        await local.invalidateTag('bench');
      }
      const seen = (await next()) as { op: 'seen'; at: number };
      delays[kind].push((seen.at - t0) * 1000);
      await new Promise((r) => setTimeout(r, 2));
    }
    delays[kind].sort((a, b) => a - b);
  }
  child.send({ op: 'stop' } satisfies Message);
  rows.push(['L1 invalidation delay: view event → other process reads new value', delays.view]);
  rows.push(['L1 invalidation delay: invalidateTag → other process reads reloaded value', delays.tag]);

  const base = percentile(rows[0]![1], 50);
  const header = ['measurement', 'p50 µs', 'p99 µs', 'p50 vs GET', 'n'];
  const body = rows.map(([name, s]) => [
    name,
    percentile(s, 50).toFixed(1),
    percentile(s, 99).toFixed(1),
    `${(percentile(s, 50) / base).toFixed(2)}×`,
    String(s.length),
  ]);
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  console.log(
    [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n'),
  );

  await remote.close();
  await local.close();
  const keys = await raw.keys(`${PREFIX}*`);
  if (keys.length > 0) await raw.del(...keys);
  await raw.quit();
}

if (readerAt >= 0) await reader();
else await main();
