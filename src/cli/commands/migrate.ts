import { loadConfig } from '../../config/config.ts';
import { migrate } from '../../db/migrate.ts';
import { defineCommand } from '../command.ts';

export const migrateCommand = defineCommand({
  name: 'migrate',
  summary:
    "Applies pending migrations (viewkeeper's own schema and the demo schema) to DATABASE_URL, creating the database first if it does not exist. Running it again applies nothing.",
  usage: 'migrate',
  help: [],
  options: {},
  async run(_input, io) {
    const config = loadConfig();
    const result = await migrate(config.databaseUrl);
    if (result.createdDatabase) io.out('created database');
    io.out(result.applied.length === 0 ? 'no pending migrations' : `applied ${result.applied.join(', ')}`);
    return 0;
  },
});
