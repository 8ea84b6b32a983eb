import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';
import { createJobsDir, SRC_INDEX } from '../helpers/daemon.ts';

// `viewkeeper check` against the demo database (which has users, posts and votes): each kind of
// mistake a definition can make against the database gives its own line, and nothing is written.

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.cleanup());

const header = `import { defineSink, defineView, sql } from ${JSON.stringify(SRC_INDEX)};\n`;
const view = (body: string) => `${header}export default defineView<any>()({ ${body} });\n`;
const sink = (body: string) => `${header}export default defineSink<any>()({ ${body} });\n`;

const MISTAKES = {
  'key-typo.mts': view(`name: 'key_typo', shape: 'hash', key: 'key_typo:{uid}',
    query: (db) => db.selectFrom('users').select(['id', 'name'])`),
  'depends-typo.mts': view(`name: 'depends_typo', shape: 'hash', key: 'depends_typo:{id}',
    dependsOn: ['users', 'userz'], query: (db) => db.selectFrom('users').select(['id', 'name'])`),
  'batch-mismatch.mts': view(`name: 'batch_mismatch', shape: 'value', key: 'batch_mismatch:{name}',
    value: 'email', params: { name: 'bigint' }, batchPartials: true,
    query: (db, p) => { let q = db.selectFrom('users').select(['name', 'email']);
      if (p) q = q.where('name', '=', p.name); return q; }`),
  'only-key.mts': view(`name: 'only_key', shape: 'hash', key: 'only_key:{id}',
    query: (db) => db.selectFrom('users').select(['id'])`),
  'partial-broken.mts': view(`name: 'partial_broken', shape: 'hash', key: 'partial_broken:{id}',
    params: { id: 'bigint' },
    query: (db, p) => { let q = db.selectFrom('users').select(['id', 'name']);
      if (p) q = q.where('nosuch', '=', p.id); return q; }`),
  'zset-score.mts': view(`name: 'zset_score', shape: 'zset', key: 'zset_score', member: '{post_id}',
    score: 'points', query: (db) => db.selectFrom('votes').select(['post_id', sql\`sum(value)\`.as('votes')]).groupBy('post_id')`),
  'sink-no-unique.mts': sink(`name: 'no_unique', fields: { email: 'text', name: 'text' },
    apply: async (trx, ops, { upsert }) => {
      await upsert(ops, { table: 'users', key: ['email'], columns: { email: 'text', name: 'text' } }); }`),
  'sink-increment.mts': sink(`name: 'increment_typo', fields: { post_id: 'bigint' },
    apply: async (trx, ops, { increment }) => { await increment({ table: 'posts', key: 'id',
      keyType: 'bigint', column: 'upvotez', rows: ops.map((op) => ({ key: op.post_id, by: 1 })) }); }`),
  'sink-refresh.mts': sink(`name: 'bad_refresh', fields: { user_id: 'bigint' }, apply: async () => {},
    refresh: { key_typo: (op) => ({ id: op.user_id }), missing_view: 'full',
      partial_broken: (op) => ({ idd: op.user_id }) }`),
  // Writes with its own SQL, then through the tools: check must get past the write, and write nothing.
  'sink-writes.mts': sink(`name: 'writes', fields: { user_id: 'bigint', name: 'text' },
    apply: async (trx, ops, { upsert }) => {
      await sql\`insert into users (id, name, email) values (999999, 'check', 'check@example.com')\`.execute(trx);
      await upsert(ops, { table: 'users', key: ['id'], columns: { id: 'bigint', name: 'text', emial: 'text' },
        row: (op) => ({ id: op.user_id, name: op.name, emial: '' }) }); }`),
};

describe('viewkeeper check', () => {
  it('gives one line per mistake, views then sinks, and exits 1', async () => {
    const jobs = createJobsDir(MISTAKES);
    try {
      const result = await runCli(['check'], { ...ctx.env, VK_JOBS_DIR: jobs.dir });
      expect(result.stderr).toBe('');
      expect(result.stdout.trim().split('\n')).toEqual([
        'view batch_mismatch: batchPartials (name = any(…)): operator does not exist: text = bigint',
        'view depends_typo: dependsOn names a table that does not exist: userz',
        `view key_typo: key {uid} not among the query's columns (id, name)`,
        'view only_key: the query returns no column besides the key (id): a hash needs fields',
        'view partial_broken: partial query: column "nosuch" does not exist',
        `view zset_score: score points not among the query's columns (post_id, votes)`,
        `sink bad_refresh: refreshes view "key_typo" by params, but the view has no partial refresh: use 'full'`,
        'sink bad_refresh: refreshes view "missing_view", which is not defined',
        'sink bad_refresh: refresh.partial_broken gives params the view refuses: unknown param "idd" for view "partial_broken": it takes id',
        'sink increment_typo: increment posts: no column upvotez in posts',
        'sink no_unique: upsert users: no unique index on (email), which on conflict (email) needs',
        'sink writes: upsert users: no column emial in users',
      ]);
      expect(result.code).toBe(1);
    } finally {
      jobs.remove();
    }
  });

  it('writes nothing: a sink that inserts with its own SQL leaves the table as it was', async () => {
    const jobs = createJobsDir({
      'sink-writes.mts': MISTAKES['sink-writes.mts']
        .replace(", emial: 'text'", '')
        .replace(", emial: ''", ''),
    });
    try {
      const result = await runCli(['check'], { ...ctx.env, VK_JOBS_DIR: jobs.dir });
      expect(result.stdout.trim()).toMatch(/^ok: 0 views and 1 sink checked against /);
      expect(result.code).toBe(0);
      const { rows } = await sql<{
        n: number;
      }>`select count(*)::int as n from users where id = 999999`.execute(ctx.db.db);
      expect(rows[0]!.n).toBe(0);
    } finally {
      jobs.remove();
    }
  });

  it('lists every file that is not a definition and still checks the others', async () => {
    const jobs = createJobsDir({
      'a-nothing.mts': 'const unused = 1;\n',
      'b-number.mts': 'export default 42;\n',
      'key-typo.mts': MISTAKES['key-typo.mts'],
    });
    try {
      const result = await runCli(['check'], { ...ctx.env, VK_JOBS_DIR: jobs.dir });
      expect(result.code).toBe(1);
      expect(result.stdout.trim().split('\n')).toEqual([
        expect.stringMatching(
          /a-nothing\.mts exports nothing: expected `export default defineView\(…\)` or `export default defineSink\(…\)`$/,
        ),
        expect.stringMatching(
          /b-number\.mts: the default export is number, expected `export default defineView/,
        ),
        `view key_typo: key {uid} not among the query's columns (id, name)`,
      ]);
    } finally {
      jobs.remove();
    }
  });
});
