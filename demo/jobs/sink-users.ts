import { defineSink } from '../../src/index.ts';
import type { Database } from '../schema.ts';

// users: upsert users by id (the latest op for a user wins). The op's `id` is its idempotency key,
// so the user's id travels as `user_id`. The client writes the user:{id} hash at once (cache effect).
export default defineSink<Database>()({
  name: 'users',
  fields: {
    user_id: 'bigint',
    name: { type: 'text', maxLength: 200 },
    email: { type: 'text', maxLength: 320 },
    org_id: { type: 'bigint', nullable: true },
  },
  apply: async (_trx, ops, { upsert }) => {
    await upsert(ops, {
      table: 'users',
      key: ['id'],
      columns: { id: 'bigint', name: 'text', email: 'text', org_id: 'bigint' },
      row: (op) => ({ id: op.user_id, name: op.name, email: op.email, org_id: op.org_id }),
    });
  },
  refresh: {
    user: (op) => ({ id: op.user_id }),
    user_stats: (op) => ({ user_id: op.user_id }),
  },
  cache: (op, redis) => {
    redis.hset(`user:${op.user_id}`, { name: op.name, email: op.email, org_id: op.org_id ?? '' });
  },
});
