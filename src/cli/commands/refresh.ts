import type { Queue, QueueEvents } from 'bullmq';
import { enqueueRefresh, waitForRefresh } from '../../client/refresh.ts';
import { loadConfig } from '../../config/config.ts';
import { endpointOf } from '../../config/redact.ts';
import type { RefreshJobResult } from '../../contract.ts';
import { QUEUES } from '../../contract.ts';
import { ViewkeeperError } from '../../errors.ts';
import { createQueue, createQueueEvents } from '../../queues/factories.ts';
import { parseRefreshJob } from '../../queues/refresh-payload.ts';
import type { RedisConnection } from '../../redis/connections.ts';
import { closeRedis, connectRedis, createRedisConnection } from '../../redis/connections.ts';
import { viewKeys } from '../../redis/keys.ts';
import { placementOf } from '../../redis/placement.ts';
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
import { renderProgress } from '../progress-bar.ts';
import { refreshParams } from '../refresh-params.ts';

export const refreshCommand = defineCommand({
  name: 'refresh',
  summary:
    'Enqueues a refresh of a view on the refresh queue (the same path other apps use): a full rebuild, with --param only the key those params select, or with --key a bulk refresh of many keys.',
  usage:
    'refresh <view> [--param name=value]… | [--key name=value|JSON]… [--wait] [--timeout seconds] [--json]',
  help: [
    '  --param name=value  narrow to a partial refresh of one key (repeat for each param; each name once);',
    '                      values are validated by the daemon',
    '  --key name=value    one key of a bulk refresh (repeat per key, up to 10000); for a view with several',
    '                      params give a JSON object: --key \'{"org_id":1,"user_id":2}\'',
    '  --wait              wait for the run, print rows and duration; exit 1 with the reason if it failed',
    '  --timeout seconds   how long --wait waits (default 60)',
    '  --json              print the result of --wait as one JSON object (no progress bar)',
    '',
    'With --wait on a terminal, a full rebuild shows a progress bar on stderr: rows written so far',
    "against the last rebuild's rows, elapsed time and ETA (off a terminal: only the result line).",
  ],
  options: {
    param: { type: 'string', multiple: true },
    key: { type: 'string', multiple: true },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
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
    const connection = createRedisConnection(config.queueRedisUrl, {
      role: 'queue',
      name: `${config.prefix}:cli`,
    });
    // Progress is read from the views Redis (key index and metadata).
    const views =
      wait && config.redisUrl !== config.queueRedisUrl
        ? createRedisConnection(config.redisUrl, { role: 'views', name: `${config.prefix}:cli` })
        : connection;
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
      // Partial refreshes are a few keys: nothing to watch. Off a terminal (and with --json) the
      // output stays plain: the result line only.
      if (views !== connection) {
        await connectRedis(views, config.redisUrl, 'REDIS_URL', Math.min(remaining(), CONNECT_TIMEOUT_MS));
      }
      const stopProgress =
        params || input.values.json || !process.stderr.isTTY
          ? undefined
          : await watchProgress(views, config.prefix, view);
      const result = await waitForRefresh(job, events, remaining()).finally(() => stopProgress?.());
      if (input.values.json) {
        io.out(JSON.stringify(result));
        return 0;
      }
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
      if (views !== connection) await closeRedis(views);
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
 * Watches a full rebuild from outside: the view's key index counts the keys written by runs whose
 * sequence is above the one the view had when the request was made (this run, and any partial
 * refresh meanwhile: close enough for a progress bar), against the rows of its last full rebuild.
 * It redraws one line of the terminal; returns the function that stops it and clears the line.
 */
async function watchProgress(views: RedisConnection, prefix: string, view: string): Promise<() => void> {
  const { meta, keyIndex } = viewKeys(prefix, view);
  const [seq, lastRows] = await views.hmget(meta, 'seq', 'rows');
  const since = Number(seq ?? 0);
  // On a cluster the index is split by slot (placement.ts): counting it every 250 ms would cost a
  // command per slot, so the bar shows the elapsed time only there.
  const perRow = !placementOf(views).cluster && ((await views.exists(keyIndex)) === 1 || since === 0);
  const started = Date.now();
  let drawn = false;
  const timer = setInterval(async () => {
    const rows = perRow ? await views.zcount(keyIndex, since + 1, '+inf').catch(() => null) : null;
    const line = renderProgress({
      rows,
      lastRows: lastRows ? Number(lastRows) : null,
      elapsedMs: Date.now() - started,
    });
    process.stderr.write(`\r\x1b[2K${line}`);
    drawn = true;
  }, 250);
  return () => {
    clearInterval(timer);
    if (drawn) process.stderr.write('\r\x1b[2K');
  };
}
