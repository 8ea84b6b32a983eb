import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type DbHandle } from '../../src/db/create-db.ts';
import { isTransient } from '../../src/lib/transient.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';

// What a query sees when Postgres drops its connection: it fails (transiently, so it is retried), and
// nothing is left hanging or unhandled. The backend is terminated with pg_terminate_backend, which is
// what a restart or failover looks like from a connection.

let ctx: TestContext;
let handle: DbHandle;
const lost: Error[] = [];
beforeAll(async () => {
  ctx = await createTestContext();
  handle = createDb(ctx.databaseUrl, {
    max: 2,
    applicationName: 'vk-connection-loss',
    onConnectionError: (error) => lost.push(error),
  });
});
afterAll(async () => {
  await handle?.close();
  await ctx?.cleanup();
});

const terminate = () =>
  sql`select pg_terminate_backend(pid) from pg_stat_activity
      where application_name = 'vk-connection-loss' and pid <> pg_backend_pid()`.execute(ctx.db.db);

describe('a Postgres connection lost mid-work', () => {
  it('a streamed query (pg-cursor) fails instead of hanging, and the pool serves the next query', async () => {
    const stream = handle.db
      .selectFrom(sql<{ n: number }>`generate_series(1, 100000)`.as('s'))
      .select(sql<number>`s`.as('n'))
      .stream(100);
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    await terminate();
    // Before, the cursor's close waited for the dead server's answer: this never settled.
    const outcome = await (async () => {
      try {
        for (;;) if ((await iterator.next()).done) return 'ended';
      } catch (error) {
        return error;
      }
    })();
    // 57P01, "Connection terminated", EPIPE …: whichever the timing gives, one that is retried.
    expect(isTransient(outcome), String(outcome)).toBe(true);
    // Reported (not thrown at the process) once the socket has closed.
    for (let i = 0; i < 100 && lost.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(lost.length).toBeGreaterThan(0);
    const { rows: after } = await sql<{ one: number }>`select 1 as one`.execute(handle.db);
    expect(after).toEqual([{ one: 1 }]);
  });

  it('a connection checked out between statements of a transaction fails the transaction, not the process', async () => {
    const outcome = await handle.db
      .transaction()
      .execute(async (trx) => {
        await sql`select 1`.execute(trx);
        await terminate();
        await new Promise((resolve) => setTimeout(resolve, 200)); // the error arrives while idle in the transaction
        await sql`select 2`.execute(trx);
        return 'committed';
      })
      .catch((error: unknown) => error);
    expect(isTransient(outcome), String(outcome)).toBe(true);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(handle.db);
    expect(rows).toEqual([{ one: 1 }]);
  });
});
