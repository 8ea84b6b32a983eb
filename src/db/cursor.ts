import type { EventEmitter } from 'node:events';
import Cursor from 'pg-cursor';

/** What pg-cursor keeps of its connection (not in its types). */
interface CursorInternals {
  connection: (EventEmitter & { stream?: { destroyed?: boolean } }) | null;
  state: string;
}

/**
 * pg-cursor whose `close()` does not wait for a server that is gone. pg-cursor closes an errored
 * cursor by sending Close + Sync and waiting for the server's ReadyForQuery; when the error was the
 * connection dying (a Postgres restart, a terminated backend), that answer never comes, and Kysely's
 * `stream()` — which closes its cursor in a `finally` — hangs for good: the refresh run never ends
 * and holds its view's run lock. Here the close also ends when the connection does.
 */
export class ResilientCursor<Row = unknown> extends Cursor<Row> {
  /**
   * A read waiting on a connection that ends (a Postgres restart) rejects instead of waiting for
   * rows that cannot come: seen under load, a pending read of a streaming rebuild never settled
   * after its server restarted, and the run held its view's lock for good.
   */
  override read(rows: number): Promise<Row[]>;
  override read(rows: number, callback: Cursor.ResultCallback<Row>): undefined;
  override read(rows: number, callback?: Cursor.ResultCallback<Row>): Promise<Row[]> | undefined;
  override read(rows: number, callback?: Cursor.ResultCallback<Row>): Promise<Row[]> | undefined {
    if (callback) return super.read(rows, callback);
    const pending = super.read(rows);
    const { connection, state } = this as unknown as CursorInternals;
    if (!connection || state === 'done') return pending;
    const stream = connection.stream as (EventEmitter & { destroyed?: boolean }) | undefined;
    return new Promise<Row[]>((resolve, reject) => {
      const lost = () => reject(new Error('Connection terminated while a cursor read was waiting'));
      connection.once('end', lost);
      stream?.once('close', lost);
      if (stream?.destroyed) lost();
      pending.then(resolve, reject).finally(() => {
        connection.off('end', lost);
        stream?.off('close', lost);
      });
    });
  }

  override close(): Promise<void>;
  override close(callback: (err: Error) => void): undefined;
  override close(callback?: (err: Error) => void): Promise<void> | undefined {
    if (callback) return super.close(callback);
    const { connection, state } = this as unknown as CursorInternals;
    if (!connection || state === 'done') return super.close();
    const stream = connection.stream as
      | (EventEmitter & { destroyed?: boolean; readableEnded?: boolean; writableEnded?: boolean })
      | undefined;
    // The connection may already have ended before close() is called (its 'end' then never comes
    // again): a stream that has ended either way counts as gone.
    if (stream?.destroyed || stream?.readableEnded || stream?.writableEnded) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const gone = () => resolve();
      connection.once('end', gone);
      stream?.once('close', gone);
      super
        .close()
        .then(resolve, reject)
        .finally(() => {
          connection.off('end', gone);
          stream?.off('close', gone);
        });
    });
  }
}
