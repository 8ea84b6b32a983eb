import { viewKeys } from '../../redis/keys.ts';
import { placementOf } from '../../redis/placement.ts';
import { InFlight } from './in-flight.ts';
import type { Row, ShapeWriter, WriterContext, WriteSummary } from './shape-writer.ts';

const CHUNK_BYTES = 64 * 1024;
const TEMP_TTL_SECONDS = 3600;

/**
 * `json` views: the whole result as one JSON array at one key. Rows are serialised as they stream
 * and appended to a temporary key in 64 KB pieces (so a large result never sits whole in the
 * daemon's memory), then swapped in with RENAME. On a cluster the temporary key is placed in the live
 * key's slot (placement.ts), so the RENAME stays one atomic same-slot command.
 */
export function createJsonWriter(ctx: WriterContext): ShapeWriter {
  const { view, scripts, seq, redis } = ctx;
  const live = view.key.fill({});
  const placement = placementOf(redis);
  const temp = placement.inSlot(viewKeys(ctx.prefix, view.name).temp(seq), placement.slotOf(live));
  const inFlight = new InFlight<unknown>(ctx.maxInFlight ?? 4);
  let buffer = '[';
  let rows = 0;
  let started = false;

  function flush(): Promise<void> {
    const piece = buffer;
    buffer = '';
    // Plain commands, not a pipeline: a pipeline's exec() resolves even when its commands fail.
    const call = started ? redis.append(temp, piece) : redis.set(temp, piece, 'EX', TEMP_TTL_SECONDS);
    started = true;
    return inFlight.track(call);
  }

  return {
    add(row: Row) {
      buffer += (rows === 0 ? '' : ',') + JSON.stringify(row);
      rows += 1;
      return buffer.length >= CHUNK_BYTES ? flush() : undefined;
    },

    async finish(): Promise<WriteSummary> {
      buffer += ']';
      await flush();
      await inFlight.drain();
      await scripts.run('vkSwapValue', [temp, live], [view.ttl]);
      return { rows, changedKeys: null, superseded: false };
    },

    async abort() {
      await inFlight.drain().catch(() => undefined);
      await redis.del(temp);
    },
  };
}
