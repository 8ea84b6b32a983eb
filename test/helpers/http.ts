import parsePrometheusTextFormat, {
  type ParsedFamily,
  type ParsedSample,
} from 'parse-prometheus-text-format';
import { type DaemonProcess, startDaemon } from './daemon.ts';
import { freePort } from './redis-server.ts';

export interface HttpDaemon {
  daemon: DaemonProcess;
  port: number;
  /** `http://127.0.0.1:{port}` */
  base: string;
}

/**
 * A daemon process with its HTTP surface on a free loopback port (plus `env`); resolves once it has
 * started. The caller stops it (`daemon.stop()`).
 */
export async function startHttpDaemon(env: Record<string, string>): Promise<HttpDaemon> {
  const port = await freePort();
  // 'daemon started' is an info line.
  const daemon = startDaemon({ ...env, VK_HTTP_PORT: String(port), LOG_LEVEL: 'info' });
  await daemon.waitFor('daemon started', 30_000);
  return { daemon, port, base: `http://127.0.0.1:${port}` };
}

export { until } from './wait.ts';

/**
 * /metrics parsed with a Prometheus text-format parser, by family name. The parser merges every
 * series of a labelled histogram into one (it keeps only the last buckets, and drops labels, sums
 * and counts), so histograms are parsed a second time as untyped lines and regrouped by label set.
 */
export function parseMetrics(text: string): Map<string, ParsedFamily> {
  const families = new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]));
  const histograms = [...families.values()].filter((family) => family.type === 'HISTOGRAM');
  if (histograms.length === 0) return families;
  // Untyped, each series' _bucket, _sum and _count runs come out as families of their own, several
  // of one name (one per series): merge them, or only the last series would be kept.
  const untyped = new Map<string, ParsedFamily>();
  for (const family of parsePrometheusTextFormat(
    text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'),
  )) {
    const seen = untyped.get(family.name);
    if (seen) seen.metrics = [...seen.metrics, ...family.metrics];
    else untyped.set(family.name, family);
  }
  for (const family of histograms) {
    const series = new Map<string, ParsedSample>();
    const seriesOf = (labels: Record<string, string>) => {
      const { le: _le, ...rest } = labels;
      const id = JSON.stringify(Object.entries(rest).sort());
      let found = series.get(id);
      if (!found) {
        found = { labels: rest, buckets: {} };
        series.set(id, found);
      }
      return found;
    };
    for (const line of untyped.get(`${family.name}_bucket`)?.metrics ?? []) {
      seriesOf(line.labels ?? {}).buckets![line.labels?.le ?? ''] = line.value ?? '';
    }
    for (const line of untyped.get(`${family.name}_sum`)?.metrics ?? [])
      seriesOf(line.labels ?? {}).sum = line.value;
    for (const line of untyped.get(`${family.name}_count`)?.metrics ?? [])
      seriesOf(line.labels ?? {}).count = line.value;
    family.metrics = [...series.values()];
  }
  return families;
}

/** The sample of `family` whose labels include every one of `labels`. */
export function sample(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): ParsedSample | undefined {
  return families
    .get(name)
    ?.metrics.find((metric) =>
      Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value),
    );
}

/** A counter's or gauge's value (0 when the sample is absent: counters start unexported). */
export function value(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  return Number(sample(families, name, labels)?.value ?? 0);
}
