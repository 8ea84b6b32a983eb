import type { Queue } from 'bullmq';
import { loadConfig } from '../../config/config.ts';
import { createDb } from '../../db/create-db.ts';
import { createReadReplica, type ReplicaStatus } from '../../db/read-replica.ts';
import {
  COUNTED_STATES,
  readStatus,
  STATUS_QUEUES,
  type StatusDocument,
} from '../../http/status-document.ts';
import { createQueue } from '../../queues/factories.ts';
import { closeRedis, connectRedis, createRedisConnection } from '../../redis/connections.ts';
import { loadRegistry } from '../../views/registry.ts';
import { CLOSE_TIMEOUT_MS, defineCommand, within } from '../command.ts';

export const statusCommand = defineCommand({
  name: 'status',
  summary:
    "Lists every view in VK_JOBS_DIR: version, last refresh and its age, duration, rows, last error, schedule, next and last scheduled-or-full run, chunked rebuilds in progress, drift-audit counts; the queue depths; the clients' hit rate; the change-capture outbox (depth, oldest change, failed changes); and the read replica's state and replay lag when DATABASE_READ_URL is set.",
  usage: 'status [--json]',
  help: ['  --json  print one JSON object instead of a table (the same document as GET /status)'],
  options: { json: { type: 'boolean' } },
  async run(input, io) {
    const config = loadConfig();
    const registry = await loadRegistry(config.jobsDir);
    const views = createRedisConnection(config.redisUrl, { role: 'views', name: `${config.prefix}:cli` });
    const queueConnection =
      config.queueRedisUrl === config.redisUrl
        ? views
        : createRedisConnection(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:cli` });
    const db = createDb(config.databaseUrl, { max: 1 });
    // A standby that does not answer is a line of the status, not a failure of the command.
    const replica =
      config.databaseReadUrl === undefined
        ? undefined
        : createReadReplica({
            primary: db.db,
            replica: createDb(config.databaseReadUrl, {
              max: 1,
              connectTimeoutMs: 2000,
              variable: 'DATABASE_READ_URL',
            }),
          });
    // Queues only once their connection is known good (right database number): nothing may touch a
    // database the command was not pointed at.
    let queues: Record<string, Queue> = {};
    try {
      await connectRedis(views, config.redisUrl, 'REDIS_URL');
      await connectRedis(queueConnection, config.queueRedisUrl, config.queueRedisVariable);
      await db.ping();
      queues = Object.fromEntries(
        STATUS_QUEUES.map((name) => [name, createQueue(name, queueConnection, config.prefix)]),
      );
      const status = await readStatus({
        registry,
        views,
        queue: queueConnection,
        queues,
        db: db.db,
        replica,
        prefix: config.prefix,
      });
      if (input.values.json) {
        io.out(JSON.stringify(status, null, 2));
        return 0;
      }
      for (const line of renderStatus(status)) io.out(line);
      return 0;
    } finally {
      for (const queue of Object.values(queues)) {
        await within(queue.close(), CLOSE_TIMEOUT_MS, () => new Error('close')).catch(() => undefined);
      }
      await closeRedis(views);
      if (queueConnection !== views) await closeRedis(queueConnection);
      await db.close();
      await replica?.close();
    }
  },
});

/** "42 s", "3 min", "5 h", "2 d": how old the last refresh is. */
export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

function renderStatus(status: StatusDocument): string[] {
  const table = [
    [
      'VIEW',
      'SHAPE',
      'VERSION',
      'REFRESHED AT',
      'AGE',
      'MS',
      'ROWS',
      'SCHEDULE',
      'NEXT RUN',
      'LAST FULL RUN',
      'AUDIT',
      'LAST ERROR',
    ],
    ...status.views.map((row) => [
      row.view,
      row.shape,
      String(row.version),
      row.refreshed_at ?? 'never',
      row.age_s === null ? '-' : formatAge(row.age_s),
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
      [row.chunks ? `rebuilding: ${row.chunks.done}/${row.chunks.total} chunks` : '', row.last_error ?? '']
        .filter(Boolean)
        .join('; '),
    ]),
  ];
  const widths = table[0]!.map((_, column) => Math.max(...table.map((line) => line[column]!.length)));
  const lines = table.map((line) =>
    line
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd(),
  );
  lines.push('');
  for (const [name, counts] of Object.entries(status.queues)) {
    lines.push(
      `queue ${name}: ${COUNTED_STATES.map((state) => `${state} ${counts[state] ?? 0}`).join(', ')}`,
    );
  }
  const { client } = status;
  lines.push(
    client.hit_rate === null
      ? 'client hit rate: no reads counted yet'
      : `client hit rate: ${(client.hit_rate * 100).toFixed(1)} % (${client.hits} hits, ${client.misses} misses, ${client.l1_hits} from L1, ${client.stale_served} stale served)`,
  );
  const { capture } = status;
  lines.push(
    `capture outbox: ${capture.outbox_depth} statements pending (${capture.outbox_rows} rows), oldest ${capture.oldest_change ? `${capture.oldest_change} (${capture.oldest_change_age_s} s ago)` : '-'}, ${capture.failed_changes} failed (viewkeeper capture status)`,
  );
  if (status.replica) lines.push(replicaLine(status.replica));
  return lines;
}

function replicaLine(replica: ReplicaStatus): string {
  if (replica.reason !== null) return `read replica: ${replica.state} (${replica.reason})`;
  const bytes = replica.lag_bytes === null ? '?' : String(replica.lag_bytes);
  const seconds = replica.lag_s === null ? '?' : String(replica.lag_s);
  return `read replica: ${replica.state}, ${bytes} bytes of WAL not replayed, replay lag ${seconds} s`;
}
