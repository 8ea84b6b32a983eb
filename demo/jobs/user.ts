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
  dependsOn: ['users'],
  query: (db, params) => {
    let query = db.selectFrom('users').select(['id', 'name', 'email', 'org_id']);
    if (params) query = query.where('id', '=', params.id);
    return query;
  },
});
