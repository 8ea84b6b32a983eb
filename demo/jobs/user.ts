import { defineView } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// user:{id} → hash of name, email, org_id (org_id is '' when NULL).
export default defineView<Database>()({
  name: 'user',
  shape: 'hash',
  key: 'user:{id}',
  params: { id: 'bigint' },
  // Narrowing by the param = the full query's rows with that column: many keys, one query.
  batchPartials: true,
  // Any writer's change to users reaches the view (after `viewkeeper capture install`); an UPDATE that
  // changes a user's id refreshes the old key (row gone → key removed) and the new one.
  capture: { users: { columns: ['id'], map: (row) => ({ id: row.id }) } },
  query: (db, params) => {
    let query = db.selectFrom('users').select(['id', 'name', 'email', 'org_id']);
    if (params) query = query.where('id', '=', params.id);
    return query;
  },
});
