// A child process holding one viewkeeper client, driven over IPC by test/helpers/client-processes.ts.
// Each request names an operation; the reply carries its result (or error) and the client's stats.
import { Cluster, Redis } from 'ioredis';
import type { ClientOptions } from '../../src/client/options.ts';
import { createClient, type ViewkeeperClient } from '../../src/index.ts';
import { parseRedisTarget } from '../../src/redis/target.ts';

export interface LoaderSpec {
  /** Key INCRed by every loader run: the cross-process count of loads. */
  counterKey: string;
  /** How long each load takes (ms). */
  ms: number;
  /** The load with this attempt number records this process's pid at `${counterKey}:holder` and never ends. */
  hangOnAttempt?: number;
}

export type WorkerRequest =
  | { op: 'cached'; key: string; concurrency: number; loader: LoaderSpec; options?: Record<string, unknown> }
  | { op: 'hash'; view: string; params: Record<string, string | number> }
  | { op: 'stats' }
  | { op: 'close' };

export interface WorkerReply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
  stats?: ReturnType<ViewkeeperClient['stats']>;
}

type Message = { id: number; init?: ClientOptions; counterUrl?: string } & Partial<WorkerRequest>;

let client: ViewkeeperClient | undefined;
let counter: Redis | Cluster | undefined;

/** The counters' connection: the URL may name a cluster (`redis+cluster://`). */
function connect(url: string): Redis | Cluster {
  const target = parseRedisTarget(url);
  return target.kind === 'cluster'
    ? new Cluster(target.nodes, { redisOptions: { password: target.password } })
    : new Redis(url);
}

function loader(spec: LoaderSpec) {
  return async () => {
    const attempt = await counter!.incr(spec.counterKey);
    if (attempt === spec.hangOnAttempt) {
      await counter!.set(`${spec.counterKey}:holder`, String(process.pid));
      await new Promise(() => {}); // a load that never ends: the test kills this process
    }
    await new Promise((resolve) => setTimeout(resolve, spec.ms));
    return { attempt, pid: process.pid };
  };
}

async function handle(message: Message): Promise<unknown> {
  if (message.init) {
    client = createClient(message.init);
    counter = connect(message.counterUrl!);
    // Ready means subscribed to the events: before that the L1 is not filled.
    const deadline = Date.now() + 5000;
    while (!client.health().subscribed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return process.pid;
  }
  switch (message.op) {
    case 'cached': {
      const settled = await Promise.allSettled(
        Array.from({ length: message.concurrency! }, () =>
          client!.cached(message.key!, loader(message.loader!), message.options),
        ),
      );
      return settled.map((outcome) =>
        outcome.status === 'fulfilled' ? outcome.value : { error: String(outcome.reason) },
      );
    }
    case 'hash':
      return client!.hash(message.view!, message.params!);
    case 'stats':
      return null;
    case 'close':
      await client?.close();
      await counter?.quit();
      return null;
    default:
      throw new Error(`unknown op ${String(message.op)}`);
  }
}

process.on('message', (message: Message) => {
  handle(message).then(
    (result) =>
      process.send!({ id: message.id, ok: true, result, stats: client?.stats() } satisfies WorkerReply),
    (error: unknown) =>
      process.send!({
        id: message.id,
        ok: false,
        error: String(error),
        stats: client?.stats(),
      } satisfies WorkerReply),
  );
});
process.on('disconnect', () => process.exit(0));
