import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { seedDemo } from '../../demo/seed.ts';
import { createClient } from '../../src/client/create-client.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { REPO_JOBS, SRC_INDEX } from '../helpers/daemon.ts';
import { type HttpDaemon, parseMetrics, sample, startHttpDaemon, until, value } from '../helpers/http.ts';
import { freePort } from '../helpers/redis-server.ts';

// The daemon's HTTP surface as a real process: every route's status codes and content, /metrics
// parsed with a Prometheus text parser, token enforcement, refusals at start-up, 503 after SIGTERM.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TOKEN = 'test-token-0123456789abcdef';

let ctx: TestContext;
let open: HttpDaemon;
const daemons: HttpDaemon[] = [];
const dirs: string[] = [];

async function launch(env: Record<string, string> = {}): Promise<HttpDaemon> {
  const started = await startHttpDaemon({ ...ctx.env, VK_JOBS_DIR: REPO_JOBS, ...env });
  daemons.push(started);
  return started;
}

async function http(
  base: string,
  route: string,
  init: RequestInit = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(`${base}${route}`, { redirect: 'manual', ...init });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

async function metrics(base: string, headers: Record<string, string> = {}) {
  const reply = await http(base, '/metrics', { headers });
  expect(reply.status).toBe(200);
  expect(reply.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(reply.text);
}

beforeAll(async () => {
  ctx = await createTestContext();
  await seedDemo(ctx.db, { users: 60, postsPerUser: 2, votesPerPost: 2, seed: 3 });
  open = await launch();
});

afterAll(async () => {
  for (const { daemon } of daemons) {
    if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
    await daemon.exited;
  }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  await ctx?.cleanup();
});

describe('health routes', () => {
  it('/livez and /healthz say the process is alive; /readyz is 200 once started', async () => {
    for (const route of ['/livez', '/healthz']) {
      const reply = await http(open.base, route);
      expect(reply.status, route).toBe(200);
      expect(JSON.parse(reply.text)).toMatchObject({ status: 'alive' });
    }
    await until(async () => (await http(open.base, '/readyz')).status === 200, 'readiness');
    expect(JSON.parse((await http(open.base, '/readyz')).text)).toEqual({ status: 'ready' });
  });
});

describe('/status', () => {
  it('serves the same document as viewkeeper status --json', async () => {
    const env = { ...ctx.env, VK_JOBS_DIR: REPO_JOBS };
    const cli = await runCli(['status', '--json'], env);
    expect(cli.code, cli.stderr).toBe(0);
    const served = await http(open.base, '/status');
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toMatch(/^application\/json/);
    // Ages and next runs move with the clock; everything else is the same document.
    const stable = (text: string) => {
      const doc = JSON.parse(text);
      for (const view of doc.views) {
        delete view.age_s;
        delete view.next_run;
      }
      return doc;
    };
    expect(stable(served.text)).toEqual(stable(cli.stdout));
    const doc = JSON.parse(served.text);
    expect(Object.keys(doc.queues).sort()).toEqual(['refresh', 'write-behind']);
    expect(Object.keys(doc.client)).toContain('hit_rate');
  });
});

describe('/metrics', () => {
  it('exports viewkeeper_ metrics with their types and only bounded labels', async () => {
    const families = await metrics(open.base);
    const expected: Record<string, string> = {
      viewkeeper_build_info: 'GAUGE',
      viewkeeper_refresh_runs_total: 'COUNTER',
      viewkeeper_refresh_duration_seconds: 'HISTOGRAM',
      viewkeeper_refresh_rows_written_total: 'COUNTER',
      viewkeeper_refresh_failures_total: 'COUNTER',
      viewkeeper_view_last_success_timestamp_seconds: 'GAUGE',
      viewkeeper_write_behind_ops_total: 'COUNTER',
      viewkeeper_write_behind_batch_duration_seconds: 'HISTOGRAM',
      viewkeeper_write_behind_oldest_op_age_seconds: 'GAUGE',
      viewkeeper_refresh_backlog_size: 'GAUGE',
      viewkeeper_capture_outbox_statements: 'GAUGE',
      viewkeeper_capture_outbox_rows: 'GAUGE',
      viewkeeper_capture_oldest_change_age_seconds: 'GAUGE',
      viewkeeper_scheduler_ticks_total: 'COUNTER',
      viewkeeper_events_published_total: 'COUNTER',
      viewkeeper_queue_jobs: 'GAUGE',
      viewkeeper_client_hits_total: 'COUNTER',
      viewkeeper_client_misses_total: 'COUNTER',
      viewkeeper_client_l1_hits_total: 'COUNTER',
      viewkeeper_client_stale_served_total: 'COUNTER',
      viewkeeper_process_cpu_seconds_total: 'COUNTER',
      viewkeeper_process_resident_memory_bytes: 'GAUGE',
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(families.get(name)?.type, name).toBe(type);
    }
    const allowed = new Set(['view', 'sink', 'kind', 'trigger', 'outcome', 'code', 'queue', 'state', 'le']);
    for (const family of families.values()) {
      expect(family.name.startsWith('viewkeeper_'), family.name).toBe(true);
      if (/^viewkeeper_(nodejs|process)_/.test(family.name) || family.name === 'viewkeeper_build_info')
        continue;
      for (const metric of family.metrics) {
        for (const label of Object.keys(metric.labels ?? {}))
          expect(allowed.has(label), `${family.name}{${label}}`).toBe(true);
      }
    }
    expect(sample(families, 'viewkeeper_build_info')?.labels?.version).toMatch(/^\d+\.\d+\.\d+/);
    for (const state of ['waiting', 'active', 'delayed', 'failed', 'completed']) {
      expect(sample(families, 'viewkeeper_queue_jobs', { queue: 'refresh', state }), state).toBeDefined();
      expect(
        sample(families, 'viewkeeper_queue_jobs', { queue: 'write-behind', state }),
        state,
      ).toBeDefined();
    }
  });

  it('a refresh run moves its run counter, its duration histogram, rows written and the view freshness', async () => {
    const labels = { view: 'user_stats', kind: 'full', trigger: 'queue', outcome: 'done' };
    const before = await metrics(open.base);
    const runsBefore = value(before, 'viewkeeper_refresh_runs_total', labels);
    const countBefore = Number(
      sample(before, 'viewkeeper_refresh_duration_seconds', { view: 'user_stats', kind: 'full' })?.count ?? 0,
    );
    const rowsBefore = value(before, 'viewkeeper_refresh_rows_written_total', {
      view: 'user_stats',
      kind: 'full',
    });
    // Scheduled and catch-up rebuilds of user_stats (cron */5) may land between the two scrapes: the
    // histogram and the rows count every full run, so they must move by the runs of every trigger.
    const fullRuns = (families: typeof before) =>
      (families.get('viewkeeper_refresh_runs_total')?.metrics ?? [])
        .filter((metric) => metric.labels?.view === 'user_stats' && metric.labels?.kind === 'full')
        .reduce((sum, metric) => sum + Number(metric.value ?? 0), 0);
    const fullRunsBefore = fullRuns(before);

    const refreshed = await runCli(['refresh', 'user_stats', '--wait'], {
      ...ctx.env,
      VK_JOBS_DIR: REPO_JOBS,
    });
    expect(refreshed.code, refreshed.stderr).toBe(0);

    const after = await metrics(open.base);
    expect(value(after, 'viewkeeper_refresh_runs_total', labels)).toBe(runsBefore + 1);
    const histogram = sample(after, 'viewkeeper_refresh_duration_seconds', {
      view: 'user_stats',
      kind: 'full',
    });
    const runsBetween = fullRuns(after) - fullRunsBefore;
    expect(runsBetween).toBeGreaterThanOrEqual(1);
    expect(Number(histogram?.count)).toBe(countBefore + runsBetween);
    expect(Number(histogram?.buckets?.['+Inf'])).toBe(countBefore + runsBetween);
    expect(value(after, 'viewkeeper_refresh_rows_written_total', { view: 'user_stats', kind: 'full' })).toBe(
      rowsBefore + 60 * runsBetween,
    );
    expect(value(after, 'viewkeeper_view_rows', { view: 'user_stats' })).toBe(60);
    const freshness = value(after, 'viewkeeper_view_last_success_timestamp_seconds', { view: 'user_stats' });
    expect(Math.abs(Date.now() / 1000 - freshness)).toBeLessThan(60);
    expect(value(after, 'viewkeeper_events_published_total', { view: 'user_stats' })).toBeGreaterThan(
      value(before, 'viewkeeper_events_published_total', { view: 'user_stats' }),
    );
  });

  it('counts write-behind ops by sink and outcome, and the client counters summed in Redis', async () => {
    const client = createClient({
      redisUrl: ctx.redisUrl,
      prefix: ctx.prefix,
      statsFlushMs: 0,
      views: { user_stats: { shape: 'hash', key: 'user_stats:{user_id}' } },
    });
    try {
      await client.write('votes', { id: 'http-vote-1', post_id: 1, user_id: 2, value: 1 });
      await client.write('votes', { id: 'http-vote-1', post_id: 1, user_id: 2, value: 1 });
      await client.hash('user_stats', { user_id: 1 }, { onMiss: 'null' });
    } finally {
      await client.close();
    }
    await until(
      async () =>
        value(await metrics(open.base), 'viewkeeper_write_behind_ops_total', {
          sink: 'votes',
          outcome: 'duplicate',
        }) >= 1,
      'duplicate op counted',
    );
    const families = await metrics(open.base);
    expect(value(families, 'viewkeeper_write_behind_ops_total', { sink: 'votes', outcome: 'applied' })).toBe(
      1,
    );
    expect(
      Number(
        sample(families, 'viewkeeper_write_behind_batch_duration_seconds', { outcome: 'committed' })?.count,
      ),
    ).toBeGreaterThanOrEqual(1);
    const stats = await ctx.redis.hgetall(`${ctx.prefix}:client:stats`);
    expect(
      value(families, 'viewkeeper_client_hits_total') + value(families, 'viewkeeper_client_misses_total'),
    ).toBe(Number(stats.hits ?? 0) + Number(stats.misses ?? 0));
  });

  it('change capture: outbox depth, rows and oldest change age while a batch is held; drained rows and failed mappings after', async () => {
    // A captured statement of two rows whose keys post_votes and trending refuse (not bigints): its
    // drain records failures, and a lock on capture_failures holds that drain, uncommitted, until
    // released — so the gauges read a known outbox, then the counters move by known amounts.
    const holder = await ctx.db.pool.connect();
    try {
      const before = await metrics(open.base);
      await holder.query('begin');
      await holder.query('lock table viewkeeper.capture_failures in exclusive mode');
      await ctx.db.pool.query(`
        insert into viewkeeper.capture_outbox (table_name, op, columns, keys, created_at)
        values ('votes', 'INSERT', '{post_id}', '{{not-a-post},{nor-this}}', now() - interval '30 seconds')`);
      const held = await metrics(open.base);
      expect(value(held, 'viewkeeper_capture_outbox_statements')).toBe(1);
      expect(value(held, 'viewkeeper_capture_outbox_rows')).toBe(2);
      const age = value(held, 'viewkeeper_capture_oldest_change_age_seconds');
      expect(age).toBeGreaterThanOrEqual(30);
      expect(age).toBeLessThan(90);
      await holder.query('commit');

      const failed = (families: typeof before, view: string) =>
        value(families, 'viewkeeper_capture_failed_changes_total', { view });
      await until(
        async () => value(await metrics(open.base), 'viewkeeper_capture_outbox_statements') === 0,
        'the outbox drained',
      );
      const after = await metrics(open.base);
      expect(
        value(after, 'viewkeeper_capture_drained_rows_total') -
          value(before, 'viewkeeper_capture_drained_rows_total'),
      ).toBe(2);
      expect(
        value(after, 'viewkeeper_capture_drained_statements_total') -
          value(before, 'viewkeeper_capture_drained_statements_total'),
      ).toBe(1);
      expect(failed(after, 'post_votes') - failed(before, 'post_votes')).toBe(2);
      expect(failed(after, 'trending') - failed(before, 'trending')).toBe(2);
      expect(value(after, 'viewkeeper_capture_oldest_change_age_seconds')).toBe(0);
      expect(after.get('viewkeeper_capture_drained_rows_total')?.type).toBe('COUNTER');
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
      await ctx.db.pool.query('delete from viewkeeper.capture_failures');
    }
  });

  it('every metric the Grafana dashboard queries exists in /metrics', async () => {
    const dashboard = JSON.parse(
      await readFile(path.join(ROOT, 'deploy/grafana-dashboard.json'), 'utf8'),
    ) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const families = new Set((await metrics(open.base)).keys());
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        for (const name of target.expr.match(/\bviewkeeper_[a-z0-9_]+/g) ?? []) queried.add(name);
      }
    }
    expect(queried.size).toBeGreaterThan(8);
    for (const name of queried) {
      const family = name.replace(/_(bucket|sum|count)$/, '');
      expect(families.has(name) || families.has(family), name).toBe(true);
    }
  });
});

