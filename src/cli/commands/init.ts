import { access, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defineCommand } from '../command.ts';
import { envExample } from '../templates/env-example.ts';
import { STARTER_SQL, STARTER_SQL_FILE, STARTER_VIEW, starterJobs } from '../templates/starter.ts';

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

export const initCommand = defineCommand({
  name: 'init',
  summary: `Writes a starter project: jobs/ with one view and one sink over a small table (TypeScript, or JavaScript with JSDoc types with --js), the table's SQL (${STARTER_SQL_FILE}) and an .env.example with every setting. Never overwrites a file unless --force.`,
  usage: 'init [--js] [--dir path] [--force]',
  help: [
    '  --js         JavaScript definitions (JSDoc types) instead of TypeScript',
    '  --dir path   the project folder (default: the working directory)',
    '  --force      overwrite files that exist',
  ],
  options: { js: { type: 'boolean' }, dir: { type: 'string' }, force: { type: 'boolean' } },
  async run(input, io) {
    const root = path.resolve(String(input.values.dir ?? '.'));
    const files = {
      ...starterJobs(input.values.js ? 'js' : 'ts'),
      [STARTER_SQL_FILE]: STARTER_SQL,
      '.env.example': envExample(),
    };
    const shown = (file: string) => path.relative(process.cwd(), path.join(root, file)) || '.';
    // Everything is checked before anything is written: a refused init leaves the folder as it was.
    if (!input.values.force) {
      for (const file of Object.keys(files)) {
        if (await exists(path.join(root, file))) {
          io.err(
            `viewkeeper init: ${shown(file)} already exists: init never overwrites a file (move it away, or pass --force)`,
          );
          return 1;
        }
      }
    }
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, file)), { recursive: true });
      await writeFile(path.join(root, file), text);
    }
    io.out(`wrote ${Object.keys(files).map(shown).join(', ')}`);
    io.out('');
    io.out('Next:');
    const steps: [string, string][] = [
      ['cp .env.example .env', 'then set DATABASE_URL and REDIS_URL in .env'],
      ['npx viewkeeper migrate', "viewkeeper's own schema (creates the database if needed)"],
      [`psql "<DATABASE_URL>" -f ${STARTER_SQL_FILE}`, 'the table the starter jobs use'],
      ['npx viewkeeper check', 'the jobs against the database, nothing written'],
      ['npx viewkeeper start', 'the daemon'],
      [`npx viewkeeper refresh ${STARTER_VIEW} --wait`, 'in another terminal: fill the view'],
    ];
    if (root !== process.cwd()) steps.unshift([`cd ${shown('')}`, '']);
    const width = Math.max(...steps.map(([command]) => command.length));
    for (const [command, why] of steps) io.out(`  ${command.padEnd(width)}  ${why}`.trimEnd());
    return 0;
  },
});
