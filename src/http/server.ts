import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { ViewkeeperError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import { type Auth, loopbackHost, sameOrigin } from './auth.ts';

/** What a route answers. */
export interface Reply {
  status: number;
  body?: string | Buffer;
  /** Content-Type. @defaultValue `text/plain; charset=utf-8` */
  type?: string;
  headers?: Record<string, string>;
}

export interface RouteContext {
  req: IncomingMessage;
  url: URL;
  /** Named groups of the route's path pattern. */
  params: Record<string, string>;
  /** The request body, at most the route's `maxBody` bytes (more: HttpError 400). */
  body(): Promise<Buffer>;
}

export interface Route {
  method: 'GET' | 'POST';
  /** An exact path, or a pattern with named groups (`/api/views/(?<name>[^/]+)/refresh`). */
  path: string | RegExp;
  /** Served without the token (`/livez`, `/readyz`, the login form's POST). @defaultValue false */
  public?: boolean;
  /** Largest body accepted. @defaultValue 0 (none) */
  maxBody?: number;
  handle(ctx: RouteContext): Promise<Reply> | Reply;
}

/** A handler that owns everything under a path prefix (bull-board under /queues). */
export interface Mount {
  prefix: string;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/** An answer with a one-line reason, thrown by routes: 400 bad body, 404 unknown view, … */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface HttpServerOptions {
  host: string;
  port: number;
  auth: Auth;
  routes: Route[];
  mounts?: Mount[];
  /** What an unauthenticated GET of `path` gets instead of the bare 401 (the login form for `/`). */
  loginPage?: (path: string) => Reply | undefined;
  logger: Logger;
}

export interface HttpServer {
  /** Listens; rejects with `E_HTTP_LISTEN` naming the port when it cannot. Resolves with the port. */
  listen(): Promise<number>;
  /** Stops listening and closes open connections. Idempotent. */
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

function send(res: ServerResponse, reply: Reply, head: boolean): void {
  const body = reply.body ?? '';
  res.writeHead(reply.status, {
    'content-type': reply.type ?? TEXT,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...reply.headers,
  });
  res.end(head ? undefined : body);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new HttpError(400, `request body over ${limit} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(400, `request body over ${limit} bytes`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function match(route: Route, path: string): Record<string, string> | undefined {
  if (typeof route.path === 'string') return route.path === path ? {} : undefined;
  const found = route.path.exec(path);
  return found && found[0] === path ? { ...found.groups } : undefined;
}

/**
 * The daemon's HTTP listener, plain node:http. Every request passes, in order: the loopback Host
 * check (when no token is set), the same-origin check for anything but GET/HEAD, the token (unless
 * the route is public), then its route. Failures answer one line; nothing logs a stack or throws
 * out of the handler.
 */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { auth, routes } = options;
  const logger = options.logger.child({ component: 'http' });
  const mounts = options.mounts ?? [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    const method = head ? 'GET' : req.method;
    const url = new URL(req.url ?? '/', 'http://viewkeeper');
    if (!auth.required && !loopbackHost(req)) return send(res, { status: 403, body: 'forbidden\n' }, head);
    if (method !== 'GET' && !sameOrigin(req))
      return send(res, { status: 403, body: 'cross-site request refused\n' }, head);

    const candidates = routes.filter((route) => match(route, url.pathname) !== undefined);
    const route = candidates.find((candidate) => candidate.method === method);
    if (!route?.public && !auth.authenticated(req)) {
      const page = method === 'GET' ? options.loginPage?.(url.pathname) : undefined;
      return send(
        res,
        page ?? {
          status: 401,
          body: 'unauthorized\n',
          headers: { 'www-authenticate': 'Bearer realm="viewkeeper"' },
        },
        head,
      );
    }
    const mount = mounts.find((m) => url.pathname === m.prefix || url.pathname.startsWith(`${m.prefix}/`));
    if (!route && mount) return mount.handle(req, res);
    if (!route) {
      if (candidates.length > 0) {
        const allow = [...new Set(candidates.map((candidate) => candidate.method))].join(', ');
        return send(res, { status: 405, body: 'method not allowed\n', headers: { allow } }, head);
      }
      return send(res, { status: 404, body: 'not found\n' }, head);
    }
    const reply = await route.handle({
      req,
      url,
      params: match(route, url.pathname)!,
      body: () => readBody(req, route.maxBody ?? 0),
    });
    send(res, reply, head);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof HttpError) {
        send(res, { status: error.status, body: `${error.message}\n` }, false);
        return;
      }
      logger.warn({ path: req.url?.split('?')[0], reason: (error as Error)?.message }, 'http request failed');
      send(res, { status: 500, body: 'internal error\n' }, false);
    });
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  // A slow or silent client must not hold a socket (and a request body) for ever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  let closing: Promise<void> | undefined;
  return {
    listen() {
      return new Promise((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException) => {
          const why =
            error.code === 'EADDRINUSE'
              ? 'is in use: stop what listens there or choose another VK_HTTP_PORT'
              : `cannot be listened on (${error.code ?? error.message}): choose another VK_HTTP_PORT or VK_HTTP_HOST`;
          reject(
            new ViewkeeperError('E_HTTP_LISTEN', `VK_HTTP_PORT=${options.port} on ${options.host} ${why}`),
          );
        };
        server.once('error', onError);
        server.listen(options.port, options.host, () => {
          server.off('error', onError);
          const address = server.address();
          const port = typeof address === 'object' && address ? address.port : options.port;
          logger.info(
            { host: options.host, port, auth: auth.required ? 'bearer token' : 'none (loopback)' },
            'http listening',
          );
          resolve(port);
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
        // Requests still running (a slow scrape) get a moment, then their sockets go.
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
      return closing;
    },
  };
}
