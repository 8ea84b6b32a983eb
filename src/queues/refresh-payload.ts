import { MAX_REASON_LENGTH, REFRESH_PAYLOAD_LIMIT_BYTES } from '../contract.ts';
import { ViewkeeperError } from '../errors.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { show, validateParams } from '../views/params.ts';
import type { Registry } from '../views/registry.ts';

export interface RefreshRequest {
  view: ViewDefinition;
  /** Validated and normalised; undefined = full rebuild. */
  params: Record<string, unknown> | undefined;
  reason: string | undefined;
}

const ALLOWED_KEYS = new Set(['params', 'reason']);

/**
 * Checks a refresh job from any producer before anything runs: size, shape, view name, params.
 * Throws `ViewkeeperError` (E_BAD_PAYLOAD, E_VIEW_UNKNOWN, E_BAD_PARAMS) with one line naming the
 * problem and the value.
 */
export function parseRefreshJob(registry: Registry, name: string, data: unknown): RefreshRequest {
  let size: number;
  try {
    size = Buffer.byteLength(JSON.stringify(data) ?? '');
  } catch {
    throw new ViewkeeperError('E_BAD_PAYLOAD', 'job data cannot be serialised as JSON');
  }
  if (size > REFRESH_PAYLOAD_LIMIT_BYTES) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `job data is ${size} bytes, over the ${REFRESH_PAYLOAD_LIMIT_BYTES}-byte limit for refresh jobs`,
    );
  }
  const view = registry.view(name);
  if (!view) {
    const known = [...registry.views.keys()].sort().join(', ');
    throw new ViewkeeperError(
      'E_VIEW_UNKNOWN',
      `unknown view ${show(name)}: known views are ${known || '(none)'}`,
    );
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `job data must be an object like {"params": {...}, "reason": "..."}, got ${show(data)}`,
    );
  }
  const record = data as Record<string, unknown>;
  const unknownKey = Object.keys(record).find((key) => !ALLOWED_KEYS.has(key));
  if (unknownKey !== undefined) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `unknown field ${show(unknownKey)} in job data: refresh jobs take only "params" and "reason"`,
    );
  }
  const reason = record.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH)) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `reason must be a string of at most ${MAX_REASON_LENGTH} characters, got ${show(reason)}`,
    );
  }
  const params =
    record.params === undefined ? undefined : validateParams(view.name, view.params, record.params);
  return { view, params, reason };
}