describe('docker-compose healthcheck', () => {
  it("the compose file's /readyz probe exits 0 on a ready daemon and 1 when nothing answers", async () => {
    const compose = parse(await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: { viewkeeper: { healthcheck: { test: string[] } } };
    };
    const [, program, flag, script] = compose.services.viewkeeper.healthcheck.test;
    const probe = (port: number) =>
      new Promise<number | null>((resolve) => {
        spawn(process.execPath, [flag!, script!.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`)], {
          stdio: 'ignore',
        }).on('exit', resolve);
      });
    expect(program).toBe('node');
    expect(await probe(open.port)).toBe(0);
    expect(await probe(await freePort())).toBe(1);
  });
});

describe('requests the surface refuses', () => {
  it('answers 404, 405, 400 and 403 with one line, logs no stack and keeps serving', async () => {
    const unknown = await http(open.base, '/nope');
    expect([unknown.status, unknown.text]).toEqual([404, 'not found\n']);
    expect(
      (await http(open.base, '/metrics', { method: 'POST', headers: { 'content-type': 'application/json' } }))
        .status,
    ).toBe(405);

    const refresh = (view: string, init: RequestInit = {}) =>
      http(open.base, `/api/views/${view}/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        ...init,
      });
    const missing = await refresh('no_such_view');
    expect([missing.status, missing.text]).toEqual([404, 'no view named "no_such_view"\n']);
    expect((await refresh('user_stats', { body: '{not json' })).status).toBe(400);
    const oversized = await refresh('user_stats', { body: JSON.stringify({ pad: 'x'.repeat(10_000) }) });
    expect([oversized.status, oversized.text.trim().split('\n')]).toEqual([
      400,
      ['request body over 1024 bytes'],
    ]);
    expect((await refresh('user_stats', { headers: { 'content-type': 'text/plain' } })).status).toBe(400);
    const crossSite = await refresh('user_stats', {
      headers: { 'content-type': 'application/json', origin: 'http://evil.example' },
    });
    expect(crossSite.status).toBe(403);
    // fetch() will not send another Host; a raw request can (DNS rebinding sends the attacker's name).
    const rebound = await new Promise<number>((resolve, reject) => {
      request(
        { host: '127.0.0.1', port: open.port, path: '/status', headers: { host: 'evil.example' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
        .on('error', reject)
        .end();
    });
    expect(rebound).toBe(403);

    const accepted = await refresh('user_stats', { body: '{}' });
    expect(accepted.status).toBe(202);
    expect(JSON.parse(accepted.text)).toMatchObject({ view: 'user_stats' });
    expect((await http(open.base, '/readyz')).status).toBe(200);
    expect(open.daemon.output()).not.toMatch(/\n\s+at /);
  });

  it('serves bull-board under /queues with the refresh and write-behind queues', async () => {
    const page = await http(open.base, '/queues');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<base href="/queues/"');
    const api = await http(open.base, '/queues/api/queues?activeQueue=refresh&page=1&jobsPerPage=10');
    expect(api.status).toBe(200);
    const names = (JSON.parse(api.text) as { queues: { name: string }[] }).queues.map((queue) => queue.name);
    expect(names).toEqual(expect.arrayContaining(['refresh', 'write-behind']));
  });
});

describe('with VK_HTTP_TOKEN', () => {
  it('every route but /livez and /readyz needs the token; the page logs in once with a session cookie', async () => {
    const guarded = await launch({ VK_HTTP_TOKEN: TOKEN });
    const bearer = { authorization: `Bearer ${TOKEN}` };
    for (const route of [
      '/metrics',
      '/status',
      '/api/overview',
      '/queues',
      '/queues/api/queues',
      '/assets/page.js',
      '/nope',
    ]) {
      for (const headers of [
        {},
        { authorization: 'Bearer wrong-token-0123456789' },
        { authorization: `Basic ${TOKEN}` },
      ]) {
        const reply = await http(guarded.base, route, { headers });
        expect([route, reply.status, reply.text]).toEqual([route, 401, 'unauthorized\n']);
      }
    }
    for (const route of ['/livez', '/readyz'])
      expect((await http(guarded.base, route)).status, route).toBe(200);
    expect((await http(guarded.base, '/metrics', { headers: bearer })).status).toBe(200);
    expect((await http(guarded.base, '/status', { headers: bearer })).status).toBe(200);
    expect((await http(guarded.base, '/nope', { headers: bearer })).status).toBe(404);
    const refresh = await http(guarded.base, '/api/views/user/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    expect(refresh.status).toBe(401);

    // The page: a login form without any data, then a session cookie that is not the token.
    const login = await http(guarded.base, '/');
    expect(login.status).toBe(401);
    expect(login.text).toContain('<form method="post" action="/login">');
    expect(login.text).not.toContain('user_stats');
    const wrong = await http(guarded.base, '/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=wrong-token-0123456789',
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const right = await http(guarded.base, '/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(right.status).toBe(303);
    const cookie = right.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^vk_session=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=\/$/);
    expect(cookie).not.toContain(TOKEN);
    const session = { cookie: cookie.split(';')[0]! };
    const page = await http(guarded.base, '/', { headers: session });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect((await http(guarded.base, '/api/overview', { headers: session })).status).toBe(200);

    // "refresh now" with the session: same-origin only.
    const post = (headers: Record<string, string>) =>
      http(guarded.base, '/api/views/user/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...session, ...headers },
        body: '{}',
      });
    expect((await post({ origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post({ origin: guarded.base, 'sec-fetch-site': 'same-origin' })).status).toBe(202);

    const pages = [login.text, page.text, (await http(guarded.base, '/status', { headers: session })).text];
    pages.push((await http(guarded.base, '/metrics', { headers: bearer })).text);
    for (const text of pages) expect(text).not.toContain(TOKEN);
    expect(guarded.daemon.output()).not.toContain(TOKEN);
  });
});

describe('start-up refusals', () => {
  it('refuses to serve beyond loopback without VK_HTTP_TOKEN: one line, exit 2', async () => {
    const result = await runCli(['start'], {
      ...ctx.env,
      VK_JOBS_DIR: REPO_JOBS,
      VK_HTTP_HOST: '0.0.0.0',
      VK_HTTP_PORT: String(await freePort()),
    });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^viewkeeper start: VK_HTTP_HOST="0\.0\.0\.0" is not a loopback address: set VK_HTTP_TOKEN/,
    );
  });

  it('stops at once with one line naming the port when VK_HTTP_PORT is in use: exit 1', async () => {
    const taken: Server = createServer();
    const port = await new Promise<number>((resolve) =>
      taken.listen(0, '127.0.0.1', () => resolve((taken.address() as { port: number }).port)),
    );
    try {
      const result = await runCli(['start'], {
        ...ctx.env,
        VK_JOBS_DIR: REPO_JOBS,
        VK_HTTP_PORT: String(port),
      });
      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines.filter((line) => line.startsWith('viewkeeper start:'))).toEqual([
        `viewkeeper start: VK_HTTP_PORT=${port} on 127.0.0.1 is in use: stop what listens there or choose another VK_HTTP_PORT`,
      ]);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

describe('shutdown', () => {
  it('/readyz answers 503 from the first SIGTERM while in-flight work finishes; /livez stays 200', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vk-http-jobs-'));
    dirs.push(dir);
    await writeFile(
      path.join(dir, 'slow.ts'),
      `import { defineView } from ${JSON.stringify(SRC_INDEX)};
export default defineView()({
  name: 'slow',
  shape: 'value',
  key: 'slow:{id}',
  value: 'v',
  coalesceMs: 0,
  query: (db) =>
    db.selectNoFrom((eb) => [eb.fn('pg_sleep', [eb.lit(3)]).as('slept'), eb.lit(1).as('id'), eb.val('ok').as('v')]),
});
`,
    );
    // A prefix of its own: the other daemons of this file would take the job and refuse its view.
    const slow = await launch({ VK_JOBS_DIR: dir, VK_PREFIX: `${ctx.prefix}_slow` });
    await until(async () => (await http(slow.base, '/readyz')).status === 200, 'readiness');
    const accepted = await http(slow.base, '/api/views/slow/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    expect(accepted.status).toBe(202);
    await until(async () => {
      const families = await metrics(slow.base);
      return value(families, 'viewkeeper_queue_jobs', { queue: 'refresh', state: 'active' }) === 1;
    }, 'the slow refresh to run');

    slow.daemon.child.kill('SIGTERM');
    await until(async () => (await http(slow.base, '/readyz')).status === 503, '503 after SIGTERM', 2000);
    const reply = await http(slow.base, '/readyz');
    expect(JSON.parse(reply.text)).toEqual({ status: 'not ready', failing: ['stopping'] });
    expect((await http(slow.base, '/livez')).status).toBe(200);
    expect((await slow.daemon.exited).code).toBe(0);
    expect(slow.daemon.output(), slow.daemon.output()).toMatch(/"view":"slow".*"msg":"refreshed"/);
  });
});
