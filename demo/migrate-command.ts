import { defineCommand } from '../src/cli/command.ts';
import { loadConfig } from '../src/config/config.ts';
import { migrateDemo } from './migrate.ts';

export const demoMigrateCommand = defineCommand({
  name: 'migrate',
  summary:
    "Applies viewkeeper's own migrations and the demo's (users, posts, votes) to DATABASE_URL, creating the database first if it does not exist. Running it again applies nothing.",
  usage: 'migrate',
  help: [],
  options: {},
  async run(_input, io) {
    const result = await migrateDemo(loadConfig().databaseUrl);
    if (result.createdDatabase) io.out('created database');
    io.out(result.applied.length === 0 ? 'no pending migrations' : `applied ${result.applied.join(', ')}`);
    return 0;
  },
});
