import type { Kysely } from 'kysely';
import { failureKind } from '../connect-failure.ts';
import { createDb } from '../db/create-db.ts';
import { createReadReplica, type ReadReplica } from '../db/read-replica.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { ReleaseStack } from './release-stack.ts';

/**
 * The standby named by DATABASE_READ_URL, connected for the daemon (its pool is released with the
 * daemon). A standby that is down at start-up does not stop the daemon: full rebuilds read the
 * primary until it answers (views/read-route.ts). A refused password or a missing database does:
 * that is a configuration mistake no waiting fixes.
 */
export async function connectReplica(options: {
  url: string;
  // biome-ignore lint/suspicious/noExplicitAny: any database
  primary: Kysely<any>;
  /** Full rebuilds that may read the standby at once. */
  concurrency: number;
  logger: Logger;
  releases: ReleaseStack;
}): Promise<ReadReplica> {
  const { logger } = options;
  const handle = createDb(options.url, {
    applicationName: 'viewkeeper-daemon',
    variable: 'DATABASE_READ_URL',
    // a query per refresh slot and per chunk worker (half as many), the catch-up checks between
    // them, and the status probe
    max: options.concurrency * 2 + 2,
    onConnectionError: (error) =>
      logger.warn(
        { reason: describeError(error) },
        'postgres replica connection lost; full rebuilds on it will be retried',
      ),
  });
  const replica = createReadReplica({ primary: options.primary, replica: handle });
  options.releases.push('postgres replica pool', () => replica.close());
  try {
    await replica.ping();
  } catch (error) {
    if (failureKind(error) !== 'unreachable') throw error;
    logger.warn(
      { reason: describeError(error) },
      'postgres replica (DATABASE_READ_URL) not reachable: full rebuilds read the primary until it is',
    );
    return replica;
  }
  const status = await replica.status();
  if (status.state === 'not a standby') {
    logger.warn(
      { reason: status.reason },
      'DATABASE_READ_URL is not a standby (pg_is_in_recovery() is false): full rebuilds read the primary',
    );
  }
  return replica;
}
