import { loadConfig } from '../../config/config.ts';
import { endpointOf } from '../../config/redact.ts';
import { createDb } from '../../db/create-db.ts';
import { openReadOnlySession } from '../../db/read-only.ts';
import { describeError } from '../../errors.ts';
import { checkSink } from '../../sinks/check-sink.ts';
import type { SinkDefinition } from '../../sinks/define-sink.ts';
import { type CheckReport, checkView } from '../../views/check-view.ts';
import { createRegistry, loadDefinitions, type Registry } from '../../views/registry.ts';
import { defineCommand } from '../command.ts';

export const checkCommand = defineCommand({
  name: 'check',
  summary:
    'Loads every definition in VK_JOBS_DIR and checks it against DATABASE_URL without writing anything: each view query runs with LIMIT 0 (full, partial with sample params, batched, chunked), the columns its key, member, score, value and fields name exist, dependsOn tables exist; each sink refreshes defined views with params they accept, and the tables, columns and conflict keys its apply writes exist. One line per problem, exit 1.',
  usage: 'check',
  help: [],
  options: {},
  async run(_input, io) {
    const config = loadConfig();
    const loaded = await loadDefinitions(config.jobsDir);
    const problems = [...loaded.problems];
    let registry: Registry;
    try {
      registry = createRegistry(loaded.definitions);
    } catch (error) {
      problems.push(describeError(error));
      registry = createRegistry([]);
    }
    const views = [...registry.views.values()].sort((a, b) => a.name.localeCompare(b.name));
    const sinks = [...registry.others.values()]
      .filter((definition): definition is SinkDefinition => definition.kind === 'sink')
      .sort((a, b) => a.name.localeCompare(b.name));

    const notes: string[] = [];
    const db = createDb(config.databaseUrl, { max: 1, applicationName: 'viewkeeper-check' });
    try {
      await db.ping();
      const session = await openReadOnlySession(db.pool);
      try {
        const reports: CheckReport[] = [];
        for (const view of views) reports.push(await checkView(session, view));
        for (const sink of sinks) reports.push(await checkSink(session, sink, registry.view));
        for (const report of reports) {
          problems.push(...report.problems);
          notes.push(...report.notes);
        }
      } finally {
        await session.close();
      }
    } finally {
      await db.close();
    }

    for (const line of problems) io.out(line);
    for (const line of notes) io.err(`note: ${line}`);
    if (problems.length > 0) return 1;
    const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
    io.out(
      `ok: ${count(views.length, 'view')} and ${count(sinks.length, 'sink')} checked against ${endpointOf(config.databaseUrl, 5432)}${new URL(config.databaseUrl).pathname}`,
    );
    return 0;
  },
});
