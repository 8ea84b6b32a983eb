import { loadConfig } from '../../config/config.ts';
import { MAX_BULK_PARAMS, QUEUES } from '../../contract.ts';
import { describeField, payloadSchemas } from '../../queues/payload-schemas.ts';
import { sinksOf } from '../../queues/write-behind-payload.ts';
import { loadRegistry } from '../../views/registry.ts';
import { defineCommand } from '../command.ts';

export const schemaCommand = defineCommand({
  name: 'schema',
  summary:
    "Prints what producers may enqueue, generated from the definitions in VK_JOBS_DIR: each view's refresh job data and each sink's write-behind job data. With --json, JSON Schemas (draft 2020-12) to validate payloads with before enqueueing, in any language.",
  usage: 'schema [--json]',
  help: [
    '  --json  print {"refresh": {<view>: schema}, "write-behind": {<sink>: schema}}; $defs.op of a sink\'s schema is one op',
  ],
  options: { json: { type: 'boolean' } },
  async run(input, io) {
    const config = loadConfig();
    const registry = await loadRegistry(config.jobsDir);
    const views = [...registry.views.values()].sort((a, b) => a.name.localeCompare(b.name));
    const sinks = [...sinksOf(registry.others.values()).values()].sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    if (input.values.json) {
      io.out(JSON.stringify(payloadSchemas(views, sinks), null, 2));
      return 0;
    }
    const width = Math.max(0, ...[...views, ...sinks].map((definition) => definition.name.length));
    io.out(
      `queue ${QUEUES.refresh} (job name = view): { "params"?: {…} | [{…}, … up to ${MAX_BULK_PARAMS}], "reason"?: string }`,
    );
    for (const view of views) {
      const params = Object.entries(view.params ?? {}).map(([name, type]) => `${name}: ${type}`);
      io.out(
        `  ${view.name.padEnd(width)}  ${params.length ? `params { ${params.join(', ')} }` : 'full rebuild only (no params)'}`,
      );
    }
    io.out(`queue ${QUEUES.writeBehind} (job name = sink): { "ops": [{ "id": string, …fields }, …] }`);
    for (const sink of sinks)
      io.out(`  ${sink.name.padEnd(width)}  ${sink.fields.map(describeField).join(', ')}`);
    io.out('');
    io.out('`viewkeeper schema --json` prints these as JSON Schemas (draft 2020-12).');
    return 0;
  },
});
