// Reprise console: a single page over the same /v1/... API every client
// uses, with the key the user gives (kept in this tab's sessionStorage).
// No outside network: plain DOM and inline SVG charts.
'use strict';

const KEY_STORAGE = 'reprise.key';
const state = { key: sessionStorage.getItem(KEY_STORAGE) || '', scopes: [] };

// ---- errors: every failure is shown on the page (and checked by the tests)
function reportError(message) {
  const li = document.createElement('li');
  li.textContent = String(message);
  document.getElementById('errors').appendChild(li);
}
window.addEventListener('error', (e) => reportError(e.message));
window.addEventListener('unhandledrejection', (e) => reportError(e.reason && e.reason.message ? e.reason.message : e.reason));
const consoleError = console.error.bind(console);
console.error = (...args) => { reportError(args.join(' ')); consoleError(...args); };

// ---- the API
async function api(path, options = {}) {
  const headers = { 'content-type': 'application/json' };
  if (state.key) headers['x-api-key'] = state.key;
  const response = await fetch(path, {
    method: options.method || 'GET',
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { const e = JSON.parse(text).error; message = `${e.code}: ${e.message}`; } catch (_) { /* plain text */ }
    const error = new Error(`${options.method || 'GET'} ${path}: ${response.status} ${message}`);
    error.status = response.status;
    throw error;
  }
  return options.text ? text : JSON.parse(text);
}

// ---- DOM helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'onclick' || k === 'onsubmit') el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  return el;
}
const fmt = (x, digits = 3) => (x === null || x === undefined ? '—'
  : typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(digits)) : typeof x === 'object' ? JSON.stringify(x) : String(x));
const table = (headers, rows) => h('table', {}, h('tr', {}, headers.map((x) => h('th', {}, x))), rows);
const card = (label, value, test) => h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value', 'data-test': test }, value));
const section = (title, ...body) => h('section', {}, h('h2', {}, title), ...body);
const isAdmin = () => state.scopes.includes('admin');

// ---- charts (inline SVG)
const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat(Infinity)) if (c) el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  return el;
}

// Reference and current shares per bin, side by side.
function histogramChart(hist, test) {
  const w = 460, hgt = 170, pad = 24, n = hist.labels.length || 1;
  const max = Math.max(1e-9, ...hist.reference, ...hist.current);
  const bw = (w - 2 * pad) / n;
  const bars = [];
  hist.labels.forEach((label, i) => {
    [['ref', hist.reference[i]], ['cur', hist.current[i]]].forEach(([cls, v], j) => {
      const bh = ((hgt - 2 * pad) * v) / max;
      bars.push(s('rect', { class: cls, x: pad + i * bw + j * bw / 2 + 1, y: hgt - pad - bh, width: Math.max(1, bw / 2 - 2), height: bh },
        s('title', {}, `${label}: ${cls === 'ref' ? 'reference' : 'current'} ${(100 * v).toFixed(1)}%`)));
    });
    if (n <= 12) bars.push(s('text', { x: pad + i * bw, y: hgt - 8 }, label.length > 10 ? label.slice(0, 10) + '…' : label));
  });
  return s('svg', { width: w, height: hgt, 'data-test': test, role: 'img' },
    s('line', { class: 'axis', x1: pad, y1: hgt - pad, x2: w - pad, y2: hgt - pad }), bars);
}

// A distance over time with its threshold.
function lineChart(points, threshold, test) {
  const w = 460, hgt = 140, pad = 24;
  const max = Math.max(threshold || 0, ...points.map((p) => p.y), 1e-9) * 1.1;
  const x = (i) => pad + (points.length <= 1 ? 0 : (i * (w - 2 * pad)) / (points.length - 1));
  const y = (v) => hgt - pad - ((hgt - 2 * pad) * v) / max;
  const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ');
  return s('svg', { width: w, height: hgt, 'data-test': test, role: 'img' },
    s('line', { class: 'axis', x1: pad, y1: hgt - pad, x2: w - pad, y2: hgt - pad }),
    threshold ? s('line', { class: 'threshold', x1: pad, y1: y(threshold), x2: w - pad, y2: y(threshold) }) : null,
    s('path', { class: 'series', d: path || `M${pad},${hgt - pad}` }),
    points.map((p, i) => s('circle', { cx: x(i), cy: y(p.y), r: 3, class: 'cur' }, s('title', {}, `${p.label}: ${fmt(p.y)}`))),
    s('text', { x: pad, y: 12 }, `max ${fmt(max / 1.1)}`));
}

