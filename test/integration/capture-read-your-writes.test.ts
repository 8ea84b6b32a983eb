import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ViewkeeperClient } from '../../src/client/index.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { sinksOf } from '../../src/queues/write-behind-payload.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { installCapture, otherApp, rebuildAll, startInProcess } from '../helpers/capture.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { JOBS_DIR, loadDemoViews, seedSmall } from '../helpers/views.ts';
import { rejection } from '../helpers/wait.ts';

// Read your writes through change capture. "Another app" writes with plain pg and calls
// client.afterCommit() after its COMMIT: the moment it resolves, Redis shows what the transaction
// changed — with one daemon draining and with two sharing the outbox. A write-behind op whose views
// capture brings (the demo's votes are captured) waits for the captured refresh too.

let ctx: TestContext;
const daemons: Daemon[] = [];
let client: ViewkeeperClient;
let app: pg.Client;

beforeAll(async () => {
  ctx = await createTestContext();
  const views = await loadDemoViews();
  await seedSmall(ctx.db);
  await installCapture(ctx, Object.values(views));
  await rebuildAll(ctx, Object.values(views));
  daemons.push(await startInProcess(ctx));
  const sinks = [...sinksOf((await loadRegistry(JOBS_DIR)).others.values()).values()];
  client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix, sinks });
  app = await otherApp(ctx);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await app?.end();
  for (const daemon of daemons) await daemon.stop();
  await ctx?.cleanup();
});

async function one<T>(db: pg.Client, query: string, values: unknown[] = []): Promise<T> {
  return (await db.query(query, values)).rows[0] as T;
}

/**
 * Casts a new vote (on `post`, or a random one) in one plain transaction; returns the post, its new
 * vote sum and the transaction's id.
 */
async function vote(db: pg.Client, post?: string): Promise<{ post: string; total: string; txid: string }> {
  await db.query('begin');
  const pair = await one<{ post: string; user: string }>(
    db,
    `select p.id as post, u.id as "user" from posts p, users u
     where ($1::bigint is null or p.id = $1::bigint)
       and not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id)
     order by random() limit 1`,
    [post ?? null],
  );
  await db.query('insert into votes (post_id, user_id, value, created_at) values ($1, $2, 1, now())', [
    pair.post,
    pair.user,
  ]);
  const { txid } = await one<{ txid: string }>(db, 'select pg_current_xact_id()::text as txid');
  await db.query('commit');
  const { total } = await one<{ total: string }>(
    db,
    'select sum(value)::text as total from votes where post_id = $1',
    [pair.post],
  );
  return { post: pair.post, total, txid };
}

describe('afterCommit', () => {
  it("resolves once Redis shows a plain pg transaction's changes, given its txid", async () => {
    for (let round = 0; round < 3; round++) {
      const { post, total, txid } = await vote(app);
      await client.afterCommit(app, { txid, timeoutMs: 15_000 });
      expect(await ctx.redis.get(`post_votes:${post}`)).toBe(total);
    }
  });

  it('without a txid waits for every change captured before the call (an UPDATE of users here)', async () => {
    const { id } = await one<{ id: string }>(app, 'select id from users order by random() limit 1');
    // Twice on one key: the second refresh waits out the view's coalescing window after the first,
    // long after the outbox is drained, so a wait that stopped at the drain would read the old name.
    for (let round = 0; round < 2; round++) {
      const name = `renamed-${round}-${Date.now()}`;
      await app.query('update users set name = $1 where id = $2', [name, id]);
      await client.afterCommit(app, { timeoutMs: 15_000 });
      expect(await ctx.redis.hget(`user:${id}`, 'name')).toBe(name);
    }
  });

  it('with two daemons draining the outbox, every writer sees its own change when it resolves', async () => {
    daemons.push(await startInProcess(ctx));
    const writers = await Promise.all(Array.from({ length: 4 }, () => otherApp(ctx)));
    try {
      const seen = await Promise.all(
        writers.map(async (db) => {
          const out: [string | null, string][] = [];
          // Each writer votes on one post again and again: its refreshes wait out the coalescing window.
          const { post: mine } = await one<{ post: string }>(
            db,
            'select id as post from posts order by random() limit 1',
          );
          for (let round = 0; round < 4; round++) {
            const { post, total, txid } = await vote(db, mine);
            await client.afterCommit(db, { txid, timeoutMs: 15_000 });
            out.push([await ctx.redis.get(`post_votes:${post}`), total]);
          }
          return out;
        }),
      );
      for (const [actual, expected] of seen.flat()) expect(actual).toBe(expected);
    } finally {
      await Promise.all(writers.map((db) => db.end()));
    }
  });

  it("write(…, { until: 'refreshed' }) on a captured table waits for the refresh capture brings", async () => {
    for (let round = 0; round < 3; round++) {
      const { post, user } = await one<{ post: string; user: string }>(
        app,
        `select p.id as post, u.id as "user" from posts p, users u
         where not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id) order by random() limit 1`,
      );
      await client.write(
        'votes',
        { post_id: post, user_id: user, value: 1 },
        { until: 'refreshed', timeoutMs: 15_000 },
      );
      const now = await ctx.redis.get(`post_votes:${post}`);
      const { total } = await one<{ total: string }>(
        app,
        'select sum(value)::text as total from votes where post_id = $1',
        [post],
      );
      expect(now).toBe(total);
    }
  });

  it("a write-behind op sent again (a duplicate: nothing written, nothing captured) still resolves 'refreshed'", async () => {
    const { post, user } = await one<{ post: string; user: string }>(
      app,
      `select p.id as post, u.id as "user" from posts p, users u
       where not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id) order by random() limit 1`,
    );
    const op = { id: `ryw-dup-${post}-${user}`, post_id: post, user_id: user, value: 1 };
    await client.write('votes', op, { until: 'refreshed', timeoutMs: 15_000 });
    const started = Date.now();
    await client.write('votes', op, { until: 'refreshed', timeoutMs: 15_000 });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('with no daemon draining it rejects at its timeout, naming the transaction', async () => {
    for (const daemon of daemons.splice(0)) await daemon.stop();
    const { txid } = await vote(app);
    const started = Date.now();
    const error = await rejection(client.afterCommit(app, { txid, timeoutMs: 600 }));
    expect(isViewkeeperError(error, 'E_TIMEOUT'), String(error)).toBe(true);
    expect(error.message).toBe(
      `afterCommit of transaction ${txid}: the outbox was not drained within 600 ms (the change is committed and will still be applied); is a daemon running with capture installed?`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
    const bad = await rejection(client.afterCommit(app, { txid: 'x; drop table votes' }));
    expect(bad.message).toBe(
      'afterCommit txid must be a transaction id from pg_current_xact_id(), got "x; drop table votes"',
    );
  });
});
