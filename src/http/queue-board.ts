import type { IncomingMessage, ServerResponse } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { getRequestListener } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Queue } from 'bullmq';
import { Hono } from 'hono';

/** Where bull-board is mounted. */
export const QUEUE_BOARD_PATH = '/queues';

/**
 * bull-board over the given queues, as a plain node:http handler for everything under /queues.
 * bull-board has no node:http adapter; its Hono adapter needs only hono and @hono/node-server
 * (no dependencies of their own), whereas the Express one brings Express's ~30. The rest of the
 * HTTP surface stays plain node:http: authentication and origin checks run before this handler.
 */
export function createQueueBoard(
  queues: Queue[],
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const adapter = new HonoAdapter(serveStatic);
  adapter.setBasePath(QUEUE_BOARD_PATH);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue)),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'viewkeeper queues' } },
  });
  const app = new Hono();
  app.route(QUEUE_BOARD_PATH, adapter.registerPlugin());
  const listener = getRequestListener(app.fetch);
  return async (req, res) => {
    await listener(req, res);
  };
}