// Signed horizontal bars: each model input's contribution.
function contributionChart(inputs, test) {
  const shown = inputs.filter((i) => i.contribution !== 0).sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution)).slice(0, 15);
  const w = 520, row = 16, hgt = Math.max(40, shown.length * row + 20), mid = 300;
  const max = Math.max(1e-9, ...shown.map((i) => Math.abs(i.contribution)));
  return s('svg', { width: w, height: hgt, 'data-test': test, role: 'img' },
    s('line', { class: 'axis', x1: mid, y1: 0, x2: mid, y2: hgt }),
    shown.map((inp, k) => {
      const len = (200 * Math.abs(inp.contribution)) / max;
      const x0 = inp.contribution >= 0 ? mid : mid - len;
      return [
        s('rect', { class: inp.contribution >= 0 ? 'pos' : 'neg', x: x0, y: 4 + k * row, width: Math.max(1, len), height: row - 4 },
          s('title', {}, `${inp.name} = ${fmt(inp.value)}: ${fmt(inp.contribution, 4)}`)),
        s('text', { x: 4, y: 14 + k * row }, inp.name.length > 44 ? inp.name.slice(0, 44) + '…' : inp.name),
      ];
    }));
}

// Per-arm play rate with its 95% (normal) interval as whiskers.
function armsChart(arms, test) {
  const w = 460, row = 26, hgt = arms.length * row + 20, pad = 110;
  const interval = (a) => {
    const n = a.impressions || 0, p = a.play_rate || 0;
    const half = n ? 1.96 * Math.sqrt((p * (1 - p)) / n) : 0;
    return [Math.max(0, p - half), Math.min(1, p + half)];
  };
  const max = Math.max(1e-9, ...arms.map((a) => interval(a)[1])) * 1.1;
  const x = (v) => pad + ((w - pad - 20) * v) / max;
  return s('svg', { width: w, height: hgt, 'data-test': test, role: 'img' }, arms.map((a, k) => {
    const [lo, hi] = interval(a);
    const mid = 4 + k * row + (row - 10) / 2;
    return [
      s('text', { x: 4, y: 16 + k * row }, `${a.arm} (${a.model_version})`),
      s('rect', { class: k ? 'cur' : 'ref', x: pad, y: 4 + k * row, width: Math.max(1, x(a.play_rate || 0) - pad), height: row - 10 },
        s('title', {}, `play rate ${fmt(a.play_rate, 4)} (${a.plays}/${a.impressions}), 95% interval [${fmt(lo, 4)}, ${fmt(hi, 4)}]`)),
      s('line', { class: 'axis', x1: x(lo), y1: mid, x2: x(hi), y2: mid }),
      s('line', { class: 'axis', x1: x(lo), y1: mid - 5, x2: x(lo), y2: mid + 5 }),
      s('line', { class: 'axis', x1: x(hi), y1: mid - 5, x2: x(hi), y2: mid + 5 }),
    ];
  }));
}

// ---- Prometheus text: totals and latency percentiles from the histogram
function parseMetrics(text) {
  const total = { requests: 0, buckets: new Map(), count: 0 };
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-z_:]+)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const [, name, , labels = '', value] = m;
    const v = Number(value);
    if (name === 'reprise_http_requests_total') total.requests += v;
    if (name === 'reprise_http_request_duration_seconds_bucket') {
      const le = Number((labels.match(/le="([^"]+)"/) || [])[1]);
      total.buckets.set(le, (total.buckets.get(le) || 0) + v);
    }
    if (name === 'reprise_http_request_duration_seconds_count') total.count += v;
  }
  return total;
}
function percentile(metrics, q) {
  const bounds = [...metrics.buckets.keys()].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
  const target = q * metrics.count;
  if (!metrics.count) return null;
  let prevBound = 0, prevCount = 0;
  for (const b of bounds) {
    const c = metrics.buckets.get(b);
    if (c >= target) return prevBound + ((b - prevBound) * (target - prevCount)) / Math.max(1, c - prevCount);
    prevBound = b; prevCount = c;
  }
  return bounds[bounds.length - 1] || null;
}

