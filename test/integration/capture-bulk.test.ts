import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { eventsKey } from '../../src/redis/keys.ts';
import {
  drained,
  expectViewsRight,
  installCapture,
  otherApp,
  rebuildAll,
  startInProcess,
} from '../helpers/capture.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { loadDemoViews, seedSmall } from '../helpers/views.ts';

// One UPDATE of 100,000 rows, each of a different post: one trigger call, one outbox row, and the
// 100,000 keys it owes refreshed in batched runs (hundreds, not 100,000), every key right.

let ctx: TestContext;
let daemon: Daemon;
let views: Awaited<ReturnType<typeof loadDemoViews>>;

beforeAll(async () => {
  ctx = await createTestContext();
  views = await loadDemoViews();
  await seedSmall(ctx.db);
  await ctx.db.pool.query(`
    insert into posts (id, user_id, title) select 500000 + g, (select min(id) from users) + g % 200, 'bulk'
    from generate_series(1, 100000) g`);
  await ctx.db.pool.query(`
    insert into votes (post_id, user_id, value, created_at)
    select 500000 + g, (select min(id) from users) + g % 11, 1, now() - interval '1 hour' from generate_series(1, 100000) g`);
  await installCapture(ctx, Object.values(views));
  await rebuildAll(ctx, Object.values(views));
}, 300_000);
afterAll(async () => {
  await daemon?.stop();
  await ctx?.cleanup();
});

it('a 100,000-row UPDATE is one outbox row, refreshed in batched runs, every key right', async () => {
  const events: { view: string; keys: string[] | null }[] = [];
  const subscriber = ctx.duplicateRedis();
  subscriber.on('message', (_channel: string, message: string) => events.push(JSON.parse(message)));
  await subscriber.subscribe(eventsKey(ctx.prefix));
  const app = await otherApp(ctx);
  try {
    const { rowCount } = await app.query('update votes set value = -value where post_id > 500000');
    expect(rowCount).toBe(100_000);
    const { rows } = await ctx.db.pool.query(
      'select count(*)::int as statements, sum(array_length(keys, 1))::int as keys from viewkeeper.capture_outbox',
    );
    expect(rows[0]).toEqual({ statements: 1, keys: 100_000 });

    daemon = await startInProcess(ctx);
    await drained(ctx, 600_000);
    await expectViewsRight(ctx, Object.values(views));
    // Every changed post's key was written, by runs of many keys each (one event per run).
    const postVotes = events.filter((event) => event.view === 'post_votes');
    expect(new Set(postVotes.flatMap((event) => event.keys ?? [])).size).toBeGreaterThanOrEqual(100_000);
    expect(postVotes.length).toBeLessThan(2000);
    // The zset's events name its one key: count the runs.
    const trending = events.filter((event) => event.view === 'trending');
    expect(trending.length).toBeGreaterThan(0);
    expect(trending.length).toBeLessThan(2000);
  } finally {
    await app.end();
    subscriber.disconnect();
  }
}, 600_000);
