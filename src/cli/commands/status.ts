import { loadConfig } from '../../config/config.ts';
import { QUEUES } from '../../contract.ts';
import { createQueue } from '../../queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../redis/connections.ts';
import { viewKeys } from '../../redis/keys.ts';
import { loadRegistry } from '../../views/registry.ts';
import { defineCommand } from '../command.ts';

const COUNTED_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

export const statusCommand = defineCommand({
  name: 'status',
  summary:
    'Lists every view in VK_JOBS_DIR with its version, last refresh, duration, rows and last error, and the refresh queue depths.',
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
    const queue = createQueue(QUEUES.refresh, queueConnection, config.prefix);
    try {
      await connectRedis(views, config.redisUrl, 'REDIS_URL');
      await connectRedis(queueConnection, config.queueRedisUrl, 'QUEUE_REDIS_URL');
      const pipeline = views.pipeline();
      const names = [...registry.views.keys()].sort();
      for (const name of names) pipeline.hgetall(viewKeys(config.prefix, name).meta);
      const metas = ((await pipeline.exec()) ?? []).map(
        ([, value]) => (value ?? {}) as Record<string, string>,
      );
      const rows = names.map((name, i) => {
        const meta = metas[i]!;
        const view = registry.view(name)!;
        return {
          view: name,
          shape: view.shape,
          version: meta.version ? Number(meta.version) : 0,
          refreshed_at: meta.refreshed_at || null,
          duration_ms: meta.duration_ms ? Number(meta.duration_ms) : null,
          rows: meta.rows ? Number(meta.rows) : null,
          last_error: meta.last_error || null,
          schedule: view.schedule?.cron ?? null,
        };
      });
      const counts = await queue.getJobCounts(...COUNTED_STATES);
      if (input.values.json) {
        io.out(JSON.stringify({ views: rows, queues: { [QUEUES.refresh]: counts } }, null, 2));
        return 0;
      }
      const table = [
        ['VIEW', 'SHAPE', 'VERSION', 'REFRESHED AT', 'MS', 'ROWS', 'SCHEDULE', 'LAST ERROR'],
        ...rows.map((row) => [
          row.view,
          row.shape,
          String(row.version),
          row.refreshed_at ?? 'never',
          row.duration_ms === null ? '-' : String(row.duration_ms),
          row.rows === null ? '-' : String(row.rows),
          row.schedule ?? '-',
          row.last_error ?? '',
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
      await queue.close().catch(() => undefined);
      await closeRedis(views);
      if (queueConnection !== views) await closeRedis(queueConnection);
    }
  },
});
