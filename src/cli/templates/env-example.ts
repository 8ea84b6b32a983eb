import { CONFIG_DEFAULTS } from '../../config/config.ts';

// The `.env.example` that `viewkeeper init` writes: every variable config.ts reads, commented out
// with its default (test/unit/init-templates.test.ts fails when one is missing). No secrets: the
// values are the defaults, which carry no password.

const VARIABLES: { name: string; value: string; about: string[] }[] = [
  {
    name: 'DATABASE_URL',
    value: CONFIG_DEFAULTS.databaseUrl,
    about: ["Postgres holding your tables and viewkeeper's own schema (`npx viewkeeper migrate`)."],
  },
  {
    name: 'DATABASE_READ_URL',
    value: '',
    about: [
      'A streaming standby of DATABASE_URL for full rebuilds; empty = every view query reads the primary.',
      'Refreshes that follow a write always read the primary (README, "Read replica").',
    ],
  },
  {
    name: 'VK_REPLICA_WAIT_MS',
    value: String(CONFIG_DEFAULTS.replicaWaitMs),
    about: [
      "Longest a full rebuild waits for the standby to replay up to the primary's position (ms)",
      'before it reads the primary instead; 0 = no wait.',
    ],
  },
  {
    name: 'REDIS_URL',
    value: CONFIG_DEFAULTS.redisUrl,
    about: [
      'Redis for views, view metadata and events. May carry credentials and a database number',
      '(redis://host:6379/5); rediss:// for TLS. Credentials never appear in any output.',
    ],
  },
  {
    name: 'QUEUE_REDIS_URL',
    value: '',
    about: [
      'Redis for the queues (refresh, write-behind); empty = REDIS_URL. In production: a persistent',
      'instance with maxmemory-policy noeviction.',
    ],
  },
  {
    name: 'VK_PREFIX',
    value: CONFIG_DEFAULTS.prefix,
    about: ['Namespace of queues, events and metadata keys ({prefix}:events, {prefix}:view:{name}).'],
  },
  {
    name: 'VK_JOBS_DIR',
    value: CONFIG_DEFAULTS.jobsDir,
    about: ['Folder of view and sink definitions, one per file.'],
  },
  {
    name: 'VK_HTTP_HOST',
    value: CONFIG_DEFAULTS.httpHost,
    about: ['Interface of the HTTP operations surface.'],
  },
  { name: 'VK_HTTP_PORT', value: '', about: ['Port of that surface; empty = no listener.'] },
  {
    name: 'VK_HTTP_TOKEN',
    value: '',
    about: [
      'Bearer token for every route but /livez and /readyz; required when VK_HTTP_HOST is not loopback.',
    ],
  },
  {
    name: 'VK_REFRESH_CONCURRENCY',
    value: String(CONFIG_DEFAULTS.refreshConcurrency),
    about: ['Refresh runs one daemon makes at once (1-256).'],
  },
  {
    name: 'VK_JOB_LOCK_MS',
    value: String(CONFIG_DEFAULTS.jobLockMs),
    about: ["Lock lifetime of a running job (ms): a dead daemon's jobs move on after about this long."],
  },
  {
    name: 'VK_AUDIT_INTERVAL_MS',
    value: String(CONFIG_DEFAULTS.auditIntervalMs),
    about: ["How often the daemon compares a sample of each view's keys with its query (ms); 0 = off."],
  },
  {
    name: 'VK_AUDIT_SAMPLE',
    value: String(CONFIG_DEFAULTS.auditSample),
    about: ['Keys of each view compared per audit (1-10000); views without params are compared whole.'],
  },
  {
    name: 'VK_CAPTURE_POLL_MS',
    value: String(CONFIG_DEFAULTS.capturePollMs),
    about: ['Longest wait between two looks at the change-capture outbox without a notification (ms).'],
  },
  {
    name: 'LOG_LEVEL',
    value: CONFIG_DEFAULTS.logLevel,
    about: ['fatal, error, warn, info, debug, trace or silent.'],
  },
];

export function envExample(): string {
  return [
    "# viewkeeper's settings. Copy this file to .env and uncomment what you change: `npx viewkeeper`",
    '# reads .env from the working directory, and the environment wins over it. The values shown are',
    '# the defaults. Keep .env out of version control once it holds passwords.',
    ...VARIABLES.flatMap((variable) => [
      '',
      ...variable.about.map((line) => `# ${line}`),
      `# ${variable.name}=${variable.value}`,
    ]),
    '',
  ].join('\n');
}