// ---- pages
async function overview() {
  const [ready, models, experiments, alerts, runs, metricsText] = await Promise.all([
    api('/readyz'), api('/v1/models'), api('/v1/experiments'), api('/v1/alerts'), api('/v1/retrain/runs'),
    api('/metrics', { text: true }).catch(() => ''),
  ]);
  const serving = models.models.filter((m) => m.status === 'serving' && m.kind === 'ranker').map((m) => m.version);
  const active = experiments.experiments.filter((e) => e.active);
  const open = alerts.alerts.filter((a) => a.status === 'open');
  const last = runs.runs[0];
  const metrics = parseMetrics(metricsText);
  const ms = (x) => (x === null ? '—' : `${(1000 * x).toFixed(2)} ms`);
  // The rate over the next second: a second scrape, then the card updates.
  const firstAt = performance.now();
  setTimeout(async () => {
    const again = parseMetrics(await api('/metrics', { text: true }).catch(() => ''));
    const seconds = (performance.now() - firstAt) / 1000;
    const el = document.querySelector('[data-test="request-rate"]');
    // (The console's own scrape is one of them.)
    if (el) el.textContent = `${((again.requests - metrics.requests) / seconds).toFixed(1)} req/s`;
  }, 1000);
  return [
    h('div', { class: 'cards' },
      card('Store version', ready.store_version, 'store-version'),
      card('Feature views', ready.feature_views, 'feature-views'),
      card('Serving ranker', serving.join(', ') || 'none', 'serving-model'),
      card('Experiment arms', active.length ? active.map((e) => `${e.name}: ${e.arms.map((a) => a.name).join(' / ')}`).join('; ') : 'no experiment', 'arms'),
      card('Requests served', metrics.requests, 'requests-total'),
      card('Request rate (1 s sample)', 'measuring…', 'request-rate'),
      card('Latency p50 / p99', `${ms(percentile(metrics, 0.5))} / ${ms(percentile(metrics, 0.99))}`, 'latency'),
      card('Open alerts', open.length, 'open-alerts'),
      card('Last retrain run', last ? `${last.status}${last.decision ? ' · ' + last.decision : ''}` : 'none', 'last-run')),
    section('Open alerts', open.length ? table(['check', 'view', 'feature', 'value', 'threshold', 'raised'],
      open.map((a) => h('tr', {}, h('td', {}, a.check), h('td', {}, a.view), h('td', {}, a.feature), h('td', { class: 'num' }, fmt(a.value)), h('td', { class: 'num' }, fmt(a.threshold)), h('td', {}, a.raised_at))))
      : h('p', { class: 'ok' }, 'No open alert.')),
  ];
}

