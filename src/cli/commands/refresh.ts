import type { Queue, QueueEvents } from 'bullmq';
import { enqueueRefresh, waitForRefresh } from '../../client/refresh.ts';
import { loadConfig } from '../../config/config.ts';
import { endpointOf } from '../../config/redact.ts';
import type { RefreshJobResult } from '../../contract.ts';
import { QUEUES } from '../../contract.ts';
import { ViewkeeperError } from '../../errors.ts';
import { chunkStateKey } from '../../queues/chunked-rebuild.ts';
import { createQueue, createQueueEvents } from '../../queues/factories.ts';
import { parseRefreshJob } from '../../queues/refresh-payload.ts';
import { closeRedis, connectRedis, createRedis } from '../../redis/connections.ts';
import { loadRegistry } from '../../views/registry.ts';
import {
  CLOSE_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  type CommandIo,
  defineCommand,
  integerFlag,
  usageError,
  within,
} from '../command.ts';
import { refreshParams } from '../refresh-params.ts';

export const refreshCommand = defineCommand({
  name: 'refresh',
  summary:
    'Enqueues a refresh of a view on the refresh queue (the same path other apps use): a full rebuild, with --param only the key those params select, or with --key a bulk refresh of many keys.',
  usage: 'refresh <view> [--param name=value]… | [--key name=value|JSON]… [--wait] [--timeout seconds]',
  help: [
    '  --param name=value  narrow to a partial refresh of one key (repeat for each param; each name once);',
    '                      values are validated by the daemon',
    '  --key name=value    one key of a bulk refresh (repeat per key, up to 10000); for a view with several',
    '                      params give a JSON object: --key \'{"org_id":1,"user_id":2}\'',
    '  --wait              wait for the run, print rows and duration; exit 1 with the reason if it failed',
    '  --timeout seconds   how long --wait waits (default 60)',
  ],
  options: {
    param: { type: 'string', multiple: true },
    key: { type: 'string', multiple: true },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
  },
  allowPositionals: true,
  async run(input, io) {
    const [view, ...extra] = input.positionals;
    if (!view) throw usageError('which view? give its name: viewkeeper refresh <view>');
    if (extra.length > 0) throw usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    const params = refreshParams(
      input.values.param as string[] | undefined,
      input.values.key as string[] | undefined,
    );
    const timeoutSeconds = integerFlag(input, 'timeout', 1, 86_400) ?? 60;
    const wait = input.values.wait === true;
    const config = loadConfig();
    await checkRequest(config.jobsDir, view, params);

    // The whole command is bounded: --timeout with --wait, a few seconds to reach Redis without.
    const deadline = Date.now() + (wait ? timeoutSeconds * 1000 : CONNECT_TIMEOUT_MS);
    const remaining = () => Math.max(1, deadline - Date.now());
    const variable = config.queueRedisVariable;
    const connection = createRedis(config.queueRedisUrl, { role: 'queue', name: `${config.prefix}:cli` });
    let queue: Queue | undefined;
    let events: QueueEvents | undefined;
    try {
      await connectRedis(
        connection,
        config.queueRedisUrl,
        variable,
        Math.min(remaining(), CONNECT_TIMEOUT_MS),
      );
      queue = createQueue(QUEUES.refresh, connection, config.prefix);
      if (!wait) {
        const job = await within(enqueueRefresh(queue, view, params, { reason: 'cli' }), remaining(), () =>
          lost(config.queueRedisUrl, variable, 'enqueue the refresh'),
        );
        const what = Array.isArray(params)
          ? `bulk refresh of ${params.length} keys`
          : `${params ? 'partial' : 'full'} refresh`;
        io.out(`enqueued ${what} of ${view} (job ${job.id})`);
        return 0;
      }
      events = createQueueEvents(QUEUES.refresh, connection, config.prefix);
      // Subscribe before enqueueing so the completion cannot slip past.
      await within(events.waitUntilReady(), remaining(), () =>
        lost(config.queueRedisUrl, variable, 'listen for the result'),
      );
      // --wait gets a job of its own: a coalesced request would have to wait on someone else's job.
      const job = await within(
        enqueueRefresh(queue, view, params, { reason: 'cli', coalesce: false }),
        remaining(),
        () => lost(config.queueRedisUrl, variable, 'enqueue the refresh'),
      );
      const stopProgress = process.stderr.isTTY
        ? showChunkProgress(connection, chunkStateKey(config.prefix, job.id!))
        : undefined;
      const result = await waitForRefresh(job, events, remaining()).finally(() => stopProgress?.());
      if (result.entries) return reportBulk(view, result, io);
      io.out(
        `refreshed ${view} (${result.kind}): ${result.rows} rows in ${result.ms} ms, version ${result.version}${result.superseded ? ' (superseded by a newer rebuild)' : ''}`,
      );
      return 0;
    } finally {
      // Bounded: a Redis that went away must not hold the command past its deadline.
      await within(events?.close() ?? Promise.resolve(), CLOSE_TIMEOUT_MS, () => new Error('close')).catch(
        () => events?.disconnect().catch(() => undefined),
      );
      await within(queue?.close() ?? Promise.resolve(), CLOSE_TIMEOUT_MS, () => new Error('close')).catch(
        () => undefined,
      );
      await closeRedis(connection);
    }
  },
});

/** Prints a bulk refresh's outcome; each failed entry on a line of its own, and exit 1 if any failed. */
function reportBulk(view: string, result: RefreshJobResult, io: CommandIo): number {
  const entries = result.entries ?? [];
  const count = (status: string) => entries.filter((entry) => entry.status === status).length;
  io.out(
    `refreshed ${view} (bulk): ${entries.length} keys — ${count('done')} done, ${count('covered')} covered, ${count('failed')} failed; ${result.rows} rows in ${result.ms} ms, version ${result.version}`,
  );
  for (const entry of entries) if (entry.status === 'failed') io.err(`failed: ${entry.reason}`);
  return count('failed') > 0 ? 1 : 0;
}

/**
 * When the definitions can be loaded (VK_JOBS_DIR), refuses an unknown view or bad params before
 * anything is enqueued, with the reason the daemon would give (exit 2). Without definitions the
 * daemon is the judge, as for any other producer.
 */
async function checkRequest(
  jobsDir: string,
  view: string,
  params: Record<string, unknown> | Record<string, unknown>[] | undefined,
): Promise<void> {
  const registry = await loadRegistry(jobsDir).catch(() => undefined);
  if (!registry || registry.views.size === 0) return;
  parseRefreshJob(registry, view, params ? { params } : {});
}

/** Redis answered the connect, then not in time: one line, like a failed connect. */
function lost(url: string, variable: string, what: string): Error {
  return new ViewkeeperError(
    'E_TIMEOUT',
    `Redis at ${endpointOf(url, 6379)} (${variable}) did not let the command ${what} in time; check that it is up, or give --wait a longer --timeout`,
  );
}

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
