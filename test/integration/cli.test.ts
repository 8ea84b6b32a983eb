import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runDemoCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.cleanup());

async function counts() {
  const { rows } = await sql<{ users: number; votes: number }>`
    select (select count(*)::int from users) as users, (select count(*)::int from votes) as votes`.execute(
    ctx.db.db,
  );
  return rows[0];
}

describe('viewkeeper CLI as a process', () => {
  it('migrate on an up-to-date database applies nothing and exits 0', async () => {
    const result = await runCli(['migrate'], ctx.env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe('no pending migrations');
  });

  it('seed writes the requested data and --if-empty leaves it alone afterwards', async () => {
    const seeded = await runDemoCli(
      ['seed', '--users', '40', '--posts-per-user', '2', '--votes-per-post', '3'],
      ctx.env,
    );
    expect(seeded.code).toBe(0);
    expect(seeded.stdout).toMatch(/^seeded 40 users, 80 posts, 240 votes in \d+\.\d s\n$/);
    const again = await runDemoCli(['seed', '--if-empty', '--users', '10'], ctx.env);
    expect(again.code).toBe(0);
    expect(await counts()).toEqual({ users: 40, votes: 240 });
  });

  it.each([['-5'], ['abc'], ['1e12']])(
    'seed --users %s exits 2 with one line and writes nothing',
    async (value) => {
      const before = await counts();
      const result = await runDemoCli(['seed', '--users', value], ctx.env);
      expect(result.code).toBe(2);
      expect(result.stderr.split('\n')[0]).toBe(
        `demo seed: --users "${value}" is invalid: expected a whole number from 1 to 10000000`,
      );
      expect(await counts()).toEqual(before);
    },
  );

  it('an unreachable DATABASE_URL fails within 5 s naming host and port, never the password', async () => {
    const env = { ...ctx.env, DATABASE_URL: 'postgres://app:hunter2@127.0.0.1:1/nowhere' };
    for (const [program, command] of [
      ['viewkeeper', 'migrate'],
      ['viewkeeper', 'start'],
      ['demo', 'migrate'],
      ['demo', 'seed'],
    ] as const) {
      const result = await (program === 'demo' ? runDemoCli : runCli)([command], env, 10_000);
      expect(result.code, command).toBe(1);
      expect(result.ms, command).toBeLessThan(5000);
      expect(result.stderr.trim().split('\n'), command).toEqual([
        `${program} ${command}: cannot reach Postgres at 127.0.0.1:1 (DATABASE_URL): connect ECONNREFUSED 127.0.0.1:1; check that Postgres runs there and that DATABASE_URL names it`,
      ]);
      expect(result.stdout + result.stderr).not.toContain('hunter2');
    }
  });

  it('an unreachable REDIS_URL stops start within 5 s naming host and port, never the password', async () => {
    const result = await runCli(
      ['start'],
      { ...ctx.env, REDIS_URL: 'redis://:hunter2@127.0.0.1:1/0' },
      10_000,
    );
    expect(result.code).toBe(1);
    expect(result.ms).toBeLessThan(5000);
    const errorLines = result.stderr.trim().split('\n');
    expect(errorLines).toEqual([
      'viewkeeper start: cannot reach Redis at 127.0.0.1:1 (REDIS_URL): connect ECONNREFUSED 127.0.0.1:1; check that Redis runs there and that REDIS_URL names it',
    ]);
    expect(result.stdout + result.stderr).not.toContain('hunter2');
  });

  it('prints the stack of a failure only with LOG_LEVEL=debug', async () => {
    const env = { ...ctx.env, DATABASE_URL: 'postgres://127.0.0.1:1/nowhere' };
    expect((await runCli(['migrate'], env)).stderr).not.toContain('    at ');
    expect((await runCli(['migrate'], { ...env, LOG_LEVEL: 'debug' })).stderr).toContain('    at ');
  });

  it.each([
    ['DATABASE_URL', 'not-a-url'],
    ['VK_HTTP_PORT', '99999'],
  ])('%s=%s refuses to start with the variable named (exit 2)', async (variable, value) => {
    const result = await runCli(['start'], { ...ctx.env, [variable]: value });
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toContain(`${variable}="${value}" is invalid`);
  });
});
