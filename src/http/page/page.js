// The status page: polls /api/overview and draws the views table and four uPlot charts. Plain
// browser JavaScript served as is (no build step); uPlot comes from the daemon too (no CDN).

const POLL_MS = 2000;
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777'];
const charts = {};
const versions = new Map();

function el(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let value = n;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `≈ ${value.toFixed(value < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function age(seconds) {
  if (seconds === null) return 'never';
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function message(text) {
  document.getElementById('message').textContent = text;
}

async function refreshNow(view, button) {
  button.disabled = true;
  try {
    const response = await fetch(`/api/views/${encodeURIComponent(view)}/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const text = await response.text();
    if (response.status === 401) return location.reload();
    if (!response.ok) return message(`refresh of ${view} refused: ${text.trim()}`);
    const { job } = JSON.parse(text);
    message(`enqueued a full refresh of ${view} (job ${job}); the version moves when it has run`);
    poll();
  } catch (error) {
    message(`refresh of ${view} failed: ${error}`);
  } finally {
    button.disabled = false;
  }
}

function renderViews(status, memory) {
  const body = document.querySelector('#views tbody');
  const rows = status.views.map((view) => {
    const tr = el('tr', { 'data-view': view.view });
    tr.append(el('td', {}, view.view), el('td', {}, view.shape));
    tr.append(el('td', { class: 'num rows' }, view.rows === null ? '–' : view.rows.toLocaleString()));
    const version = el('td', { class: 'num version' }, String(view.version));
    const previous = versions.get(view.view);
    if (previous !== undefined && previous !== view.version) version.classList.add('changed');
    versions.set(view.view, view.version);
    tr.append(version);
    tr.append(el('td', {}, view.refreshed_at ? new Date(view.refreshed_at).toLocaleTimeString() : 'never'));
    tr.append(el('td', { class: `num${view.last_error ? ' stale' : ''}` }, age(view.age_s)));
    tr.append(el('td', { class: 'num' }, view.duration_ms === null ? '–' : `${view.duration_ms} ms`));
    const next = view.next_run ? ` · ${new Date(view.next_run).toLocaleTimeString()}` : '';
    tr.append(el('td', {}, view.schedule ? `${view.schedule}${next}` : '–'));
    const estimate = memory[view.view];
    tr.append(
      el(
        'td',
        {
          class: 'num memory',
          title: estimate ? `${estimate.sampled} of ${estimate.keys} keys measured` : '',
        },
        estimate ? bytes(estimate.bytes) : '–',
      ),
    );
    tr.append(el('td', { class: 'error' }, view.last_error || ''));
    const cell = el('td');
    const button = el('button', { type: 'button', 'data-refresh': view.view }, 'refresh now');
    button.addEventListener('click', () => refreshNow(view.view, button));
    cell.append(button);
    tr.append(cell);
    return tr;
  });
  body.replaceChildren(...rows);
}

function renderSide(overview) {
  const hot = document.querySelector('#hot-keys tbody');
  hot.replaceChildren(
    ...(overview.hotKeys.length === 0
      ? [el('tr', {}, '')].map((tr) => {
          tr.append(el('td', { colspan: '2', class: 'summary' }, 'no sampled reads yet'));
          return tr;
        })
      : overview.hotKeys.map((entry) => {
          const tr = el('tr');
          tr.append(el('td', {}, entry.key), el('td', { class: 'num' }, entry.reads.toLocaleString()));
          return tr;
        })),
  );
  const queues = document.querySelector('#queues tbody');
  queues.replaceChildren(
    ...Object.entries(overview.status.queues).map(([name, counts]) => {
      const tr = el('tr');
      tr.append(el('td', {}, name));
      for (const state of ['waiting', 'active', 'delayed', 'failed']) {
        tr.append(el('td', { class: 'num' }, String(counts[state] || 0)));
      }
      return tr;
    }),
  );
}