async function features() {
  const catalog = await api('/v1/catalog');
  const lookupOut = h('div', { 'data-test': 'lookup-result' });
  const viewSelect = h('select', { id: 'lookup-view' }, catalog.views.filter((v) => !v.retired).map((v) => h('option', { value: `${v.name}@${v.version}` }, `${v.name}@${v.version}`)));
  const keysInput = h('input', { id: 'lookup-keys', placeholder: 'join key values, comma separated (e.g. u1)' });
  const lookup = async (e) => {
    e.preventDefault();
    const view = catalog.views.find((v) => `${v.name}@${v.version}` === viewSelect.value);
    const joinKeys = view.entities.map((name) => catalog.entities.find((x) => x.name === name).join_key);
    const values = keysInput.value.split(',').map((x) => x.trim());
    const entity = Object.fromEntries(joinKeys.map((k, i) => [k, values[i] || '']));
    const refs = view.features.map((f) => `${view.name}@${view.version}:${f.name}`);
    const read = await api('/v1/online-features', { method: 'POST', body: { features: refs, entities: [entity] } });
    const row = read.rows[0];
    lookupOut.replaceChildren(table(['feature', 'value', 'status', 'event time'], refs.map((r, i) =>
      h('tr', {}, h('td', {}, r), h('td', { 'data-test': 'lookup-value' }, fmt(row.values[i])), h('td', {}, row.statuses[i]), h('td', {}, row.event_timestamps[i] || '—')))));
  };
  const describeTransform = (t) => (t ? `${t.kind}(${t.input}${Object.entries(t).filter(([k]) => k !== 'kind' && k !== 'input').map(([k, v]) => `, ${k}=${JSON.stringify(v)}`).join('')})` : '');
  const windowsOf = (view, f) => {
    const agg = view.aggregation;
    if (!agg) return '';
    const def = agg.feature.find((x) => f.name.startsWith(x.name + '_'));
    return def ? `${def.op}${def.input ? '(' + def.input + ')' : ''} over ${def.windows.join(', ')}` : '';
  };
  return [
    section('Entities', table(['entity', 'join key', 'description'], catalog.entities.map((e) =>
      h('tr', {}, h('td', {}, e.name), h('td', {}, h('code', {}, e.join_key)), h('td', {}, e.description))))),
    section('Feature views',
      table(['view', 'kind', 'entities', 'TTL', 'retention', 'last write (store version)', 'features'],
        catalog.views.map((v) => h('tr', { 'data-test': 'view-row' },
          h('td', {}, `${v.name}@${v.version}`, v.retired ? h('span', { class: 'muted' }, ' (retired)') : null),
          h('td', {}, v.kind + (v.aggregation ? ` of ${v.aggregation.source}` : '')),
          h('td', {}, v.entities.join(', ')), h('td', {}, v.ttl === '0' ? 'none' : v.ttl), h('td', {}, v.retention === '0' ? 'forever' : v.retention),
          h('td', { class: 'num' }, v.last_write_version || 'never'),
          h('td', {}, table(['feature', 'type', 'transform / aggregation', 'drift threshold'], v.features.map((f) =>
            h('tr', {}, h('td', {}, f.name, f.mandatory ? ' *' : ''), h('td', {}, f.type + (f.dim ? `[${f.dim}]` : '')),
              h('td', {}, describeTransform(f.transform) || windowsOf(v, f) || (f.lookup ? `lookup ${f.lookup.ref}` : '')),
              h('td', { class: 'num' }, fmt(f.drift_threshold)))))))))),
    section('Look up one entity',
      h('form', { class: 'inline', onsubmit: (e) => lookup(e).catch(reportError) }, viewSelect, keysInput, h('button', { type: 'submit' }, 'Read online')),
      lookupOut),
  ];
}

