import {
  BULK_REFRESH_PAYLOAD_LIMIT_BYTES,
  MAX_BULK_PARAMS,
  MAX_REASON_LENGTH,
  REFRESH_PAYLOAD_LIMIT_BYTES,
} from '../contract.ts';
import { describeError, ViewkeeperError } from '../errors.ts';
import type { ViewDefinition } from '../views/define-view.ts';
import { show, validateParams } from '../views/params.ts';
import type { Registry } from '../views/registry.ts';

/** One element of a bulk request: its validated params, or why they were refused. */
export type BulkElement = { params: Record<string, unknown> } | { error: string };

export interface RefreshRequest {
  view: ViewDefinition;
  /** Validated and normalised; undefined = full rebuild (or a bulk request). */
  params: Record<string, unknown> | undefined;
  /** A bulk request (`params` was an array): each element checked on its own, in order. */
  bulk: BulkElement[] | undefined;
  reason: string | undefined;
}

const ALLOWED_KEYS = new Set(['params', 'reason']);

/**
 * Checks a refresh job from any producer before anything runs: size, shape, view name, params.
 * Throws `ViewkeeperError` (E_BAD_PAYLOAD, E_VIEW_UNKNOWN, E_BAD_PARAMS) with one line naming the
 * problem and the value. In a bulk request (params is an array) a bad element does not throw: it
 * is returned as that element's error, so it fails alone.
 */
export function parseRefreshJob(registry: Registry, name: string, data: unknown): RefreshRequest {
  let size: number;
  try {
    size = Buffer.byteLength(JSON.stringify(data) ?? '');
  } catch {
    throw new ViewkeeperError('E_BAD_PAYLOAD', 'job data cannot be serialised as JSON');
  }
  const bulk = Array.isArray((data as { params?: unknown } | null)?.params);
  const limit = bulk ? BULK_REFRESH_PAYLOAD_LIMIT_BYTES : REFRESH_PAYLOAD_LIMIT_BYTES;
  if (size > limit) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `job data is ${size} bytes, over the ${limit}-byte limit for ${bulk ? 'bulk ' : ''}refresh jobs`,
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
  if (Array.isArray(record.params)) {
    return { view, params: undefined, bulk: parseBulk(view, record.params), reason };
  }
  const params =
    record.params === undefined ? undefined : validateParams(view.name, view.params, record.params);
  return { view, params, bulk: undefined, reason };
}

function parseBulk(view: ViewDefinition, list: unknown[]): BulkElement[] {
  if (list.length === 0 || list.length > MAX_BULK_PARAMS) {
    throw new ViewkeeperError(
      'E_BAD_PAYLOAD',
      `a bulk refresh takes 1 to ${MAX_BULK_PARAMS} params objects, got ${list.length}: send no params for a full rebuild`,
    );
  }
  // A view without partial refresh refuses every element alike: that is the request's fault, not one key's.
  if (view.params === undefined) validateParams(view.name, view.params, list[0]);
  return list.map((raw, i): BulkElement => {
    try {
      return { params: validateParams(view.name, view.params, raw) };
    } catch (error) {
      return { error: `params[${i}]: ${describeError(error)}` };
    }
  });
}
