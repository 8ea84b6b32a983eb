import { CronExpressionParser } from 'cron-parser';
import nodeCron from 'node-cron';
import { describeError } from '../errors.ts';

/**
 * Validates a cron expression (5 or 6 fields) and IANA time zone. Returns a one-line problem, or
 * undefined when both are fine. node-cron fires the ticks; cron-parser answers "previous slot" and
 * "next slot", which node-cron does not expose — both must accept the expression.
 */
export function cronProblem(cron: string, timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    return `time zone ${JSON.stringify(timezone)} is not an IANA zone name (like "UTC" or "Europe/Paris")`;
  }
  if (!nodeCron.validate(cron)) return `cron expression ${JSON.stringify(cron)} is invalid`;
  try {
    CronExpressionParser.parse(cron, { tz: timezone });
  } catch (error) {
    return `cron expression ${JSON.stringify(cron)} is invalid: ${describeError(error)}`;
  }
  return undefined;
}

/** The latest scheduled slot at or before `now`. */
export function previousSlot(cron: string, timezone: string, now = new Date()): Date {
  // prev() is strictly before currentDate; nudge by 1 ms so a slot exactly at `now` counts.
  return CronExpressionParser.parse(cron, { tz: timezone, currentDate: new Date(now.getTime() + 1) })
    .prev()
    .toDate();
}

/** The first scheduled slot after `now`. */
export function nextSlot(cron: string, timezone: string, now = new Date()): Date {
  return CronExpressionParser.parse(cron, { tz: timezone, currentDate: now }).next().toDate();
}

/** Time between the slot at or before `now` and the one after it. */
export function slotIntervalMs(cron: string, timezone: string, now = new Date()): number {
  return nextSlot(cron, timezone, now).getTime() - previousSlot(cron, timezone, now).getTime();
}
