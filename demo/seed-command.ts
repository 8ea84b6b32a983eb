import { defineCommand, integerFlag } from '../src/cli/command.ts';
import { loadConfig } from '../src/config/config.ts';
import { createDb } from '../src/db/create-db.ts';
import type { Database } from './schema.ts';
import { SEED_DEFAULTS, SEED_LIMITS, seedDemo } from './seed.ts';

export const seedCommand = defineCommand({
  name: 'seed',
  summary:
    'Replaces the demo tables (users, posts, votes) with deterministic data generated inside Postgres. The same --seed gives the same rows.',
  usage: 'seed [--users N] [--posts-per-user P] [--votes-per-post V] [--seed S] [--if-empty]',
  help: [
    `  --users N           users to create (default ${SEED_DEFAULTS.users}, at most ${SEED_LIMITS.users.max})`,
    `  --posts-per-user P  posts = users × P (default ${SEED_DEFAULTS.postsPerUser})`,
    `  --votes-per-post V  votes per post from distinct users (default ${SEED_DEFAULTS.votesPerPost}), spread over the last 7 days`,
    `  --seed S            random seed (default ${SEED_DEFAULTS.seed})`,
    '  --if-empty          do nothing when the users table already has rows',
  ],
  options: {
    users: { type: 'string' },
    'posts-per-user': { type: 'string' },
    'votes-per-post': { type: 'string' },
    seed: { type: 'string' },
    'if-empty': { type: 'boolean' },
  },
  async run(input, io) {
    // Validate every flag before touching the database: a bad flag writes nothing.
    const users = integerFlag(input, 'users', SEED_LIMITS.users.min, SEED_LIMITS.users.max);
    const postsPerUser = integerFlag(
      input,
      'posts-per-user',
      SEED_LIMITS.postsPerUser.min,
      SEED_LIMITS.postsPerUser.max,
    );
    const votesPerPost = integerFlag(
      input,
      'votes-per-post',
      SEED_LIMITS.votesPerPost.min,
      SEED_LIMITS.votesPerPost.max,
    );
    const seed = integerFlag(input, 'seed', SEED_LIMITS.seed.min, SEED_LIMITS.seed.max);
    const config = loadConfig();
    const handle = createDb<Database>(config.databaseUrl, { max: 1 });
    try {
      await handle.ping();
      if (input.values['if-empty']) {
        const existing = await handle.db.selectFrom('users').select('id').limit(1).execute();
        if (existing.length > 0) {
          io.out('demo data present, not seeding (--if-empty)');
          return 0;
        }
      }
      const result = await seedDemo(handle, { users, postsPerUser, votesPerPost, seed });
      io.out(
        `seeded ${result.users} users, ${result.posts} posts, ${result.votes} votes in ${(result.ms / 1000).toFixed(1)} s`,
      );
      return 0;
    } finally {
      await handle.close();
    }
  },
});
