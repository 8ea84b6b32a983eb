import { defineConfig } from 'vitest/config';

// Two projects: `unit` never touches the network; `integration` runs against the real Postgres and
// Redis named by DATABASE_URL / REDIS_URL (defaults: 127.0.0.1), each test file in its own database
// cloned from a template migrated once per run, and its own Redis database number and key prefix.
export default defineConfig({
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest/report.json' },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          // Each worker slot owns one Redis database (see test/helpers/context.ts); 2 slots fit 2 cores.
          maxWorkers: 2,
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