async function quality() {
  const [reports, alerts] = await Promise.all([api('/v1/validation/reports'), api('/v1/alerts')]);
  const history = reports.history || [];
  const ack = async (id) => { await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: 'POST', body: {} }); route(); };
  const run = async () => { await api('/v1/validation/run', { method: 'POST', body: {} }); route(); };
  const comparisons = reports.comparisons.map((c) => {
    const d = c.distances;
    const distances = Object.entries(d).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${fmt(v)}`).join(' · ');
    const points = history.filter((p) => p.check === c.check && p.view === c.view && p.feature === c.feature).map((p) => ({ label: p.at, y: p.linf }));
    return h('section', { 'data-test': 'comparison' },
      h('h3', {}, `${c.check}: ${c.view} · ${c.feature} `, h('span', { class: c.fired ? 'fired' : 'ok' }, c.fired ? 'over threshold' : 'within threshold')),
      h('p', { class: 'muted' }, `${c.previous_rows} reference rows, ${c.current_rows} current rows; threshold ${fmt(c.threshold)} on L∞; ${distances}`),
      h('div', { class: 'legend' }, h('span', { class: 'swatch-ref' }), 'reference', h('span', { class: 'swatch-cur' }), 'current'),
      h('div', { class: 'grid2' }, histogramChart(c.histogram, 'histogram'), lineChart(points, c.threshold, 'distance-history')));
  });
  return [
    section('Alerts',
      isAdmin() ? h('button', { class: 'admin', 'data-test': 'run-validation', onclick: () => run().catch(reportError) }, 'Run the checks now') : null,
      alerts.alerts.length ? table(['check', 'view', 'feature', 'value', 'threshold', 'status', 'raised', ''], alerts.alerts.map((a) =>
        h('tr', { 'data-test': 'alert-row' }, h('td', {}, a.check), h('td', {}, a.view), h('td', {}, a.feature), h('td', { class: 'num' }, fmt(a.value)), h('td', { class: 'num' }, fmt(a.threshold)),
          h('td', { class: a.status === 'open' ? 'fired' : '' }, a.status), h('td', {}, a.raised_at),
          h('td', {}, a.status === 'open' && isAdmin() ? h('button', { class: 'admin', 'data-test': 'ack', onclick: () => ack(a.id).catch(reportError) }, 'Acknowledge') : ''))))
        : h('p', { class: 'ok' }, 'No alert.')),
    section(`Comparisons (${reports.comparisons.length})`, comparisons.length ? comparisons : h('p', { class: 'muted' }, 'No feature had enough rows in both windows yet.')),
  ];
}

async function models() {
  const [list, runs, experiments] = await Promise.all([api('/v1/models'), api('/v1/retrain/runs'), api('/v1/experiments')]);
  const promote = async (v) => { await api(`/v1/models/${encodeURIComponent(v)}/promote`, { method: 'POST', body: {} }); route(); };
  const rollback = async () => { await api('/v1/models/rollback', { method: 'POST', body: {} }); route(); };
  const retrain = async () => { await api('/v1/retrain', { method: 'POST', body: {} }); route(); };
  const reports = await Promise.all(experiments.experiments.map((e) => api(`/v1/experiments/${encodeURIComponent(e.name)}`)));
  const metricNames = [...new Set(list.models.flatMap((m) => Object.keys(m.metrics)))].sort();
  return [
    section('Registry',
      isAdmin() ? h('p', {}, h('button', { class: 'admin', 'data-test': 'rollback', onclick: () => rollback().catch(reportError) }, 'Roll back'), ' ',
        h('button', { class: 'admin', 'data-test': 'retrain', onclick: () => retrain().catch(reportError) }, 'Retrain now')) : null,
      table(['version', 'kind', 'status', 'created', 'store version', ...metricNames, ''], list.models.map((m) =>
        h('tr', { 'data-test': 'model-row' }, h('td', {}, m.version), h('td', {}, m.kind), h('td', { class: m.status === 'serving' ? 'ok' : '' }, m.status), h('td', {}, m.created_at),
          h('td', { class: 'num' }, m.store_version), metricNames.map((n) => h('td', { class: 'num' }, fmt(m.metrics[n]))),
          h('td', {}, isAdmin() && m.kind === 'ranker' && m.status !== 'serving' ? h('button', { class: 'admin', 'data-test': 'promote', onclick: () => promote(m.version).catch(reportError) }, 'Promote') : ''))))),
    section('Retraining runs', runs.runs.length ? table(['run', 'trigger', 'status', 'decision', 'reason', 'candidate', 'steps'], runs.runs.map((r) =>
      h('tr', { 'data-test': 'run-row' }, h('td', {}, h('code', {}, r.run_id.slice(0, 8))), h('td', {}, r.trigger), h('td', {}, r.status), h('td', {}, r.decision || '—'), h('td', {}, r.reason),
        h('td', {}, r.candidate || '—'), h('td', {}, r.steps.map((st) => `${st.name} ${st.seconds.toFixed(1)}s`).join(' → ')))))
      : h('p', { class: 'muted' }, 'No retraining run yet.')),
    section('Experiments', reports.length ? reports.map((r) => h('div', {},
      h('h3', {}, r.experiment.name, r.experiment.active ? '' : ' (ended)'),
      table(['arm', 'model', 'traffic', 'impressions', 'plays', 'play rate', 'difference 95% CI', 'p-value'], r.arms.map((a) => {
        const def = r.experiment.arms.find((x) => x.name === a.arm) || {};
        return h('tr', { 'data-test': 'arm-row' }, h('td', {}, a.arm), h('td', {}, a.model_version), h('td', { class: 'num' }, fmt(def.traffic)), h('td', { class: 'num' }, a.impressions),
          h('td', { class: 'num' }, a.plays), h('td', { class: 'num', 'data-test': 'play-rate' }, (a.play_rate || 0).toFixed(4)),
          h('td', {}, a.diff_ci95 ? `[${fmt(a.diff_ci95[0], 4)}, ${fmt(a.diff_ci95[1], 4)}]` : '—'), h('td', { class: 'num' }, fmt(a.p_value, 4)));
      })),
      armsChart(r.arms, 'arms-chart'))) : h('p', { class: 'muted' }, 'No experiment defined.')),
  ];
}

async function debugUser(params) {
  const user = params.get('user') || '';
  const device = params.get('device') || 'web';
  const country = params.get('country') || 'SE';
  const form = h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = `#/debug?user=${encodeURIComponent(userInput.value)}&device=${encodeURIComponent(deviceInput.value)}&country=${encodeURIComponent(countryInput.value)}`; } });
  const userInput = h('input', { id: 'debug-user', placeholder: 'user id', value: user });
  const deviceInput = h('input', { id: 'debug-device', placeholder: 'device', value: device, size: 8 });
  const countryInput = h('input', { id: 'debug-country', placeholder: 'country', value: country, size: 4 });
  form.append(userInput, deviceInput, countryInput, h('button', { type: 'submit' }, 'Explain'));
  if (!user) return [section('Debug a user', form, h('p', { class: 'muted' }, 'A user id shows their plays and aggregates, then a recommendation explained item by item and the replay of its logged features.'))];

  const catalog = await api('/v1/catalog');
  const plays = await api(`/v1/users/${encodeURIComponent(user)}/plays?limit=15`).catch((e) => (e.status === 404 ? null : Promise.reject(e)));
  // The user's aggregates: every aggregation view keyed by the user alone.
  const userEntity = plays ? catalog.views.find((v) => `${v.name}@${v.version}` === plays.view).entities[0] : null;
  const joinKey = userEntity ? catalog.entities.find((e) => e.name === userEntity).join_key : 'user_id';
  const aggViews = catalog.views.filter((v) => !v.retired && v.kind === 'aggregation' && v.entities.length === 1 && v.entities[0] === userEntity);
  const latest = new Map();
  aggViews.forEach((v) => { if (!latest.has(v.name) || latest.get(v.name).version < v.version) latest.set(v.name, v); });
  const aggRefs = [...latest.values()].flatMap((v) => v.features.filter((f) => f.type !== 'float_vector').map((f) => `${v.name}:${f.name}`));
  const aggregates = aggRefs.length ? await api('/v1/online-features', { method: 'POST', body: { features: aggRefs, entities: [{ [joinKey]: user }] } }) : null;
  const rec = await api('/v1/recommendations', { method: 'POST', body: { user_id: user, context: { device, country }, k: 10, explain: true } });
  const replay = await api(`/v1/served/${encodeURIComponent(rec.request_id)}?replay=true`);

  const explained = rec.items.filter((i) => i.explanation);
  const detail = h('div', { 'data-test': 'explanation' });
  const showItem = (item) => {
    const e = item.explanation;
    const z = e.bias + e.inputs.reduce((acc, i) => acc + i.contribution, 0);
    detail.replaceChildren(
      h('h3', {}, `Why ${item.item_id} scored ${fmt(item.score, 4)}`),
      h('p', { class: 'muted' }, `bias ${fmt(e.bias, 4)} + Σ contributions ${fmt(z - e.bias, 4)} = ${fmt(z, 4)} log-odds → sigmoid = `, h('span', { 'data-test': 'reproduced-score' }, fmt(1 / (1 + Math.exp(-z)), 4))),
      h('div', { class: 'grid2' },
        h('div', {}, h('h3', {}, '1. Raw values read'), table(['ref', 'value', 'status', 'event time', 'store version'], e.raw.map((r) =>
          h('tr', {}, h('td', {}, r.ref), h('td', {}, fmt(r.value)), h('td', {}, r.status), h('td', {}, r.event_timestamp || '—'), h('td', { class: 'num' }, fmt(r.store_version)))))),
        h('div', {}, h('h3', {}, '3. Contributions to the score'), contributionChart(e.inputs, 'contributions'))),
      h('h3', {}, '2. Model inputs'), table(['input', 'value', 'contribution'], e.inputs.map((i) =>
        h('tr', {}, h('td', {}, i.name), h('td', { class: 'num' }, fmt(i.value, 4)), h('td', { class: 'num' }, fmt(i.contribution, 4))))));
  };
  if (explained.length) showItem(explained[0]);
  const differing = replay.items.flatMap((it) => it.inputs.filter((i) => i.differs).map((i) => ({ item: it.item_id, ...i })));
  return [
    section('Debug a user', form),
    h('div', { class: 'grid2' },
      section(`Recent plays (${plays ? plays.view : 'no recommender declared'})`, plays && plays.plays.length ? table(['item', 'time', 'features'], plays.plays.map((p) =>
        h('tr', { 'data-test': 'play-row' }, h('td', {}, p.item_id), h('td', {}, p.event_timestamp), h('td', {}, h('code', {}, JSON.stringify(p.features))))))
        : h('p', { class: 'muted' }, 'No plays.')),
      section('Aggregates now', aggregates ? table(['feature', 'value', 'status'], aggRefs.map((r, i) =>
        h('tr', {}, h('td', {}, r), h('td', { class: 'num' }, fmt(aggregates.rows[0].values[i])), h('td', {}, aggregates.rows[0].statuses[i]))))
        : h('p', { class: 'muted' }, 'No aggregation keyed by the user.'))),
    section(`Recommendation ${rec.request_id} · ${rec.model_version || 'no model'} · arm ${rec.arm}${rec.cold_start ? ' · cold start (not ranked)' : ''}`,
      table(['#', 'item', 'score', 'source', ''], rec.items.map((item, k) => h('tr', { 'data-test': 'rec-row' },
        h('td', { class: 'num' }, k + 1), h('td', {}, item.item_id), h('td', { class: 'num', 'data-test': 'served-score' }, fmt(item.score, 4)), h('td', {}, item.source),
        h('td', {}, item.explanation ? h('button', { onclick: () => showItem(item) }, 'Explain') : '')))),
      detail),
    section('Replay of the logged features',
      h('p', { 'data-test': 'replay-summary', class: replay.replay && replay.replay.differences ? 'fired' : 'ok' },
        replay.replay ? `${replay.replay.differences} differences (store version ${replay.replay.store_version}, ${replay.replay.cutoff} cutoff)` : 'Nothing was logged with features (cold start).'),
      differing.length ? table(['item', 'input', 'logged', 'replayed'], differing.map((d) =>
        h('tr', { class: 'differs' }, h('td', {}, d.item), h('td', {}, d.name), h('td', { class: 'num' }, fmt(d.logged, 4)), h('td', { class: 'num' }, fmt(d.replayed, 4))))) : null),
  ];
}

const PAGES = { overview, features, quality, models, debug: debugUser };

// ---- router
async function route() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const name = PAGES[path] ? path : 'overview';
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === name));
  const main = document.getElementById('page');
  document.body.dataset.ready = '';
  main.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    main.replaceChildren(...(await PAGES[name](new URLSearchParams(query || ''))));
  } catch (e) {
    main.replaceChildren(h('p', { class: 'fired' }, e.status === 401 ? 'This server needs an API key: enter one above.' : String(e.message)));
    if (e.status !== 401) reportError(e.message);
  }
  document.body.dataset.ready = name;
}

async function identify() {
  try {
    const me = await api('/v1/whoami');
    state.scopes = me.scopes;
    document.getElementById('identity').textContent = me.keys_required ? `${me.key} (${me.scopes.join(', ')})` : 'no keys on this server';
  } catch (e) {
    state.scopes = [];
    document.getElementById('identity').textContent = e.status === 401 ? 'no valid key' : '';
  }
}

// A key may arrive in the fragment (`#/page?key=…`, for scripts and the
// browser test; the fragment never reaches a server): it moves to
// sessionStorage and leaves the address bar at once. Returns whether it did.
function takeKeyFromFragment() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const params = new URLSearchParams(query || '');
  if (!params.has('key')) return false;
  state.key = params.get('key');
  sessionStorage.setItem(KEY_STORAGE, state.key);
  params.delete('key');
  const rest = params.toString();
  history.replaceState(null, '', `#/${path}${rest ? '?' + rest : ''}`);
  return true;
}

document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  state.key = document.getElementById('key').value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  await identify();
  route();
});
window.addEventListener('hashchange', () => (takeKeyFromFragment() ? identify().then(route) : route()));
takeKeyFromFragment();
identify().then(route);
