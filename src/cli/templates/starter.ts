// What `viewkeeper init` writes: a view and a sink over one small table, typed against the package,
// in TypeScript (run by Node's type stripping, which works outside node_modules) or in JavaScript
// with JSDoc types. The generated files are checked by test/integration/init.test.ts: they
// typecheck, pass `viewkeeper check` and run under `viewkeeper start`.

/** The table the starter jobs read and write, and its SQL file's name. */
export const STARTER_TABLE = 'starter_items';
export const STARTER_SQL_FILE = 'viewkeeper-starter.sql';
export const STARTER_VIEW = 'starter_item';
/** The jobs' table types, imported by type only (the loader skips .d.ts files). */
const SCHEMA_MODULE = './schema.d.ts';

export const STARTER_SQL = `-- The table the starter jobs of \`viewkeeper init\` read and write (jobs/starter-item.*,
-- jobs/sink-starter-items.*), with three rows. Run it once, after \`npx viewkeeper migrate\`:
--   psql "postgres://…your DATABASE_URL…" -f ${STARTER_SQL_FILE}
-- When your own views replace the starter ones: drop table ${STARTER_TABLE};
create table if not exists ${STARTER_TABLE} (
  id bigint primary key,
  name text not null,
  score integer not null default 0
);

insert into ${STARTER_TABLE} (id, name, score)
values (1, 'first', 10), (2, 'second', 20), (3, 'third', 30)
on conflict (id) do nothing;
`;

export const SCHEMA_TYPES = `// Your tables as the definitions in this folder see them: the \`Database\` given to
// defineView<Database>() and defineSink<Database>(), so that queries are checked against your column
// names and types. Keep it in step with your schema, by hand or generated (kysely-codegen writes
// this kind of file). The loader skips .d.ts files. bigint columns arrive as strings, so ids beyond
// 2^53 stay exact.

export interface StarterItemsTable {
  id: string;
  name: string;
  score: number;
}

export interface Database {
  ${STARTER_TABLE}: StarterItemsTable;
}
`;

const VIEW_HEADER = `// ${STARTER_VIEW}:{id} → a Redis hash of each starter item's name and score. Refresh one item with
// \`npx viewkeeper refresh ${STARTER_VIEW} --param id=1\`, all of them without --param. Replace it with
// views of your own tables (README, "Views").`;

const VIEW_BODY = `  name: '${STARTER_VIEW}',
  shape: 'hash',
  key: '${STARTER_VIEW}:{id}',
  params: { id: 'bigint' },
  // Narrowing by the param = the full query's rows with that id: many keys refresh in one query.
  batchPartials: true,
  dependsOn: ['${STARTER_TABLE}'],
  query: (db, params) => {
    let query = db.selectFrom('${STARTER_TABLE}').select(['id', 'name', 'score']);
    if (params) query = query.where('id', '=', params.id);
    return query;
  },
});
`;

const SINK_HEADER = `// ${STARTER_TABLE}: write-behind into ${STARTER_TABLE}. An app enqueues ops { id, item_id, name, score }
// (\`id\` is the op's idempotency key, chosen by the app); the daemon upserts them by item id in
// batches, the latest op winning, and then refreshes the item's ${STARTER_VIEW} hash.`;

const SINK_BODY = `  name: '${STARTER_TABLE}',
  fields: {
    item_id: 'bigint',
    name: { type: 'text', maxLength: 200 },
    score: 'integer',
  },
  apply: async (_trx, ops, { upsert }) => {
    await upsert(ops, {
      table: '${STARTER_TABLE}',
      key: ['id'],
      columns: { id: 'bigint', name: 'text', score: 'integer' },
      row: (op) => ({ id: op.item_id, name: op.name, score: op.score }),
    });
  },
  refresh: { ${STARTER_VIEW}: (op) => ({ id: op.item_id }) },
});
`;

/** Relative path under the project → contents. */
export type StarterFiles = Record<string, string>;

export function starterJobs(language: 'ts' | 'js'): StarterFiles {
  if (language === 'ts') {
    return {
      'jobs/starter-item.mts': `import { defineView } from 'viewkeeper';
import type { Database } from '${SCHEMA_MODULE}';

${VIEW_HEADER}
export default defineView<Database>()({
${VIEW_BODY}`,
      'jobs/sink-starter-items.mts': `import { defineSink } from 'viewkeeper';
import type { Database } from '${SCHEMA_MODULE}';

${SINK_HEADER}
export default defineSink<Database>()({
${SINK_BODY}`,
      'jobs/schema.d.ts': SCHEMA_TYPES,
    };
  }
  // JSDoc cannot pass a type argument; casting the function to its instantiation does the same.
  const typed = (fn: string) =>
    `// The cast gives ${fn} your table types, as ${fn}<Database>() does in TypeScript.\nexport default /** @type {typeof ${fn}<Database>} */ (${fn})()({`;
  return {
    'jobs/starter-item.mjs': `// @ts-check
import { defineView } from 'viewkeeper';

/** @import { Database } from '${SCHEMA_MODULE}' */

${VIEW_HEADER}
${typed('defineView')}
${VIEW_BODY}`,
    'jobs/sink-starter-items.mjs': `// @ts-check
import { defineSink } from 'viewkeeper';

/** @import { Database } from '${SCHEMA_MODULE}' */

${SINK_HEADER}
${typed('defineSink')}
${SINK_BODY}`,
    'jobs/schema.d.ts': SCHEMA_TYPES,
  };
}
