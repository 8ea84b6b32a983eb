import type { Kysely } from 'kysely';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CaptureObserver } from '../capture/drainer.ts';
import { type OutboxStats, outboxStats } from '../db/capture-outbox.ts';
import type { ViewkeeperDatabase } from '../db/schema.ts';

// Change capture's metrics. The outbox gauges read Postgres at scrape time (one query for the three,
// shared by the scrape), so they show the whole fleet's backlog whichever daemon is scraped; the
// counters count what this daemon drained, so the fleet's drain rate is the sum of their rates.
// Labels: view only (bounded), never a table's key values.

const P = 'viewkeeper_';

/** Registers the capture metrics in `register`; returns the observer the drainer feeds. */
export function registerCaptureMetrics(
  register: Registry,
  db: Kysely<ViewkeeperDatabase> | undefined,
): CaptureObserver {
  const registers = [register];
  const drained = new Counter({
    name: `${P}capture_drained_rows_total`,
    help: 'Changed rows (distinct keys of captured statements) this daemon drained from the outbox; rate() = drain rate.',
    registers,
  });
  const statements = new Counter({
    name: `${P}capture_drained_statements_total`,
    help: 'Captured statements (outbox rows) this daemon drained.',
    registers,
  });
  const failed = new Counter({
    name: `${P}capture_failed_changes_total`,
    help: 'Captured rows whose mapping threw or gave params the view refused (kept in viewkeeper.capture_failures; the view was rebuilt whole), by view.',
    labelNames: ['view'],
    registers,
  });

  let read: Promise<OutboxStats | undefined> | undefined;
  function outbox(): Promise<OutboxStats | undefined> {
    if (!db) return Promise.resolve(undefined);
    read ??= outboxStats(db, 0).finally(() =>
      setImmediate(() => {
        read = undefined;
      }),
    );
    return read;
  }
  const gauges: [string, string, (stats: OutboxStats) => number | null][] = [
    [
      'capture_outbox_statements',
      'Captured statements waiting in the outbox (committed, not yet drained): the outbox depth.',
      (stats) => stats.depth,
    ],
    [
      'capture_outbox_rows',
      'Changed rows (distinct keys) the waiting captured statements hold.',
      (stats) => stats.rows,
    ],
    [
      'capture_oldest_change_age_seconds',
      'Age of the oldest change waiting in the outbox, by the database clock (0 when empty): the capture lag.',
      (stats) => stats.oldestAgeSeconds,
    ],
  ];
  for (const [name, help, pick] of gauges) {
    new Gauge({
      name: `${P}${name}`,
      help,
      registers,
      async collect() {
        const stats = await outbox();
        this.set((stats && pick(stats)) ?? 0);
      },
    });
  }

  return {
    drained(drainedStatements, rows) {
      statements.inc(drainedStatements);
      drained.inc(rows);
    },
    failed(view, count) {
      failed.inc({ view }, count);
    },
  };
}
