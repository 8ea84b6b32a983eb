// Exclusive use of one Redis test database per test file, across vitest workers and processes.
import { closeRedis, connectRedis, createRedis } from '../../src/redis/connections.ts';
import { firstTestRedisDb, testRedisUrl, withDatabase } from './env.ts';

const LEASE_SECONDS = 15 * 60;

/**
 * Takes the first free Redis database among firstTestRedisDb()..15 for the calling test file. Waits
 * while all are taken; a crashed run's lease expires on its own. Every file that touches a test
 * database must lease it: the holder flushes it at start and at cleanup, so an unleased user would
 * see its keys vanish mid-test.
 */
export async function leaseRedisDatabase(owner: string): Promise<{ db: number; release(): Promise<void> }> {
  const control = createRedis(withDatabase(testRedisUrl(), '0'), { role: 'views', name: 'test-lease' });
  await connectRedis(control, testRedisUrl(), 'REDIS_URL');
  try {
    for (let attempt = 0; attempt < 1200; attempt++) {
      for (let db = firstTestRedisDb(); db <= 15; db++) {
        const key = `viewkeeper:test-lease:${db}`;
        if ((await control.set(key, owner, 'EX', LEASE_SECONDS, 'NX')) === 'OK') {
          return {
            db,
            async release() {
              const releaser = createRedis(withDatabase(testRedisUrl(), '0'), {
                role: 'views',
                name: 'test-lease',
              });
              await connectRedis(releaser, testRedisUrl(), 'REDIS_URL');
              if ((await releaser.get(key)) === owner) await releaser.del(key);
              await closeRedis(releaser);
            },
          };
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`no free Redis test database (${firstTestRedisDb()}–15) for 5 minutes`);
  } finally {
    await closeRedis(control);
  }
}
