import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { resolveConfig } from '../../src/config/config.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | { host_ip?: string; published?: string | number; target?: number })[];
  healthcheck?: { test?: string | string[] };
  depends_on?: string[] | Record<string, { condition?: string }>;
  restart?: string;
  stop_grace_period?: string;
}

const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
};
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function environment(name: string): Record<string, string> {
  const env = service(name).environment ?? {};
  const entries = Array.isArray(env)
    ? env.map((line) => {
        const eq = line.indexOf('=');
        return eq === -1 ? [line, ''] : [line.slice(0, eq), line.slice(eq + 1)];
      })
    : Object.entries(env).map(([key, value]) => [key, value === null ? '' : String(value)]);
  return Object.fromEntries(entries);
}

function commandText(name: string): string {
  const command = service(name).command ?? '';
  return Array.isArray(command) ? command.join(' ') : command;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function instructions(): { keyword: string; args: string }[] {
  return dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

const STORES = ['postgres', 'queue-redis', 'view-redis'];
const KNOWN_VARIABLES = new Set([
  'DATABASE_URL',
  'REDIS_URL',
  'QUEUE_REDIS_URL',
  'VK_PREFIX',
  'VK_JOBS_DIR',
  'VK_HTTP_HOST',
  'VK_HTTP_PORT',
  'VK_HTTP_TOKEN',
  'LOG_LEVEL',
  'VK_REFRESH_CONCURRENCY',
  'NODE_ENV',
]);

describe('docker-compose.yml', () => {
  it('defines postgres, both redis instances and the daemon', () => {
    expect(Object.keys(compose.services).sort()).toEqual(
      ['postgres', 'queue-redis', 'view-redis', 'viewkeeper'].sort(),
    );
  });

  it('runs postgres 17', () => {
    expect(service('postgres').image).toMatch(/^postgres:17(\b|$)/);
  });

  it('keeps queue redis durable and never evicts jobs', () => {
    const command = commandText('queue-redis');
    expect(command).toMatch(/--appendonly\s+yes/);
    expect(command).toMatch(/--maxmemory-policy\s+noeviction/);
    expect(service('queue-redis').image).toMatch(/^redis:7(\.|$)/);
  });

  it('caps view redis memory and evicts only keys with a TTL (never view bookkeeping)', () => {
    const command = commandText('view-redis');
    expect(command).toMatch(/--maxmemory\s+\d+/);
    expect(command).toMatch(/--maxmemory-policy\s+volatile-lru/);
    expect(service('view-redis').image).toMatch(/^redis:7(\.|$)/);
  });

  it('gives postgres and both redis instances a healthcheck', () => {
    for (const name of STORES) {
      expect(service(name).healthcheck?.test, name).toBeTruthy();
    }
    expect(String(service('postgres').healthcheck?.test)).toContain('pg_isready');
  });

  it('the daemon waits for healthy postgres and both redis instances', () => {
    const dependsOn = service('viewkeeper').depends_on;
    expect(Array.isArray(dependsOn)).toBe(false);
    for (const name of STORES) {
      expect((dependsOn as Record<string, { condition?: string }>)[name]?.condition, name).toBe(
        'service_healthy',
      );
    }
  });

  it('points DATABASE_URL at the postgres service with its user, password and database', () => {
    const pg = environment('postgres');
    const url = new URL(environment('viewkeeper').DATABASE_URL ?? '');
    expect(url.hostname).toBe('postgres');
    expect(decodeURIComponent(url.username)).toBe(pg.POSTGRES_USER);
    expect(decodeURIComponent(url.password)).toBe(pg.POSTGRES_PASSWORD);
    expect(url.pathname.slice(1)).toBe(pg.POSTGRES_DB);
  });

  it('sends views to view-redis and queues to queue-redis', () => {
    const env = environment('viewkeeper');
    expect(new URL(env.REDIS_URL ?? '').hostname).toBe('view-redis');
    expect(new URL(env.QUEUE_REDIS_URL ?? '').hostname).toBe('queue-redis');
  });

  it('sets only environment variables the config knows, and they resolve without error', () => {
    const env = environment('viewkeeper');
    for (const name of Object.keys(env)) {
      expect(KNOWN_VARIABLES.has(name), `${name} is not a viewkeeper setting`).toBe(true);
    }
    const config = resolveConfig(env, '/app');
    expect(config.databaseUrl).toBe(env.DATABASE_URL);
    expect(config.queueRedisUrl).not.toBe(config.redisUrl);
  });

  it('serves the HTTP surface on the container loopback, where no token is needed', () => {
    const config = resolveConfig(environment('viewkeeper'), '/app');
    expect(config.httpPort).toBeGreaterThan(0);
    expect(config.httpHost).toBe('127.0.0.1');
  });

  it('checks the daemon through /readyz on its port, with a command the node:24-slim image has', () => {
    const healthcheck = service('viewkeeper').healthcheck;
    const test = healthcheck?.test;
    expect(Array.isArray(test), 'exec form, no shell needed').toBe(true);
    const [kind, program, ...args] = test as string[];
    expect(kind).toBe('CMD');
    // node:24-slim ships node but neither curl nor wget.
    expect(program).toBe('node');
    expect(args[0]).toBe('-e');
    const port = resolveConfig(environment('viewkeeper'), '/app').httpPort;
    expect(args[1]).toContain(`fetch('http://127.0.0.1:${port}/readyz')`);
    expect(args[1]).toMatch(/process\.exit\(r\.ok \? 0 : 1\)/);
  });

  it('publishes every port on 127.0.0.1 only', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const port of svc.ports ?? []) {
        if (typeof port === 'object') {
          expect(port.host_ip, `${name} ${JSON.stringify(port)}`).toBe('127.0.0.1');
        } else {
          expect(String(port), name).toMatch(/^127\.0\.0\.1:\d+:\d+(\/tcp)?$/);
        }
      }
    }
  });

  it('runs the demo migrations, then seed --if-empty, then start, with start replacing the shell', () => {
    const command = commandText('viewkeeper');
    const steps = command
      .split('&&')
      .map((step) =>
        step
          .match(/(demo\/cli\.ts|bin\/viewkeeper\.js)\s+(\w+)/)
          ?.slice(1)
          .join(' '),
      )
      .filter((step) => step !== undefined);
    expect(steps).toEqual(['demo/cli.ts migrate', 'demo/cli.ts seed', 'bin/viewkeeper.js start']);
    expect(command).toMatch(/seed --if-empty/);
    expect(command).toMatch(/exec\s+node\s+(--max-semi-space-size=4\s+)bin\/viewkeeper\.js\s+start/);
  });

  it('builds the daemon from the Dockerfile and gives graceful shutdown more than 30 s', () => {
    const daemon = service('viewkeeper');
    expect(daemon.build).toBe('.');
    expect(daemon.restart).toBe('unless-stopped');
    const grace = /^(\d+)s$/.exec(daemon.stop_grace_period ?? '');
    expect(Number(grace?.[1])).toBeGreaterThan(30);
  });
});

describe('Dockerfile', () => {
  it('builds on node:24-slim', () => {
    const from = instructions().filter((i) => i.keyword === 'FROM');
    expect(from.map((i) => i.args)).toEqual(['node:24-slim']);
  });

  it('copies only paths that exist in the repo', () => {
    const copies = instructions().filter((i) => i.keyword === 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const { args } of copies) {
      const parts = args.startsWith('[')
        ? (JSON.parse(args) as string[])
        : args.split(/\s+/).filter((part) => !part.startsWith('--'));
      const sources = parts.slice(0, -1);
      expect(sources.length, args).toBeGreaterThan(0);
      for (const source of sources) {
        expect(existsSync(path.join(root, source)), `${source} is missing`).toBe(true);
      }
    }
  });

  it('runs the CLI as the unprivileged node user in production mode', () => {
    const all = instructions();
    expect(all.filter((i) => i.keyword === 'USER').at(-1)?.args).toBe('node');
    expect(all.some((i) => i.keyword === 'ENV' && /NODE_ENV=production/.test(i.args))).toBe(true);
    expect(all.filter((i) => i.keyword === 'CMD').at(-1)?.args).toBe(
      '["node", "--max-semi-space-size=4", "bin/viewkeeper.js", "start"]',
    );
  });
});
