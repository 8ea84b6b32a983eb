// Where the test services are. Tests read the same variables the daemon does, with local defaults.
export const TEST_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `url` with its database path replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Redis databases 8..15 belong to test worker slots; 0..7 stay free for developers' daemons. */
export const FIRST_TEST_REDIS_DB = 8;
