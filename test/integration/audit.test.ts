import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { auditKey, viewKeys } from '../../src/redis/keys.ts';
import { type Auditor, createAuditor } from '../../src/views/audit.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import type { RefreshEngine } from '../../src/views/refresh-engine.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { REPO_JOBS, startDaemon } from '../helpers/daemon.ts';
import {
  actualContent,
  createEngine,
  DEMO_VIEWS,
  type DemoView,
  expectedContent,
  loadDemoViews,
  seedSmall,
} from '../helpers/views.ts';

// The drift audit: keys changed behind viewkeeper's back (a stray HSET, a deleted key, an extra zset
// member, an overwritten json value) are found by comparing with the views' queries, and repaired
// through the refresh engine; clean views report no drift.

let ctx: TestContext;
let views: Record<DemoView, ViewDefinition>;
let engine: RefreshEngine;
let auditor: Auditor;
const ALL = { sample: 10_000, repair: true };

beforeAll(async () => {
  ctx = await createTestContext();
  await seedSmall(ctx.db);
  views = await loadDemoViews();
  engine = createEngine(ctx);
  auditor = createAuditor({
    db: ctx.db.db,
    redis: ctx.redis,
    prefix: ctx.prefix,
    engine,
    logger: silentLogger(),
    recheckMs: 50,
  });
  for (const name of DEMO_VIEWS) await engine.refresh(views[name]);
});

afterAll(() => ctx?.cleanup());

async function converged(name: DemoView): Promise<void> {
  expect(await actualContent(ctx.redis, ctx.prefix, views[name])).toEqual(
    await expectedContent(ctx.db, views[name]),
  );
}

async function someKey(pattern: string): Promise<string> {
  const [, keys] = await ctx.redis.scan('0', 'MATCH', pattern, 'COUNT', '1000');
  return keys.sort()[0]!;
}

describe('drift audit', () => {
  it('finds no drift in views just refreshed, sampled or whole', async () => {
    for (const name of DEMO_VIEWS) {
      const result = await auditor.audit(views[name], ALL);
      expect(result).toMatchObject({ view: name, drifted: 0, repaired: 0, keys: [] });
      expect(result.checked).toBeGreaterThan(0);
      expect(result.mode).toBe(name === 'trending_posts' ? 'whole' : 'sample');
    }
  });

  it('a sample is bounded by its size', async () => {
    const result = await auditor.audit(views.user_stats, { sample: 5, repair: false });
    expect(result.checked).toBe(5);
  });

  it('a wrong field, an extra field and a deleted key of a hash view are found and repaired', async () => {
    const [a, b, c] = (await ctx.redis.zrange(
      viewKeys(ctx.prefix, 'user_stats').keyIndex,
      '0',
      '2',
    )) as string[];
    await ctx.redis.hset(a!, 'post_count', '999');
    await ctx.redis.hset(b!, 'bogus', '1');
    await ctx.redis.del(c!);
    const result = await auditor.audit(views.user_stats, ALL);
    expect(result).toMatchObject({ mode: 'sample', drifted: 3, repaired: 3 });
    expect([...result.keys].sort()).toEqual([a, b, c].sort());
    await converged('user_stats');
    expect((await auditor.audit(views.user_stats, ALL)).drifted).toBe(0);
  });

  it('without --repair drift is reported and left as it is', async () => {
    const key = await someKey('post_votes:*');
    await ctx.redis.set(key, '12345');
    const result = await auditor.audit(views.post_votes, { sample: 10_000, repair: false });
    expect(result).toMatchObject({ drifted: 1, repaired: 0, keys: [key] });
    expect(await ctx.redis.get(key)).toBe('12345');
    expect((await auditor.audit(views.post_votes, ALL)).repaired).toBe(1);
    await converged('post_votes');
  });

  it('an extra zset member and a changed score are found and repaired', async () => {
    const live = views.trending.key.fill({});
    const [member] = await ctx.redis.zrange(live, '0', '0');
    await ctx.redis.zadd(live, '77', '990000123');
    await ctx.redis.zadd(live, '-500', member!);
    const result = await auditor.audit(views.trending, ALL);
    expect(result).toMatchObject({ drifted: 2, repaired: 2 });
    expect([...result.keys].sort()).toEqual([`${live} ${member}`, `${live} 990000123`].sort());
    expect(await ctx.redis.zscore(live, '990000123')).toBeNull();
    await converged('trending');
  });

  it('a view without params (json) is compared whole and rebuilt when it differs', async () => {
    const live = views.trending_posts.key.fill({});
    await ctx.redis.set(live, '[]');
    const result = await auditor.audit(views.trending_posts, ALL);
    expect(result).toMatchObject({ mode: 'whole', checked: 1, drifted: 1, repaired: 1, keys: [live] });
    await converged('trending_posts');
  });

  it('counts accumulate per view in the audit hash, with the last audit', async () => {
    const before = await ctx.redis.hgetall(auditKey(ctx.prefix, 'user'));
    const key = await someKey('user:*');
    await ctx.redis.hset(key, 'name', 'somebody else');
    const result = await auditor.audit(views.user, ALL);
    const after = await ctx.redis.hgetall(auditKey(ctx.prefix, 'user'));
    expect(Number(after.checked)).toBe(Number(before.checked) + result.checked);
    expect(Number(after.drifted)).toBe(Number(before.drifted) + 1);
    expect(Number(after.repaired)).toBe(Number(before.repaired) + 1);
    expect(after).toMatchObject({ last_at: result.at, last_drifted: '1', last_keys: JSON.stringify([key]) });
  });
});