/** Draws (or redraws) one chart; `series` = [{ label, values }], x = unix seconds. */
function chart(id, x, series, options) {
  const container = document.getElementById(id);
  const key = series.map((s) => s.label).join('|');
  let entry = charts[id];
  if (!entry || entry.key !== key) {
    entry?.plot.destroy();
    const plot = new uPlot(
      {
        width: Math.max(320, container.clientWidth),
        height: 220,
        scales: { y: options?.y || {} },
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: s.color || COLORS[i % COLORS.length],
            width: 2,
            spanGaps: true,
            dash: s.dash,
            points: { show: s.points !== false, size: 5 },
          })),
        ],
        axes: [{}, { size: 56 }],
      },
      [x, ...series.map((s) => s.values)],
      container,
    );
    entry = { key, plot };
    charts[id] = entry;
  } else {
    entry.plot.setData([x, ...series.map((s) => s.values)]);
  }
  const counted = series.filter((s) => !s.reference);
  const points = counted.reduce(
    (n, s) => n + s.values.filter((v) => v !== null && v !== undefined).length,
    0,
  );
  container.dataset.points = String(points);
}

function renderCharts(overview) {
  // Durations: every run of every view on one time axis; a view has a value only at its own runs.
  const runs = overview.runs;
  const names = Object.keys(runs).sort();
  const times = [...new Set(names.flatMap((name) => runs[name].map((run) => run.t)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  chart(
    'chart-durations',
    times.map((t) => t / 1000),
    names.map((name) => {
      const values = times.map(() => null);
      for (const run of runs[name]) values[index.get(run.t)] = run.seconds;
      return { label: name, values };
    }),
  );

  const samples = overview.samples;
  const x = samples.map((s) => s.t / 1000);
  const depth = (queue, state) => samples.map((s) => (s.queues[queue] ? s.queues[queue][state] : null));
  chart('chart-queues', x, [
    { label: 'refresh waiting', values: depth('refresh', 'waiting') },
    { label: 'refresh active', values: depth('refresh', 'active') },
    { label: 'refresh delayed', values: depth('refresh', 'delayed') },
    { label: 'write-behind waiting', values: depth('write-behind', 'waiting') },
  ]);
  chart('chart-write-behind', x, [
    { label: 'ops/s', values: samples.map((s) => s.writeOpsPerSecond) },
    { label: 'lag (s)', values: samples.map((s) => s.writeLagSeconds) },
  ]);
  chart(
    'chart-hit-rate',
    x,
    [
      { label: 'hit rate %', values: samples.map((s) => (s.hitRate === null ? null : s.hitRate * 100)) },
      {
        label: '80 % target',
        values: samples.map(() => 80),
        color: '#9ca3af',
        dash: [6, 4],
        points: false,
        reference: true,
      },
    ],
    { y: { range: [0, 100] } },
  );
}

function renderHeader(overview) {
  const ready = document.getElementById('ready');
  ready.textContent = overview.ready.ready ? 'ready' : `not ready: ${overview.ready.failing.join(', ')}`;
  ready.className = `badge ${overview.ready.ready ? 'ok' : 'bad'}`;
  const client = overview.status.client;
  document.getElementById('hit-rate').textContent =
    client.hit_rate === null
      ? 'client hit rate: no reads yet'
      : `client hit rate ${(client.hit_rate * 100).toFixed(1)} % (${client.hits.toLocaleString()} hits, ${client.misses.toLocaleString()} misses)`;
  document.getElementById('updated').textContent = `updated ${new Date(overview.at).toLocaleTimeString()}`;
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const response = await fetch('/api/overview');
    if (response.status === 401) return location.reload();
    if (!response.ok)
      return message(`the daemon answered ${response.status}: ${(await response.text()).trim()}`);
    const overview = await response.json();
    renderHeader(overview);
    renderViews(overview.status, overview.memory);
    renderSide(overview);
    renderCharts(overview);
    document.body.dataset.loaded = 'true';
  } catch (error) {
    message(`cannot reach the daemon: ${error}`);
  } finally {
    polling = false;
  }
}

poll();
setInterval(poll, POLL_MS);
