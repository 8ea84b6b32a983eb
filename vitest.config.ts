import { defineConfig } from 'vitest/config';

// Three projects: `unit` never touches the network; `integration` runs against the real Postgres and
// Redis named by DATABASE_URL / REDIS_URL (defaults: 127.0.0.1), each test file in its own database
// cloned from a template migrated once per run, and its own Redis database number and key prefix;
// `cluster` runs the refresh-engine, write-behind, scheduler and client suites again against a private
// 3-master Redis Cluster (views and queues both on it, hash-tagged prefix), plus the cluster-only tests.
const CLUSTER_SUITES = [
  'test/integration/refresh-views.test.ts',
  'test/integration/refresh-queue.test.ts',
  'test/integration/refresh-concurrency.test.ts',
  'test/integration/refresh-metadata.test.ts',
  'test/integration/group-views.test.ts',
  'test/integration/write-behind.test.ts',
  'test/integration/write-behind-fault.test.ts',
  'test/integration/scheduler.test.ts',
  'test/integration/client-views.test.ts',
  'test/integration/client-cached.test.ts',
  'test/integration/client-l1.test.ts',
  'test/integration/client-early-refresh.test.ts',
  'test/cluster/**/*.test.ts',
];

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
      {
        test: {
          name: 'cluster',
          include: CLUSTER_SUITES,
          globalSetup: ['test/helpers/cluster-global-setup.ts'],
          // One file at a time: each file gets the whole private cluster, flushed between files
          // (view keys come from the views' templates, so a prefix cannot keep files apart; a
          // cluster has no database numbers). See test/helpers/context.ts.
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 90_000,
        },
      },
    ],
  },
});
