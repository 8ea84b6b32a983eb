import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemo } from '../../demo/seed.ts';
import { createClient } from '../../src/client/create-client.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { REPO_JOBS } from '../helpers/daemon.ts';
import { type HttpDaemon, startHttpDaemon, until } from '../helpers/http.ts';
import { demoViewNames } from '../helpers/views.ts';

// The status page in a real browser (Debian's chromium through playwright-core) against a daemon
// process on seeded demo data. .ci/run installs chromium when it is missing.

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = fileURLToPath(new URL('../../.vitest/screenshots/', import.meta.url));
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * The little of the DOM the page functions below touch: this test compiles without DOM types, and
 * the page's CSP forbids string functions (eval), so they are real functions over `globalThis`.
 */
interface Browser {
  document: {
    getElementById(
      id: string,
    ): { dataset: Record<string, string | undefined>; textContent: string | null } | null;
    querySelector(selector: string): { textContent: string | null } | null;
    querySelectorAll(selector: string): { length: number };
  };
  sameDocument?: boolean;
}

let ctx: TestContext;
let open: HttpDaemon;
let browser: BrowserContext;
let profile: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  ctx = await createTestContext();
  await seedDemo(ctx.db, { users: 80, postsPerUser: 2, votesPerPost: 3, seed: 5 });
  open = await startHttpDaemon({ ...ctx.env, VK_JOBS_DIR: REPO_JOBS });

  // Reads for the hit-rate chart and the hot keys: hits on user_stats, misses on ids that do not exist.
  const client = createClient({
    redisUrl: ctx.redisUrl,
    prefix: ctx.prefix,
    statsFlushMs: 0,
    hotKeySampleRate: 1,
    views: { user_stats: { shape: 'hash', key: 'user_stats:{user_id}' } },
  });
  try {
    await until(
      async () => (await ctx.redis.exists('user_stats:1')) === 1,
      'the catch-up rebuild of user_stats',
    );
    for (let i = 0; i < 30; i++) await client.hash('user_stats', { user_id: (i % 10) + 1 });
    for (let i = 0; i < 5; i++) await client.hash('user_stats', { user_id: 100_000 + i }, { onMiss: 'null' });
  } finally {
    await client.close(); // flushes the counters and the sampled keys
  }
  await client.write('votes', { id: 'page-vote-1', post_id: 3, user_id: 4, value: 1 }).catch(() => undefined);
  // Two samples after the reads: the hit rate is computed between samples.
  await until(
    async () => {
      const overview = (await (await fetch(`${open.base}/api/overview`)).json()) as {
        samples: { hitRate: number | null }[];
      };
      return overview.samples.some((sample) => sample.hitRate !== null);
    },
    'a hit-rate sample',
    30_000,
  );

  profile = await mkdtemp(path.join(tmpdir(), 'vk-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 1250 },
  });
});

afterAll(async () => {
  await browser?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
  await open?.daemon.stop();
  await ctx?.cleanup();
});

describe('status page', () => {
  it('shows every view, charts with data, and a refresh-now that moves the version without a reload', async () => {
    const page = await browser.newPage();
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') failures.push(message.text());
    });
    await page.goto(`${open.base}/`);
    await page.waitForSelector('body[data-loaded="true"]');

    const views = await page.$$eval('#views tbody tr', (rows) =>
      rows.map((row) => row.getAttribute('data-view')),
    );
    expect(views).toEqual(await demoViewNames());
    const rows = await page.textContent('#views tbody tr[data-view="user_stats"] td.rows');
    expect(rows).toBe('80');

    for (const chart of ['durations', 'queues', 'write-behind', 'hit-rate']) {
      await page.waitForFunction(
        (id) =>
          Number((globalThis as unknown as Browser).document.getElementById(id)?.dataset.points ?? 0) > 0,
        `chart-${chart}`,
        { timeout: 15_000 },
      );
      expect(await page.$(`#chart-${chart} canvas`), chart).not.toBeNull();
    }
    await page.waitForFunction(
      () => (globalThis as unknown as Browser).document.querySelectorAll('#hot-keys tbody td.num').length > 0,
    );
    // Memory is an estimate, and says so: "≈ 12 KB", with how many keys were measured.
    await page.waitForFunction(
      () =>
        /^≈ \d/.test(
          (globalThis as unknown as Browser).document.querySelector(
            '#views tr[data-view="user_stats"] td.memory',
          )?.textContent ?? '',
        ),
      null,
      { timeout: 20_000 },
    );
    expect(await page.textContent('#hot-keys tbody')).toContain('user_stats:');

    // "refresh now": the version cell moves while the page stays the same document.
    const before = Number(await page.textContent('#views tr[data-view="user_stats"] td.version'));
    await page.evaluate(() => {
      (globalThis as unknown as Browser).sameDocument = true;
    });
    await page.click('button[data-refresh="user_stats"]');
    await page.waitForFunction(() =>
      /enqueued a full refresh of user_stats/.test(
        (globalThis as unknown as Browser).document.getElementById('message')?.textContent ?? '',
      ),
    );
    await page.waitForFunction(
      (previous) =>
        Number(
          (globalThis as unknown as Browser).document.querySelector(
            '#views tr[data-view="user_stats"] td.version',
          )?.textContent,
        ) > previous,
      before,
      { timeout: 20_000 },
    );
    expect(await page.evaluate(() => (globalThis as unknown as Browser).sameDocument)).toBe(true);

    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'status-page.png'), fullPage: true });
    expect(failures, failures.join('\n')).toEqual([]);
  });
});
