// Summaries and the printed table shared by bench scripts.

export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
  unit: string;
}

export function summarize(samples: number[], unit: string): Summary {
  if (samples.length === 0) throw new Error('no samples to summarize');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, samples, unit };
}

function format(value: number, unit: string): string {
  if (unit === 'ms') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  if (unit === 'MB') return value.toFixed(1);
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(value >= 100 ? 0 : 2);
}

/** A plain-text table: one row per measurement with median, min and max. */
export function printTable(rows: [string, Summary][]): string {
  const header = ['measurement', 'median', 'min', 'max', 'unit', 'n'];
  const body = rows.map(([name, s]) => [
    name,
    format(s.median, s.unit),
    format(s.min, s.unit),
    format(s.max, s.unit),
    s.unit,
    String(s.samples.length),
  ]);
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
