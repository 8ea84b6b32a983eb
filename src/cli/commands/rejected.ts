import { loadConfig, type ResolvedConfig } from '../../config/config.ts';
import { QUEUES } from '../../contract.ts';
import { createDb } from '../../db/create-db.ts';
import { deleteRejected, listRejected, type RejectedSelection } from '../../db/rejected-ops.ts';
import { createQueue } from '../../queues/factories.ts';
import { sinksOf } from '../../queues/write-behind-payload.ts';
import { closeRedis, connectRedis, createRedisConnection } from '../../redis/connections.ts';
import { retryRejected } from '../../sinks/replay-rejected.ts';
import { loadRegistry } from '../../views/registry.ts';
import { type CommandIo, defineCommand, type ParsedInput, usageError } from '../command.ts';

const ACTIONS = ['list', 'retry', 'drop'] as const;

/** `<id…>` or `--all` (optionally narrowed by `--sink`), never both, never neither. */
function selection(input: ParsedInput, ids: string[], action: string): RejectedSelection {
  const all = input.values.all === true;
  const sink = input.values.sink as string | undefined;
  if (all && ids.length > 0) throw usageError(`rejected ${action}: give ids or --all, not both`);
  if (all) return sink === undefined ? { all: true } : { all: true, sink };
  if (ids.length === 0) throw usageError(`rejected ${action}: which rows? give their ids, or --all`);
  if (sink !== undefined) throw usageError(`rejected ${action}: --sink goes with --all, not with ids`);
  for (const id of ids) {
    if (!/^[1-9]\d{0,17}$/.test(id))
      throw usageError(`rejected ${action}: ${JSON.stringify(id)} is not a row id (see rejected list)`);
  }
  return { ids };
}

/** Ids asked for that the table does not hold: reported, and exit 1. */
function missing(asked: RejectedSelection, found: string[], io: CommandIo): boolean {
  if (!('ids' in asked)) return false;
  const absent = asked.ids.filter((id) => !found.includes(id));
  if (absent.length > 0) io.err(`no rejected op with id ${absent.join(', ')}`);
  return absent.length > 0;
}

async function list(config: ResolvedConfig, input: ParsedInput, io: CommandIo): Promise<number> {
  const db = createDb(config.databaseUrl, { max: 1 });
  try {
    await db.ping();
    const sink = input.values.sink as string | undefined;
    const { rows } = await listRejected(db.db, sink === undefined ? { all: true } : { all: true, sink });
    if (input.values.json) {
      io.out(JSON.stringify(rows, null, 2));
      return 0;
    }
    if (rows.length === 0) {
      io.out('no rejected ops');
      return 0;
    }
    const table = [
      ['ID', 'SINK', 'OP ID', 'JOB', 'REJECTED AT', 'REASON'],
      ...rows.map((row) => [
        row.id,
        row.sink,
        row.opId,
        row.jobId ?? '-',
        row.rejectedAt.toISOString(),
        row.reason,
      ]),
    ];
    const widths = table[0]!.map((_, column) =>
      Math.max(...table.map((line) => (column === 5 ? 0 : line[column]!.length))),
    );
    for (const line of table) io.out(line.map((cell, column) => cell.padEnd(widths[column]!)).join('  '));
    return 0;
  } finally {
    await db.close();
  }
}

async function retry(config: ResolvedConfig, which: RejectedSelection, io: CommandIo): Promise<number> {
  // Definitions first: the ops are validated against the sinks as they are defined now.
  const sinks = sinksOf((await loadRegistry(config.jobsDir)).others.values());
  const db = createDb(config.databaseUrl, { max: 1 });
  const connection = createRedisConnection(config.queueRedisUrl, {
    role: 'queue',
    name: `${config.prefix}:cli`,
  });
  const queue = createQueue(QUEUES.writeBehind, connection, config.prefix);
  try {
    await db.ping();
    await connectRedis(connection, config.queueRedisUrl, config.queueRedisVariable);
    const outcome = await retryRejected(db.db, queue, sinks, which);
    for (const kept of outcome.kept)
      io.err(`kept rejected op ${kept.id} (${kept.sink} ${kept.opId}): ${kept.reason}`);
    const jobs = [...new Set(outcome.enqueued.map((row) => row.jobId))];
    io.out(
      `re-enqueued ${outcome.enqueued.length} ops in ${jobs.length} jobs${jobs.length > 0 ? ` (${jobs.join(', ')})` : ''}; ${outcome.kept.length} kept`,
    );
    const found = [...outcome.enqueued, ...outcome.kept].map((row) => row.id);
    return missing(which, found, io) || outcome.kept.length > 0 ? 1 : 0;
  } finally {
    await queue.close().catch(() => undefined);
    await closeRedis(connection);
    await db.close();
  }
}

async function drop(config: ResolvedConfig, which: RejectedSelection, io: CommandIo): Promise<number> {
  const db = createDb(config.databaseUrl, { max: 1 });
  try {
    await db.ping();
    const dropped = await deleteRejected(db.db, which);
    io.out(`dropped ${dropped.length} rejected ops`);
    return missing(which, dropped, io) ? 1 : 0;
  } finally {
    await db.close();
  }
}

export const rejectedCommand = defineCommand({
  name: 'rejected',
  summary:
    'Write-behind ops the sink or the database refused, kept in viewkeeper.rejected_ops: list them, retry them (validated again and re-enqueued; applied at most once), or drop them.',
  usage:
    'rejected list [--sink name] [--json] | rejected retry <id…>|--all [--sink name] | rejected drop <id…>|--all [--sink name]',
  help: [
    '  --sink name  only the ops of this sink (list, or with --all)',
    '  --all        every row (of --sink, if given) instead of ids',
    '  --json       list: print a JSON array instead of a table',
  ],
  options: {
    sink: { type: 'string' },
    all: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  async run(input, io) {
    const [action, ...ids] = input.positionals;
    if (!action || !(ACTIONS as readonly string[]).includes(action)) {
      throw usageError(
        `${action === undefined ? 'which action?' : `unknown action ${JSON.stringify(action)}:`} use ${ACTIONS.join(', ')}`,
      );
    }
    if (action === 'list') {
      if (ids.length > 0 || input.values.all)
        throw usageError('rejected list takes no ids; use --sink to narrow');
      return list(loadConfig(), input, io);
    }
    if (input.values.json) throw usageError(`--json goes with rejected list, not ${action}`);
    const which = selection(input, ids, action);
    return action === 'retry' ? retry(loadConfig(), which, io) : drop(loadConfig(), which, io);
  },
});
