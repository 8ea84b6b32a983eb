import type { Queue } from 'bullmq';
import { sql } from 'kysely';
import { loadConfig } from '../../config/config.ts';
import { QUEUES } from '../../contract.ts';
import { createDb } from '../../db/create-db.ts';
import { nextSlot } from '../../lib/cron.ts';
import { createQueue } from '../../queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../redis/connections.ts';
import { auditKey, chunkStatePattern, viewKeys } from '../../redis/keys.ts';
import { loadRegistry } from '../../views/registry.ts';
import { CLOSE_TIMEOUT_MS, defineCommand, within } from '../command.ts';

const COUNTED_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

interface LastRun {
  view: string;
  finished_at: Date;
  duration_ms: number;
  status: string;
  trigger: string;
}

export const statusCommand = defineCommand({
  name: 'status',
  summary:
    'Lists every view in VK_JOBS_DIR: version, last refresh, duration, rows, last error, schedule, next and last scheduled-or-full run, chunked rebuilds in progress, and the refresh queue depths.',
  usage: 'status [--json]',
  help: ['  --json  print one JSON object instead of a table'],
  options: { json: { type: 'boolean' } },
  async run(input, io) {
    const config = loadConfig();
    const registry = await loadRegistry(config.jobsDir);
    const views = createRedis(config.redisUrl, { role: 'views', name: `${config.prefix}:cli` });
    const queueConnection =
      config.queueRedisUrl === config.redisUrl
        ? views
        : createRedis(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:cli` });
    const db = createDb(config.databaseUrl, { max: 1 });
    let queue: Queue | undefined;
    try {
      await connectRedis(views, config.redisUrl, 'REDIS_URL');
      await connectRedis(queueConnection, config.queueRedisUrl, config.queueRedisVariable);
      await db.ping();
      queue = createQueue(QUEUES.refresh, queueConnection, config.prefix);
      const names = [...registry.views.keys()].sort();
      const pipeline = views.pipeline();
      for (const name of names) pipeline.hgetall(viewKeys(config.prefix, name).meta);
      for (const name of names) pipeline.hgetall(auditKey(config.prefix, name));
      const hashes = ((await pipeline.exec()) ?? []).map(
        ([, value]) => (value ?? {}) as Record<string, string>,
      );
      const metas = hashes.slice(0, names.length);
      const audits = hashes.slice(names.length);
      const { rows: lastRuns } = await sql<LastRun>`
        select distinct on (view) view, finished_at, duration_ms, status, trigger
        from viewkeeper.refresh_runs where kind = 'full' order by view, started_at desc`.execute(db.db);
      const progress = await chunkProgress(queueConnection, config.prefix);
      const rows = names.map((name, i) => {
        const meta = metas[i]!;
        const view = registry.view(name)!;
        const last = lastRuns.find((run) => run.view === name);
        return {
          view: name,
          shape: view.shape,
          version: meta.version ? Number(meta.version) : 0,
          refreshed_at: meta.refreshed_at || null,
          duration_ms: meta.duration_ms ? Number(meta.duration_ms) : null,
          rows: meta.rows ? Number(meta.rows) : null,
          last_error: meta.last_error || null,
          schedule: view.schedule
            ? `${view.schedule.cron}${view.schedule.timezone === 'UTC' ? '' : ` ${view.schedule.timezone}`}`
            : null,
          next_run: view.schedule ? nextSlot(view.schedule.cron, view.schedule.timezone).toISOString() : null,
          last_full_run: last
            ? {
                at: last.finished_at.toISOString(),
                duration_ms: last.duration_ms,
                outcome: last.status,
                trigger: last.trigger,
              }
            : null,
          chunks: progress.get(name) ?? null,
          audit: auditSummary(audits[i]!),
        };
      });
      const counts = await queue.getJobCounts(...COUNTED_STATES);
      if (input.values.json) {
        io.out(JSON.stringify({ views: rows, queues: { [QUEUES.refresh]: counts } }, null, 2));
        return 0;
      }
      const table = [
        [
          'VIEW',
          'SHAPE',
          'VERSION',
          'REFRESHED AT',
          'MS',
          'ROWS',
          'SCHEDULE',
          'NEXT RUN',
          'LAST FULL RUN',
          'AUDIT',
          'LAST ERROR',
        ],
        ...rows.map((row) => [
          row.view,
          row.shape,
          String(row.version),
          row.refreshed_at ?? 'never',
          row.duration_ms === null ? '-' : String(row.duration_ms),
          row.rows === null ? '-' : String(row.rows),
          row.schedule ?? '-',
          row.next_run ?? '-',
          row.last_full_run
            ? `${row.last_full_run.at} ${row.last_full_run.outcome} ${row.last_full_run.duration_ms} ms (${row.last_full_run.trigger})`
            : '-',
          row.audit
            ? `${row.audit.checked} checked, ${row.audit.drifted} drifted, ${row.audit.repaired} repaired (last ${row.audit.last_at})`
            : '-',
          [
            row.chunks ? `rebuilding: ${row.chunks.done}/${row.chunks.total} chunks` : '',
            row.last_error ?? '',
          ]
            .filter(Boolean)
            .join('; '),
        ]),
      ];
      const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
      for (const line of table)
        io.out(
          line
            .map((cell, column) => cell.padEnd(widths[column]!))
            .join('  ')
            .trimEnd(),
        );
      io.out('');
      io.out(
        `queue ${QUEUES.refresh}: ${COUNTED_STATES.map((state) => `${state} ${counts[state] ?? 0}`).join(', ')}`,
      );
      return 0;
    } finally {
      await within(queue?.close() ?? Promise.resolve(), CLOSE_TIMEOUT_MS, () => new Error('close')).catch(
        () => undefined,
      );
      await closeRedis(views);
      if (queueConnection !== views) await closeRedis(queueConnection);
      await db.close();
    }
  },
});

/** A view's drift-audit counters (views/audit.ts): cumulative, and the last audit's; null before any. */
function auditSummary(hash: Record<string, string>) {
  if (!hash.last_at) return null;
  return {
    checked: Number(hash.checked ?? 0),
    drifted: Number(hash.drifted ?? 0),
    repaired: Number(hash.repaired ?? 0),
    last_at: hash.last_at,
    last_checked: Number(hash.last_checked ?? 0),
    last_drifted: Number(hash.last_drifted ?? 0),
    last_repaired: Number(hash.last_repaired ?? 0),
  };
}

/** Chunked rebuilds in progress, by view: the progress hashes the parent jobs keep. */
async function chunkProgress(
  redis: import('ioredis').Redis,
  prefix: string,
): Promise<Map<string, { done: number; total: number }>> {
  const progress = new Map<string, { done: number; total: number }>();
  for await (const keys of redis.scanStream({ match: chunkStatePattern(prefix), count: 100 })) {
    for (const key of keys as string[]) {
      const state = await redis.hgetall(key);
      if (state.view)
        progress.set(state.view, { done: Number(state.done ?? 0), total: Number(state.total ?? 0) });
    }
  }
  return progress;
}
