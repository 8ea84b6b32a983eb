import type { RefreshJobResult } from '../contract.ts';
import type { Done } from '../views/refresh-engine.ts';

/** A finished run as the small value a completed refresh job keeps in Redis. */
export function jobResult(outcome: Done): RefreshJobResult {
  return {
    view: outcome.view,
    kind: outcome.kind,
    rows: outcome.rows,
    version: outcome.version,
    ms: outcome.ms,
    keys: outcome.keys === null ? null : outcome.keys.length,
    superseded: outcome.superseded,
    ...(outcome.failed ? { failedGroups: outcome.failed } : {}),
    ...(outcome.source ? { source: outcome.source } : {}),
  };
}