describe('drift audit from the CLI and the daemon', () => {
  it('viewkeeper audit exits 1 naming drifted keys, 0 once --repair fixed them; status shows the counts', async () => {
    const env = { ...ctx.env, VK_JOBS_DIR: REPO_JOBS };
    const key = await someKey('user_stats:*');
    await ctx.redis.hset(key, 'total_upvotes', '-1');
    const found = await runCli(['audit', 'user_stats', '--sample', '10000'], env);
    expect(found.stderr).toBe('');
    expect(found.code).toBe(1);
    expect(found.stdout).toMatch(
      new RegExp(`^audit user_stats \\(sample\\): checked \\d+, drifted 1, repaired 0: ${key}\\n$`),
    );
    const fixed = await runCli(['audit', 'user_stats', '--sample', '10000', '--repair', '--json'], env);
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({
      view: 'user_stats',
      drifted: 1,
      repaired: 1,
      keys: [key],
    });
    await converged('user_stats');
    const status = JSON.parse((await runCli(['status', '--json'], env)).stdout);
    const row = status.views.find((view: { view: string }) => view.view === 'user_stats');
    expect(row.audit).toMatchObject({ last_drifted: 1, last_repaired: 1 });
    expect(row.audit.drifted).toBeGreaterThanOrEqual(2);
    const unknown = await runCli(['audit', 'nope'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.split('\n')[0]).toMatch(/^viewkeeper audit: unknown view "nope": known views are /);
  });

  it('the daemon audits on its own and repairs a key deleted behind its back', async () => {
    // `user` has no schedule: no catch-up rebuild at start-up can repair the key before the audit does.
    const key = await someKey('user:*');
    const daemon = startDaemon({
      ...ctx.env,
      VK_JOBS_DIR: REPO_JOBS,
      VK_AUDIT_INTERVAL_MS: '300',
      VK_AUDIT_SAMPLE: '10000',
      LOG_LEVEL: 'info',
    });
    try {
      await daemon.waitFor('daemon started', 60_000);
      const fields = await ctx.redis.hgetall(key);
      await ctx.redis.del(key);
      await daemon.waitFor(`"keys":["${key}"]`, 30_000);
      const deadline = Date.now() + 15_000;
      while ((await ctx.redis.exists(key)) === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await ctx.redis.hgetall(key)).toEqual(fields);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
