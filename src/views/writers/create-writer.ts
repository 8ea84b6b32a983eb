import { createJsonWriter } from './json-writer.ts';
import { createRowWriter } from './row-writer.ts';
import type { ShapeWriter, WriterContext } from './shape-writer.ts';
import { createZsetWriter } from './zset-writer.ts';

/** The writer of the view's shape. */
export function createWriter(ctx: WriterContext): ShapeWriter {
  switch (ctx.view.shape) {
    case 'hash':
    case 'value':
      return createRowWriter(ctx);
    case 'zset':
      return createZsetWriter(ctx);
    case 'json':
      return createJsonWriter(ctx);
  }
}
