import { ViewkeeperError } from '../../errors.ts';
import { InFlight } from './in-flight.ts';
import {
  type Row,
  type ShapeWriter,
  WRITER_DEFAULTS,
  type WriterContext,
  type WriteSummary,
} from './shape-writer.ts';
import { viewSlots } from './view-slots.ts';

// A crashed rebuild leaves its temporary key behind; this expiry collects it.
const TEMP_TTL_SECONDS = 3600;

/** A pipeline's exec() resolves even when its commands fail (errors are in the results): rethrow the first. */
function throwFirstError(results: [Error | null, unknown][] | null): void {
  const failed = results?.find(([error]) => error !== null);
  if (failed) throw failed[0];
}

/**
 * `zset` views. A full rebuild fills a temporary key with variadic ZADDs while the query streams and
 * swaps it in with swap-members.lua (RENAME), carrying over members that newer partial refreshes
 * changed meanwhile. A partial refresh changes members in place through write-members.lua.
 *
 * The temporary key, the member index and the floor are all placed in the live key's slot (on a
 * cluster; on one server they keep their plain names), so both scripts touch one slot and the
 * RENAME is a same-slot rename: the swap is as atomic as on one server.
 */
export function createZsetWriter(ctx: WriterContext): ShapeWriter {
  const { view, scripts, seq, scope, redis } = ctx;
  const live = view.key.fill({});
  const slots = viewSlots(redis, ctx.prefix, view.name);
  const slot = slots.placement.slotOf(live);
  const keys = slots.keysOf(slot);
  const temp = keys.temp(seq);
  const registered = slots.register([slot]);
  registered?.catch(() => undefined); // awaited later; a failure then fails the run
  const member = view.member!;
  const scoreColumn = view.score!;
  const batchRows = ctx.batchRows ?? WRITER_DEFAULTS.batchRows * 2;
  const inFlight = new InFlight<unknown>(ctx.maxInFlight ?? WRITER_DEFAULTS.maxInFlight);
  const seen = new Set<string>();
  const trackMembers = scope.kind === 'partial';
  let batch: (string | number)[] = [];
  let rows = 0;
  let firstFlush = true;

  function flush(): Promise<void> | undefined {
    if (batch.length === 0) return undefined;
    const args = batch;
    batch = [];
    if (scope.kind === 'partial') {
      const write = () =>
        scripts.run('vkWriteMembers', [live, keys.memberIndex, keys.floor], [seq, view.ttl, ...args]);
      return inFlight.track(registered ? registered.then(write) : write());
    }
    if (firstFlush) {
      firstFlush = false;
      return inFlight.track(
        redis
          .pipeline()
          .zadd(temp, ...args)
          .expire(temp, TEMP_TTL_SECONDS)
          .exec()
          .then(throwFirstError),
      );
    }
    return inFlight.track(redis.zadd(temp, ...args));
  }

  return {
    add(row: Row) {
      const score = Number(row[scoreColumn]);
      if (!Number.isFinite(score)) {
        throw new ViewkeeperError(
          'E_VIEW_DEFINITION',
          `view ${JSON.stringify(view.name)}: score column ${JSON.stringify(scoreColumn)} is ${JSON.stringify(row[scoreColumn])}, not a number`,
        );
      }
      const name = member.fill(row);
      if (trackMembers) {
        seen.add(name);
        batch.push(name, String(score));
      } else {
        batch.push(score, name);
      }
      rows += 1;
      return batch.length >= batchRows * 2 ? flush() : undefined;
    },

    async finish(): Promise<WriteSummary> {
      if (scope.kind === 'partial') {
        const gone = new Set<string>();
        for (const params of scope.params) {
          if (!member.isCoveredBy(Object.keys(params))) continue;
          const expected = member.fill(params);
          if (!seen.has(expected)) gone.add(expected);
        }
        for (const expected of gone) batch.push(expected, ''); // the row is gone: remove the member
      }
      await flush();
      const results = await inFlight.drain();
      if (scope.kind === 'partial') {
        const superseded = results.includes(-1);
        const changed = results.some((count) => typeof count === 'number' && count > 0);
        return { rows, changedKeys: changed ? [live] : [], superseded, written: seen };
      }
      await registered;
      await scripts.run('vkSwapMembers', [temp, live, keys.memberIndex, keys.floor], [seq, view.ttl]);
      return { rows, changedKeys: null, superseded: false };
    },

    async abort() {
      await inFlight.drain().catch(() => undefined);
      if (scope.kind === 'full') await redis.del(temp);
    },
  };
}
