import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Auth } from './auth.ts';
import { HttpError, type Reply, type Route } from './server.ts';

/**
 * Scripts and styles only from this server, no inline script, no framing: the page holds nothing
 * another site should be able to read or click.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const HTML = 'text/html; charset=utf-8';

/** The login form: the only thing an unauthenticated browser gets, and it says nothing about the daemon. */
const LOGIN = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>viewkeeper</title></head>
<body>
<form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Open</button>
</form>
</body></html>
`;

interface Asset {
  file: string;
  type: string;
}

/**
 * The status page and what it loads: its own HTML, script and style (src/http/page/, plain files —
 * nothing to build) and uPlot from node_modules (no CDN). Files are read on first request, then kept.
 */
export function pageRoutes(auth: Auth): { routes: Route[]; loginPage: (path: string) => Reply | undefined } {
  const require = createRequire(import.meta.url);
  const own = (name: string) => fileURLToPath(new URL(`./page/${name}`, import.meta.url));
  const assets: Record<string, Asset> = {
    'page.js': { file: own('page.js'), type: 'text/javascript; charset=utf-8' },
    'page.css': { file: own('page.css'), type: 'text/css; charset=utf-8' },
    'uplot.js': {
      file: require.resolve('uplot/dist/uPlot.iife.min.js'),
      type: 'text/javascript; charset=utf-8',
    },
    'uplot.css': { file: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
  };
  const cache = new Map<string, Buffer>();
  const read = (file: string) => {
    let body = cache.get(file);
    if (!body) {
      body = readFileSync(file);
      cache.set(file, body);
    }
    return body;
  };
  const pageHeaders = { 'content-security-policy': CSP, 'x-frame-options': 'DENY' };

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/',
      handle: () => ({ status: 200, type: HTML, body: read(own('index.html')), headers: pageHeaders }),
    },
    {
      method: 'GET',
      path: /\/assets\/(?<name>[a-z.]+)/,
      handle({ params }) {
        const asset = assets[params.name ?? ''];
        if (!asset) throw new HttpError(404, 'not found');
        return { status: 200, type: asset.type, body: read(asset.file) };
      },
    },
    {
      // The form posts the token once; the browser then holds a session cookie, never the token.
      method: 'POST',
      path: '/login',
      public: true,
      maxBody: 2048,
      async handle({ body }): Promise<Reply> {
        const form = new URLSearchParams((await body()).toString('utf8'));
        if (!auth.required) return { status: 303, headers: { location: '/' } };
        if (!auth.isToken(form.get('token') ?? '')) {
          return { status: 401, type: HTML, body: LOGIN, headers: pageHeaders };
        }
        return { status: 303, headers: { location: '/', 'set-cookie': auth.sessionCookie() } };
      },
    },
  ];
  return {
    routes,
    loginPage: (path) =>
      path === '/' ? { status: 401, type: HTML, body: LOGIN, headers: pageHeaders } : undefined,
  };
}
