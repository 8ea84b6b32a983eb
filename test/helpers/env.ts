import { inject } from 'vitest';

// Where the test services are. Postgres: DATABASE_URL, default the local server; every test file
// works in a database it creates and drops (context.ts). Redis: a private redis-server that the
// integration run starts on a free loopback port (global-setup.ts), so the suite can flush its
// databases without touching anybody's data. VK_TEST_REDIS_URL points it at another server instead,
// explicitly; it then uses databases 8..15 of that server and flushes them.
declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
    testRedisUrl: string;
    /** Only in the `cluster` project: its private Redis Cluster (cluster-global-setup.ts). */
    testClusterUrl?: string;
    testClusterPorts?: number[];
  }
}

/** The `cluster` project's Redis Cluster URL (`redis+cluster://…`), undefined in the other projects. */
export function testClusterUrl(): string | undefined {
  return inject('testClusterUrl');
}

export const TEST_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** The Redis server of this test run: explicit VK_TEST_REDIS_URL, or the run's private one. */
export function testRedisUrl(): string {
  return process.env.VK_TEST_REDIS_URL ?? inject('testRedisUrl');
}

/** On a server of its own the suite may use every database but 0 (the leases'); on a shared one, 8..15. */
export function firstTestRedisDb(): number {
  return process.env.VK_TEST_REDIS_URL ? 8 : 1;
}

/** `url` with its database path replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
