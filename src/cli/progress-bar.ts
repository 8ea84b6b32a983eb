/** What a running refresh has done so far, as far as the CLI can see it. */
export interface RefreshProgress {
  /** Rows (keys) written by this run so far; null when the view's shape does not show it. */
  rows: number | null;
  /** Rows of the view's last full rebuild; null before the first. */
  lastRows: number | null;
  /** Milliseconds since the request was enqueued. */
  elapsedMs: number;
}

function seconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * `[######........] 12,000/20,000 rows  6s elapsed, ETA 4s` — rows written against the last run's
 * rows, with an ETA from the rate so far. Without a previous run (or a row count) it says what it
 * knows: rows and elapsed time.
 */
export function renderProgress(progress: RefreshProgress, width = 30): string {
  const elapsed = `${seconds(progress.elapsedMs)} elapsed`;
  const { rows, lastRows } = progress;
  if (rows === null) return `refreshing… ${elapsed}`;
  if (!lastRows) return `${rows.toLocaleString('en-US')} rows  ${elapsed}`;
  const share = Math.min(1, rows / lastRows);
  const filled = Math.round(share * width);
  const eta =
    rows > 0 && rows < lastRows ? `, ETA ${seconds((progress.elapsedMs * (lastRows - rows)) / rows)}` : '';
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${rows.toLocaleString('en-US')}/${lastRows.toLocaleString('en-US')} rows  ${elapsed}${eta}`;
}
