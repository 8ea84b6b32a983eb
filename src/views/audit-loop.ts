import { describeError } from '../errors.ts';
import type { Logger } from '../logging/create-logger.ts';
import type { Auditor } from './audit.ts';
import type { ViewDefinition } from './define-view.ts';

// The daemon's drift-audit schedule (the audit itself: audit.ts). Low and steady by default — a few
// keys per view every few minutes — so it can run at any hour; one view at a time.

export interface AuditLoopOptions {
  auditor: Auditor;
  views: () => Iterable<ViewDefinition>;
  intervalMs: number;
  sample: number;
  logger: Logger;
}

/**
 * Audits every view, one at a time, every `intervalMs` (the first round one interval after start,
 * with up to 10 % jitter so several daemons spread out), repairing what drifted. `stop()` waits for
 * a running audit to finish. Idempotent.
 */
export function startAuditLoop(options: AuditLoopOptions): { stop(): Promise<void> } {
  const logger = options.logger.child({ component: 'audit' });
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  async function round(): Promise<void> {
    for (const view of options.views()) {
      if (stopped) return;
      try {
        await options.auditor.audit(view, { sample: options.sample, repair: true });
      } catch (error) {
        logger.warn({ view: view.name, reason: describeError(error) }, 'audit failed');
      }
    }
  }

  function schedule(): void {
    if (stopped) return;
    const delay = options.intervalMs * (1 + Math.random() * 0.1);
    timer = setTimeout(() => {
      running = round().finally(schedule);
    }, delay);
    timer.unref();
  }
  schedule();

  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        stopped = true;
        clearTimeout(timer);
        await running;
      })();
      return stopping;
    },
  };
}
