import type { Insertable, Kysely } from 'kysely';
import type { RefreshRunsTable, ViewkeeperDatabase } from './schema.ts';

/** One row of `viewkeeper.refresh_runs`: a full rebuild or one chunk of a chunked rebuild. */
export type RefreshRun = Insertable<RefreshRunsTable>;

/** Appends one finished (or failed) run to the run history. */
export async function insertRefreshRun(db: Kysely<ViewkeeperDatabase>, run: RefreshRun): Promise<void> {
  await db.insertInto('viewkeeper.refresh_runs').values(run).execute();
}
