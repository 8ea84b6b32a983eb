import { enqueueRefresh, waitForRefresh } from '../../client/refresh.ts';
import { loadConfig } from '../../config/config.ts';
import { QUEUES } from '../../contract.ts';
import { chunkStateKey } from '../../queues/chunked-rebuild.ts';
import { createQueue, createQueueEvents } from '../../queues/factories.ts';
import { closeRedis, connectRedis, createRedis } from '../../redis/connections.ts';
import { defineCommand, integerFlag, usageError } from '../command.ts';

function parseParams(values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const params: Record<string, string> = {};
  for (const pair of values) {
    const at = pair.indexOf('=');
    if (at <= 0) throw usageError(`--param ${JSON.stringify(pair)} is invalid: expected name=value`);
    params[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return params;
}

export const refreshCommand = defineCommand({
  name: 'refresh',
  summary:
    'Enqueues a refresh of a view on the refresh queue (the same path other apps use): a full rebuild, or with --param only the keys those params select.',
  usage: 'refresh <view> [--param name=value]… [--wait] [--timeout seconds]',
  help: [
    '  --param name=value  narrow to a partial refresh (repeatable); values are validated by the daemon',
    '  --wait              wait for the run, print rows and duration; exit 1 with the reason if it failed',
    '  --timeout seconds   how long --wait waits (default 60)',
  ],
  options: {
    param: { type: 'string', multiple: true },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
  },
  allowPositionals: true,
  async run(input, io) {
    const [view, ...extra] = input.positionals;
    if (!view) throw usageError('which view? give its name: viewkeeper refresh <view>');
    if (extra.length > 0) throw usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    const params = parseParams(input.values.param as string[] | undefined);
    const timeoutSeconds = integerFlag(input, 'timeout', 1, 86_400) ?? 60;
    const config = loadConfig();

    const connection = createRedis(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:cli` });
    const queue = createQueue(QUEUES.refresh, connection, config.prefix);
    const events = input.values.wait
      ? createQueueEvents(QUEUES.refresh, connection, config.prefix)
      : undefined;
    try {
      await connectRedis(connection, config.queueRedisUrl, 'QUEUE_REDIS_URL');
      // Subscribe before enqueueing so the completion cannot slip past.
      if (events) await events.waitUntilReady();
      // --wait gets a job of its own: a coalesced request would have to wait on someone else's job.
      const job = await enqueueRefresh(queue, view, params, { reason: 'cli', coalesce: !events });
      if (!events) {
        io.out(`enqueued ${params ? 'partial' : 'full'} refresh of ${view} (job ${job.id})`);
        return 0;
      }
      const stopProgress = process.stderr.isTTY
        ? showChunkProgress(connection, chunkStateKey(config.prefix, job.id!))
        : undefined;
      const result = await waitForRefresh(job, events, timeoutSeconds * 1000).finally(() => stopProgress?.());
      io.out(
        `refreshed ${view} (${result.kind}): ${result.rows} rows in ${result.ms} ms, version ${result.version}${result.superseded ? ' (superseded by a newer rebuild)' : ''}`,
      );
      return 0;
    } finally {
      await events?.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
      await closeRedis(connection);
    }
  },
});

/**
 * Draws `[#####.....] 3/10 chunks` on the terminal while a chunked rebuild runs (nothing for views
 * that are not chunked). Returns the function that stops it and clears the line.
 */
function showChunkProgress(redis: import('ioredis').Redis, key: string): () => void {
  let drawn = false;
  const timer = setInterval(async () => {
    const state = await redis.hmget(key, 'done', 'total').catch(() => [null, null]);
    const total = Number(state[1] ?? 0);
    if (!total) return;
    const done = Number(state[0] ?? 0);
    const width = 30;
    const filled = Math.round((done / total) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} chunks`);
    drawn = true;
  }, 200);
  return () => {
    clearInterval(timer);
    if (drawn) process.stderr.write('\r\x1b[2K');
  };
}
