import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ViewkeeperClient } from '../../src/client/index.ts';
import type { Daemon } from '../../src/daemon/daemon.ts';
import { isViewkeeperError } from '../../src/errors.ts';
import { sinksOf } from '../../src/queues/write-behind-payload.ts';
import type { SinkDefinition } from '../../src/sinks/define-sink.ts';
import { loadRegistry } from '../../src/views/registry.ts';
import { rebuildAll, startInProcess } from '../helpers/capture.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { actualContent, expectedContent, JOBS_DIR, loadDemoViews, seedSmall } from '../helpers/views.ts';
import { rejection } from '../helpers/wait.ts';

// write(sink, ops, { until }): read your writes through write-behind. 'committed' resolves once the
// ops are in Postgres, 'refreshed' once Redis shows every view they touch; a refused op rejects the
// promise with its reason; with no daemon the wait ends at its timeout. (No capture installed here:
// the sink's own refresh declaration is what is waited for.)

let ctx: TestContext;
let daemon: Daemon | undefined;
let client: ViewkeeperClient;
let sinks: SinkDefinition[];
let views: Awaited<ReturnType<typeof loadDemoViews>>;

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  views = await loadDemoViews();
  await rebuildAll(ctx, Object.values(views));
  sinks = [...sinksOf((await loadRegistry(JOBS_DIR)).others.values()).values()];
  daemon = await startInProcess(ctx);
  client = createClient({ redisUrl: ctx.redisUrl, prefix: ctx.prefix, sinks });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await daemon?.stop();
  await ctx?.cleanup();
});

/** A post and a user with no vote between them yet, and the post's author. */
async function freshPair(): Promise<{ post: string; user: string; author: string }> {
  const { rows } = await sql<{ post: string; user: string; author: string }>`
    select p.id as post, u.id as "user", p.user_id as author from posts p, users u
    where not exists (select 1 from votes v where v.post_id = p.id and v.user_id = u.id)
    order by random() limit 1`.execute(ctx.db.db);
  return rows[0]!;
}

async function voteValue(post: string, user: string): Promise<number | undefined> {
  const { rows } = await sql<{ value: number }>`
    select value from votes where post_id = ${post} and user_id = ${user}`.execute(ctx.db.db);
  return rows[0]?.value;
}

describe('write until', () => {
  it("until: 'committed' resolves only once the votes table has the op", async () => {
    const { post, user } = await freshPair();
    const [id] = await client.write(
      'votes',
      { post_id: post, user_id: user, value: -1 },
      { until: 'committed', timeoutMs: 15_000 },
    );
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await voteValue(post, user)).toBe(-1);
  });

  it("until: 'refreshed' resolves only once Redis shows the new value of every view the op refreshes", async () => {
    for (let round = 0; round < 3; round++) {
      const { post, user, author } = await freshPair();
      await client.write(
        'votes',
        { post_id: post, user_id: user, value: 1 },
        { until: 'refreshed', timeoutMs: 15_000 },
      );
      // Redis as it is the moment the promise resolved (one round trip, before the refreshes could
      // land if the wait were early)…
      const [votesNow, statsNow, scoreNow] = (await ctx.redis
        .multi()
        .get(`post_votes:${post}`)
        .hget(`user_stats:${author}`, 'total_upvotes')
        .zscore('trending:24h', post)
        .exec())!.map(([, value]) => value);
      const { rows } = await sql<{ votes: string; upvotes: string; day: string }>`
        select (select sum(value)::text from votes where post_id = ${post}) as votes,
               (select sum(value)::text from votes where post_id = ${post}
                  and created_at > now() - interval '24 hours') as day,
               (select sum(upvotes)::text from posts where user_id = ${author}) as upvotes`.execute(
        ctx.db.db,
      );
      expect({ votesNow, statsNow, scoreNow }).toEqual({
        votesNow: rows[0]!.votes,
        statsNow: rows[0]!.upvotes,
        scoreNow: rows[0]!.day,
      });
      // …and every view the votes sink refreshes (and the others, untouched) equals its query.
      for (const view of Object.values(views)) {
        expect(
          await actualContent(ctx.redis, ctx.prefix, view),
          `${view.name} after vote ${post}/${user}`,
        ).toEqual(await expectedContent(ctx.db, view));
      }
    }
  });

  it('an op the database refuses rejects the promise with its reason, for either wait', async () => {
    for (const until of ['committed', 'refreshed'] as const) {
      const { user } = await freshPair();
      const error = await rejection(
        client.write(
          'votes',
          { post_id: '990000001', user_id: user, value: 1 },
          { until, timeoutMs: 15_000 },
        ),
      );
      expect(isViewkeeperError(error, 'E_OP_REJECTED'), String(error)).toBe(true);
      expect(error.message).toMatch(
        /^write to sink "votes" rejected op "[^"]+": .*\(SQLSTATE 23503\) \(kept in viewkeeper\.rejected_ops\)$/,
      );
    }
  });

  it('with no daemon running the wait rejects at its timeout, saying the ops are still durable', async () => {
    const idle = createClient({ redisUrl: ctx.redisUrl, prefix: `${ctx.prefix}_nodaemon`, sinks });
    try {
      const { post, user } = await freshPair();
      const started = Date.now();
      const error = await rejection(
        idle.write(
          'votes',
          { post_id: post, user_id: user, value: 1 },
          { until: 'refreshed', timeoutMs: 700 },
        ),
      );
      const elapsed = Date.now() - started;
      expect(isViewkeeperError(error, 'E_TIMEOUT'), String(error)).toBe(true);
      expect(error.message).toBe(
        `write to sink "votes" was not committed and refreshed within 700 ms (until: 'refreshed'): the ops are durable in the write-behind queue and will still be applied; is a daemon running?`,
      );
      expect(elapsed).toBeGreaterThanOrEqual(690);
      expect(elapsed).toBeLessThan(2000);
    } finally {
      await idle.close();
    }
  });

  it('until needs the sink definition; a bad until is refused before anything is enqueued', async () => {
    const bare = createClient({ redisUrl: ctx.redisUrl, prefix: `${ctx.prefix}_bare` });
    try {
      const unknown = await rejection(
        bare.write('votes', { post_id: 1, user_id: 1, value: 1 }, { until: 'committed' }),
      );
      expect(isViewkeeperError(unknown, 'E_SINK_UNKNOWN'), String(unknown)).toBe(true);
      const bad = await rejection(
        client.write('votes', { post_id: 1, user_id: 1, value: 1 }, { until: 'soon' as never }),
      );
      expect(bad.message).toBe(
        `write(votes) wait option "until" must be 'committed' or 'refreshed', got "soon"`,
      );
    } finally {
      await bare.close();
    }
  });
});
