import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type pg from 'pg';

// CPU time spent by each process taking part in a measurement: the daemon (/proc), its Postgres
// backends (/proc, found by application_name), the Redis server (INFO cpu: the whole server, so
// other clients of a shared server count too) and this process. On a 2-core machine this says which
// process is the bottleneck: the one whose CPU time approaches the wall time.

const CLOCK_TICKS_PER_S = 100; // getconf CLK_TCK on Linux x86-64

function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return 0; // gone
  }
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (field: string) => Number(new RegExp(`${field}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (read('used_cpu_user') + read('used_cpu_sys')) * 1000;
}

/** pids of the Postgres backends serving connections with `applicationName`. */
export async function backendPids(client: pg.Client, applicationName: string): Promise<number[]> {
  const { rows } = await client.query<{ pid: number }>(
    'select pid from pg_stat_activity where application_name = $1',
    [applicationName],
  );
  return rows.map((row) => row.pid);
}

export interface CpuSplit {
  /** The Node process doing the work (the daemon, or this process for the baselines). */
  node: number;
  /** Its Postgres backends. */
  postgres: number;
  /** The Redis server (all clients). */
  redis: number;
  /** This process, when it is not the one doing the work (the producer). */
  bench: number;
}

/** Starts counting; `stop()` returns the CPU ms each process used since. */
export async function startCpu(
  nodePid: number,
  backends: () => Promise<number[]>,
  redis: Redis,
): Promise<{ stop(): Promise<CpuSplit> }> {
  const pids = new Set(await backends());
  const start = new Map([...pids].map((pid) => [pid, procCpuMs(pid)]));
  const node = procCpuMs(nodePid);
  const redisStart = await redisCpuMs(redis);
  const bench = process.cpuUsage();
  return {
    async stop() {
      const benchUsed = process.cpuUsage(bench);
      const nodeUsed = procCpuMs(nodePid) - node;
      const redisUsed = (await redisCpuMs(redis)) - redisStart;
      // backends opened during the measurement count from zero
      for (const pid of await backends()) pids.add(pid);
      let postgres = 0;
      for (const pid of pids) postgres += Math.max(0, procCpuMs(pid) - (start.get(pid) ?? 0));
      return {
        node: nodeUsed,
        postgres,
        redis: redisUsed,
        bench: nodePid === process.pid ? 0 : (benchUsed.user + benchUsed.system) / 1000,
      };
    },
  };
}
