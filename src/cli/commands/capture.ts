import { applyChanges, type CaptureChange, planInstall, planUninstall } from '../../capture/install.ts';
import { captureStatus } from '../../capture/status.ts';
import { capturedTables } from '../../capture/tables.ts';
import { loadConfig } from '../../config/config.ts';
import { createDb } from '../../db/create-db.ts';
import { closeRedis, connectRedis, createRedisConnection } from '../../redis/connections.ts';
import { loadRegistry } from '../../views/registry.ts';
import { type CommandIo, defineCommand, usageError } from '../command.ts';

const ACTIONS = ['install', 'uninstall', 'status'] as const;

function report(changes: CaptureChange[], dryRun: boolean, io: CommandIo): void {
  if (dryRun) {
    for (const change of changes) {
      if (change.action === 'missing') io.out(`-- ${change.table}: table does not exist, skipped`);
      if (change.statements.length === 0) continue;
      io.out(
        `-- ${change.table}: ${change.action === 'removed' ? 'remove' : change.action === 'created' ? 'create' : 'update'}`,
      );
      for (const statement of change.statements) io.out(`${statement};`);
    }
    if (changes.every((change) => change.statements.length === 0)) io.out('-- nothing to change');
    return;
  }
  for (const change of changes) {
    if (change.action === 'missing') {
      io.out(`${change.table}: table does not exist (dropped or renamed?): skipped`);
      continue;
    }
    const columns =
      change.action === 'removed' ? '' : ` (records ${change.columns.join(', ') || 'no columns'})`;
    io.out(`${change.table}: ${change.action === 'unchanged' ? 'up to date' : change.action}${columns}`);
  }
  if (changes.length === 0) io.out('no capture triggers to change');
}

function age(seconds: number | null): string {
  if (seconds === null) return '-';
  return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

export const captureCommand = defineCommand({
  name: 'capture',
  summary:
    'Change capture: install creates or updates the triggers on every table the views in VK_JOBS_DIR capture (idempotent; prints what changed); uninstall removes them all; status shows tables covered, outbox depth, oldest pending change, drain rate and failed changes.',
  usage: 'capture install|uninstall|status [--dry-run] [--json]',
  help: [
    '  --dry-run  install/uninstall: print the SQL instead of running it',
    '  --json     status: print one JSON object',
  ],
  options: { 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: true,
  async run(input, io) {
    const [action, ...extra] = input.positionals;
    if (!ACTIONS.includes(action as (typeof ACTIONS)[number]) || extra.length > 0) {
      throw usageError(
        `capture needs one of ${ACTIONS.join(', ')}, got ${JSON.stringify(input.positionals.join(' '))}`,
      );
    }
    const config = loadConfig();
    const registry = await loadRegistry(config.jobsDir);
    const tables = capturedTables(registry.views.values());
    const db = createDb(config.databaseUrl, { max: 1, applicationName: 'viewkeeper-cli' });
    try {
      await db.ping();
      const dryRun = input.values['dry-run'] === true;
      if (action === 'install') {
        const changes = await planInstall(db.db, tables);
        if (!dryRun) await applyChanges(db.db, changes);
        report(changes, dryRun, io);
        return 0;
      }
      if (action === 'uninstall') {
        const changes = await planUninstall(db.db);
        if (!dryRun) await applyChanges(db.db, changes);
        report(changes, dryRun, io);
        return 0;
      }
      const redis = createRedisConnection(config.queueRedisUrl, {
        role: 'queue',
        name: `${config.prefix}:cli`,
      });
      try {
        await connectRedis(redis, config.queueRedisUrl, 'QUEUE_REDIS_URL');
        const status = await captureStatus(db.db, redis, config.prefix, tables);
        if (input.values.json) {
          io.out(JSON.stringify(status, null, 2));
          return 0;
        }
        const width = Math.max(5, ...status.tables.map((table) => table.table.length));
        io.out(`${'TABLE'.padEnd(width)}  TRIGGERS  RECORDS  VIEWS`);
        for (const table of status.tables) {
          io.out(
            `${table.table.padEnd(width)}  ${(table.installed ? 'current' : 'no').padEnd(8)}  ${(table.columns.join(',') || '-').padEnd(7)}  ${table.views.join(', ')}`,
          );
        }
        if (status.tables.length === 0) io.out('(no loaded view declares capture)');
        io.out('');
        const { outbox, drained } = status;
        io.out(
          `outbox: ${outbox.depth} statements pending (${outbox.rows} changed rows), oldest ${outbox.oldest ? `${outbox.oldest.toISOString()} (${age(outbox.oldestAgeSeconds)} ago)` : '-'}`,
        );
        io.out(`drained: ${drained.last5min} rows in the last 5 min (${drained.perSecond} rows/s)`);
        io.out(`failed changes: ${outbox.failed} (viewkeeper.capture_failures)`);
        for (const failure of outbox.recentFailures) {
          io.out(
            `  ${failure.failed_at.toISOString()} ${failure.view} ← ${failure.table_name} ${JSON.stringify(failure.row)}: ${failure.reason}`,
          );
        }
        for (const problem of status.problems) io.out(`problem: ${problem}`);
        return 0;
      } finally {
        await closeRedis(redis);
      }
    } finally {
      await db.close();
    }
  },
});
