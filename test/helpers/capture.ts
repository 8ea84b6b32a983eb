import pg from 'pg';
import { expect } from 'vitest';
import { applyChanges, planInstall } from '../../src/capture/install.ts';
import { capturedTables } from '../../src/capture/tables.ts';
import { resolveConfig } from '../../src/config/config.ts';
import { createDaemon, type Daemon } from '../../src/daemon/daemon.ts';
import { silentLogger } from '../../src/logging/create-logger.ts';
import { refreshBacklogKey } from '../../src/sinks/refresh-backlog.ts';
import type { ViewDefinition } from '../../src/views/define-view.ts';
import type { TestContext } from './context.ts';
import { REPO_JOBS } from './daemon.ts';
import { actualContent, createEngine, expectedContent } from './views.ts';

/** Installs the triggers for `views` (what `viewkeeper capture install` does). */
export async function installCapture(ctx: TestContext, views: Iterable<ViewDefinition>): Promise<void> {
  await applyChanges(ctx.db.db, await planInstall(ctx.db.db, capturedTables(views)));
}

/** "Another app": a plain pg client, no viewkeeper code. Close it with `end()`. */
export async function otherApp(ctx: TestContext): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: ctx.databaseUrl, application_name: 'other-app' });
  await client.connect();
  return client;
}

export async function outboxDepth(ctx: TestContext): Promise<number> {
  const { rows } = await ctx.db.pool.query('select count(*)::int as n from viewkeeper.capture_outbox');
  return rows[0].n;
}

/** Resolves once the outbox is empty and every refresh it owed has run (the backlog is empty too). */
export async function drained(ctx: TestContext, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const depth = await outboxDepth(ctx);
    const owed = await ctx.redis.zcard(refreshBacklogKey(ctx.prefix));
    if (depth === 0 && owed === 0) return;
    if (Date.now() > deadline) throw new Error(`not drained: outbox ${depth}, refreshes owed ${owed}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Full rebuild of every view, so Redis starts equal to the database. */
export async function rebuildAll(ctx: TestContext, views: Iterable<ViewDefinition>): Promise<void> {
  const engine = createEngine(ctx);
  for (const view of views) await engine.refresh({ ...view, coalesceMs: 0 }, undefined, { trigger: 'test' });
}

/** Every view's Redis content equals its query's result now. */
export async function expectViewsRight(ctx: TestContext, views: Iterable<ViewDefinition>): Promise<void> {
  for (const view of views) {
    expect(await actualContent(ctx.redis, ctx.prefix, view), view.name).toEqual(
      await expectedContent(ctx.db, view),
    );
  }
}

/** A daemon in this process on the demo jobs (or `env.VK_JOBS_DIR`); stop() it after. */
export async function startInProcess(ctx: TestContext, env: Record<string, string> = {}): Promise<Daemon> {
  const daemon = createDaemon({
    config: resolveConfig({ VK_JOBS_DIR: REPO_JOBS, ...ctx.env, ...env }),
    logger: silentLogger(),
    shutdownTimeoutMs: 5000,
  });
  await daemon.start();
  return daemon;
}
