import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineView } from '../../src/index.ts';
import { createRowSource } from '../../src/views/row-source.ts';
import type { Row, ShapeWriter } from '../../src/views/writers/shape-writer.ts';
import { createTestContext, type TestContext } from '../helpers/context.ts';

// A full rebuild streams its rows through a cursor; the daemon's memory must not grow with the view.
// What a row source has handed to the writer must be collectable before the stream ends.

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.cleanup());

/** A full collection now (the test process was not started with --expose-gc). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

const numbers = defineView<Record<string, never>>()({
  name: 'numbers',
  shape: 'zset',
  key: 'numbers',
  member: '{n}',
  score: 'n',
  query: (db) =>
    db.selectFrom(sql<{ n: number }>`generate_series(1, 30000)`.as('g')).select(sql<number>`g`.as('n')),
});

describe('row source', () => {
  it('a streamed full rebuild keeps no row it has already handed on, even with an abort signal', async () => {
    const source = createRowSource({ db: ctx.db.db, chunkSize: 1000 });
    const early: WeakRef<Row>[] = [];
    let seen = 0;
    let earlyAlive = -1;
    const writer: ShapeWriter = {
      add(row) {
        seen += 1;
        if (seen <= 100) early.push(new WeakRef(row));
        if (seen === 25_000) {
          collectGarbage();
          earlyAlive = early.filter((ref) => ref.deref() !== undefined).length;
        }
        return undefined;
      },
      finish: async () => ({ rows: seen, changedKeys: null, superseded: false }),
      abort: async () => undefined,
    };
    await source.stream(numbers, writer, undefined, undefined, new AbortController().signal);
    expect(seen).toBe(30_000);
    expect(earlyAlive).toBe(0);
  });

  it('an abort stops the stream between rows with the signal reason', async () => {
    const source = createRowSource({ db: ctx.db.db, chunkSize: 1000 });
    const controller = new AbortController();
    let seen = 0;
    const writer: ShapeWriter = {
      add() {
        seen += 1;
        if (seen === 1500) controller.abort(new Error('stopping'));
        return undefined;
      },
      finish: async () => ({ rows: seen, changedKeys: null, superseded: false }),
      abort: async () => undefined,
    };
    await expect(source.stream(numbers, writer, undefined, undefined, controller.signal)).rejects.toThrow(
      'stopping',
    );
    expect(seen).toBe(1500);
  });
});
