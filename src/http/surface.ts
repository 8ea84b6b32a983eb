import type { Queue } from 'bullmq';
import { enqueueRefresh } from '../client/refresh.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { RedisConnection } from '../redis/connections.ts';
import { clientKeys } from '../redis/keys.ts';
import type { Registry } from '../views/registry.ts';
import { createAuth } from './auth.ts';
import type { History } from './history.ts';
import type { Liveness } from './liveness.ts';
import type { MemorySampler } from './memory-sampler.ts';
import type { Metrics } from './metrics.ts';
import { pageRoutes } from './page.ts';
import { createQueueBoard, QUEUE_BOARD_PATH } from './queue-board.ts';
import type { Readiness } from './readiness.ts';
import { createHttpServer, HttpError, type HttpServer, type Reply, type Route } from './server.ts';
import type { StatusDocument } from './status-document.ts';

/** What the routes read, filled in by the daemon as start-up proceeds (the server listens first). */
export interface SurfaceParts {
  definitions: Registry;
  metrics: Metrics;
  status: () => Promise<StatusDocument>;
  history: History;
  memory: MemorySampler;
  views: RedisConnection;
  prefix: string;
  refreshQueue: Queue;
  /** Every queue bull-board shows: the public ones and the internal ones. */
  boardQueues: Queue[];
}

export interface HttpSurfaceOptions {
  host: string;
  port: number;
  token: string | undefined;
  liveness: Liveness;
  readiness: Readiness;
  logger: Logger;
}

export interface HttpSurface extends HttpServer {
  /** Connects the routes that need the daemon's parts; until then they answer 503. */
  attach(parts: SurfaceParts): void;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const json = (status: number, value: unknown): Reply => ({
  status,
  type: JSON_TYPE,
  body: `${JSON.stringify(value)}\n`,
});
/** Hot keys shown on the page. */
const HOT_KEYS_SHOWN = 15;

/**
 * The operations surface: /livez (/healthz), /readyz, /metrics, /status, /queues (bull-board), the
 * status page at / and the JSON it polls. The server listens before the daemon connects anything,
 * so a taken port stops start-up at once and /livez answers while the rest starts.
 */
export function createHttpSurface(options: HttpSurfaceOptions): HttpSurface {
  const auth = createAuth(options.token);
  let parts: SurfaceParts | undefined;
  let board:
    | ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>)
    | undefined;
  const need = (): SurfaceParts => {
    if (!parts) throw new HttpError(503, 'starting');
    return parts;
  };

  async function overview(current: SurfaceParts) {
    const [status, ready, hot] = await Promise.all([
      current.status(),
      options.readiness.check(),
      current.views.zrevrange(clientKeys(current.prefix).hotKeys, 0, HOT_KEYS_SHOWN - 1, 'WITHSCORES'),
    ]);
    const hotKeys: { key: string; reads: number }[] = [];
    for (let i = 0; i + 1 < hot.length; i += 2)
      hotKeys.push({ key: hot[i]!, reads: Math.round(Number(hot[i + 1])) });
    return {
      at: new Date().toISOString(),
      ready,
      status,
      samples: current.history.samples(),
      runs: current.history.runs(),
      memory: Object.fromEntries(current.memory.estimates()),
      hotKeys,
    };
  }

  const page = pageRoutes(auth);
  const routes: Route[] = [
    ...['/livez', '/healthz'].map(
      (path): Route => ({
        method: 'GET',
        path,
        public: true,
        handle() {
          const { alive, eventLoopDelayMs } = options.liveness.check();
          return json(alive ? 200 : 503, {
            status: alive ? 'alive' : 'event loop blocked',
            eventLoopDelayMs,
          });
        },
      }),
    ),
    {
      method: 'GET',
      path: '/readyz',
      public: true,
      async handle() {
        const { ready, failing, degraded } = await options.readiness.check();
        const extra = degraded ? { degraded } : {};
        return json(
          ready ? 200 : 503,
          ready ? { status: 'ready', ...extra } : { status: 'not ready', failing, ...extra },
        );
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      async handle() {
        const { register } = need().metrics;
        return { status: 200, type: register.contentType, body: await register.metrics() };
      },
    },
    {
      method: 'GET',
      path: '/status',
      handle: async () => json(200, await need().status()),
    },
    {
      method: 'GET',
      path: '/api/overview',
      handle: async () => json(200, await overview(need())),
    },
    {
      // "refresh now" on the page: a full rebuild through the refresh queue, like any other app's.
      method: 'POST',
      path: /\/api\/views\/(?<view>[^/]+)\/refresh/,
      maxBody: 1024,
      async handle({ req, params, body }) {
        const current = need();
        // A JSON content type cannot be sent cross-site without a CORS preflight, which this server
        // never grants: a second wall behind the Origin check.
        if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
          throw new HttpError(400, 'send Content-Type: application/json');
        }
        const raw = (await body()).toString('utf8').trim();
        if (raw !== '') {
          try {
            JSON.parse(raw);
          } catch {
            throw new HttpError(400, 'request body is not JSON');
          }
        }
        const name = decodeURIComponent(params.view ?? '');
        if (!current.definitions.view(name))
          throw new HttpError(404, `no view named ${JSON.stringify(name.slice(0, 100))}`);
        const job = await enqueueRefresh(current.refreshQueue, name, undefined, { reason: 'status page' });
        return json(202, { view: name, job: job.id });
      },
    },
    ...page.routes,
  ];

  const server = createHttpServer({
    host: options.host,
    port: options.port,
    auth,
    routes,
    loginPage: page.loginPage,
    mounts: [
      {
        prefix: QUEUE_BOARD_PATH,
        async handle(req, res) {
          if (!board) {
            res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('starting\n');
            return;
          }
          await board(req, res);
        },
      },
    ],
    logger: options.logger,
  });

  return {
    ...server,
    attach(next) {
      parts = next;
      board = createQueueBoard(next.boardQueues);
    },
  };
}
