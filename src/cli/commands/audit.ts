import { loadConfig } from '../../config/config.ts';
import { createDb } from '../../db/create-db.ts';
import { silentLogger } from '../../logging/create-logger.ts';
import { closeRedis, connectRedis, createRedisConnection } from '../../redis/connections.ts';
import { createAuditor } from '../../views/audit.ts';
import { createRefreshEngine } from '../../views/refresh-engine.ts';
import { loadRegistry } from '../../views/registry.ts';
import { defineCommand, integerFlag, usageError } from '../command.ts';

export const auditCommand = defineCommand({
  name: 'audit',
  summary:
    "Compares a view's Redis content with what its query returns now: a sample of its keys (views without params: all of it). Exit 1 when drift was found and not repaired.",
  usage: 'audit <view> [--sample N] [--repair] [--json]',
  help: [
    '  --sample N  keys (zset: members) to compare, at most (default VK_AUDIT_SAMPLE, 20)',
    '  --repair    refresh what differs (the same runs as any refresh), then report it repaired',
    '  --json      print the result as one JSON object',
  ],
  options: {
    sample: { type: 'string' },
    repair: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  async run(input, io) {
    const [name, ...extra] = input.positionals;
    if (!name) throw usageError('which view? give its name: viewkeeper audit <view>');
    if (extra.length > 0) throw usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    const config = loadConfig();
    const sample = integerFlag(input, 'sample', 1, 1_000_000) ?? config.auditSample;
    const registry = await loadRegistry(config.jobsDir);
    const view = registry.view(name);
    if (!view) {
      const known = [...registry.views.keys()].sort().join(', ');
      throw usageError(`unknown view ${JSON.stringify(name)}: known views are ${known || '(none)'}`);
    }
    const db = createDb(config.databaseUrl, { max: 2, applicationName: 'viewkeeper-audit' });
    const redis = createRedisConnection(config.redisUrl, { role: 'views', name: `${config.prefix}:cli` });
    try {
      await db.ping();
      await connectRedis(redis, config.redisUrl, 'REDIS_URL');
      const logger = silentLogger();
      const engine = createRefreshEngine({ db: db.db, redis, prefix: config.prefix, logger });
      const auditor = createAuditor({ db: db.db, redis, prefix: config.prefix, engine, logger });
      const result = await auditor.audit(view, { sample, repair: input.values.repair === true });
      if (input.values.json) io.out(JSON.stringify(result));
      else
        io.out(
          `audit ${result.view} (${result.mode}): checked ${result.checked}, drifted ${result.drifted}, repaired ${result.repaired}${result.keys.length > 0 ? `: ${result.keys.join(', ')}` : ''}`,
        );
      return result.drifted > result.repaired ? 1 : 0;
    } finally {
      await closeRedis(redis);
      await db.close();
    }
  },
});
