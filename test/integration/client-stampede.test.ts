import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ClientOptions } from '../../src/client/options.ts';
import { type ClientRedisContext, createClientRedisContext, eventually } from '../helpers/client-context.ts';
import { type ClientProcess, startClientProcess, stopClientProcesses } from '../helpers/client-processes.ts';

let ctx: ClientRedisContext;
let processes: ClientProcess[] = [];

beforeAll(async () => {
  ctx = await createClientRedisContext();
});
afterEach(async () => {
  await stopClientProcesses(processes);
  processes = [];
});
afterAll(() => ctx?.cleanup());

async function start(count: number, options: Partial<ClientOptions>): Promise<ClientProcess[]> {
  processes = await Promise.all(
    Array.from({ length: count }, () =>
      startClientProcess({ redisUrl: ctx.redisUrl, prefix: ctx.prefix, ...options }, ctx.redisUrl),
    ),
  );
  return processes;
}

describe('cached() single-flight across processes', () => {
  it('4 processes × 50 concurrent calls on one cold key run the loader exactly once', async () => {
    const counterKey = `${ctx.prefix}:loads:cold`;
    const procs = await start(4, { cache: { lockTtlMs: 2000, lockWaitMs: 20_000 } });
    const replies = await Promise.all(
      procs.map((proc) =>
        proc.call({
          op: 'cached',
          key: 'cold',
          concurrency: 50,
          loader: { counterKey, ms: 300 },
          options: { ttl: 60_000 },
        }),
      ),
    );
    expect(await ctx.redis.get(counterKey)).toBe('1');
    const values = replies.flatMap((reply) => reply.result as unknown[]);
    expect(values).toHaveLength(200);
    const first = values[0] as { attempt: number; pid: number };
    expect(first.attempt).toBe(1);
    for (const value of values) expect(value).toEqual(first);
    expect(replies.reduce((sum, reply) => sum + reply.stats!.loaderCalls, 0)).toBe(1);
    // Not vacuous: the processes really raced (each saw the key cold and waited for the one load).
    expect(replies.filter((reply) => reply.stats!.misses > 0).length).toBeGreaterThanOrEqual(2);
  });

  it('when the lock holder is killed mid-load, another process takes over after the lock expires and every caller gets a value', async () => {
    const counterKey = `${ctx.prefix}:loads:killed`;
    const procs = await start(4, { cache: { lockTtlMs: 1000, lockWaitMs: 20_000 } });
    const calls = procs.map((proc) =>
      proc.call({
        op: 'cached',
        key: 'killed',
        concurrency: 50,
        loader: { counterKey, ms: 50, hangOnAttempt: 1 },
        options: { ttl: 60_000 },
      }),
    );
    // The holder's own callers die with it; the others must all get a value.
    for (const call of calls) call.catch(() => {});
    let holderPid = 0;
    expect(
      await eventually(async () => {
        holderPid = Number(await ctx.redis.get(`${counterKey}:holder`));
        return holderPid > 0;
      }, 10_000),
    ).toBe(true);
    const holder = procs.find((proc) => proc.pid === holderPid)!;
    expect(holder).toBeDefined();
    holder.kill('SIGKILL');

    const survivors = await Promise.all(calls.filter((_, i) => procs[i] !== holder));
    const values = survivors.flatMap((reply) => reply.result as unknown[]);
    expect(values).toHaveLength(150);
    for (const value of values) expect(value).toMatchObject({ attempt: 2 });
    expect(new Set(values.map((value) => (value as { pid: number }).pid)).size).toBe(1);
    // One load died with its process, one more ran after the takeover: no stampede after the crash.
    expect(await ctx.redis.get(counterKey)).toBe('2');
    await expect(calls[procs.indexOf(holder)]).rejects.toThrow(/exited/);
  });
});
