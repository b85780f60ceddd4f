// SPDX-License-Identifier: MIT
// The dashboard: polls the server's own API and draws models, traffic, live
// charts, the rollout, events and alerts; actions go through the same API
// with the token kept in session storage, each after a confirmation.

import { api, get, enc, getToken, setToken, modelsFromMetrics } from './api.js';
import { lineChart, legend, stackedBars, stepChart, PALETTE, DASHES } from './charts.js';

const FAST_MS = 1500;
const SLOW_MS = 5000;
const KEEP_MS = 15 * 60 * 1000;

const S = {
  models: [],          // [{name, platform, versions: [{version, state, reason, sha256, loaded_at, memory_bytes}]}]
  modelsErr: '',
  routes: {},          // model -> route document, or {error}
  selected: '',
  stats5: null,
  stats60: null,
  statsErr: '',
  rollout: null,
  rolloutErr: '',
  events: [],
  eventsErr: '',
  alerts: null,
  alertsErr: '',
  series: {},          // model -> version -> {rps, p50, p99, err: [[t, v]]}
  rendered: {},        // section -> key of what it shows, to skip redrawing the same
};

// ---- DOM helpers ----

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) e.dataset[k.slice(5).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) if (k !== undefined && k !== null && k !== false) e.append(k);
  return e;
}

const $ = (id) => document.getElementById(id);

// replaceChildren without the null/false placeholders of conditional parts.
function put(e, ...kids) {
  e.replaceChildren(...kids.flat().filter((k) => k !== undefined && k !== null && k !== false));
}

function table(caption, heads, rows, attrs) {
  return h('table', attrs || {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows));
}

// Redraws a section only when what it shows changed (keeps focus and input).
function once(section, key, draw) {
  const k = JSON.stringify(key);
  if (S.rendered[section] === k) return;
  S.rendered[section] = k;
  draw();
}

function stateBadge(state, extra) {
  const s = String(state || 'UNKNOWN');
  return h('span', { class: 'badge st-' + s.toLowerCase().replace(/[^a-z_]/g, '') }, stateIcon(s), ' ', s, extra || '');
}

function stateIcon(s) {
  switch (s.toUpperCase()) {
    case 'READY': case 'OK': case 'PROMOTED': return '●';
    case 'LOADING': case 'RUNNING': case 'DRAINING': return '◐';
    case 'FIRING': case 'ROLLED_BACK': case 'UNAVAILABLE': return '▲';
    default: return '○';
  }
}

function mib(bytes) {
  if (bytes === undefined || bytes === null) return '–';
  if (bytes < 1024) return bytes + ' B';
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
  return (bytes / 1024 / 1024).toFixed(1) + ' MiB';
}

function num(v, digits = 3) {
  if (v === undefined || v === null || Number.isNaN(v)) return '–';
  if (typeof v !== 'number') return String(v);
  return Number.isInteger(v) ? String(v) : v.toPrecision(digits);
}

function pct(v) {
  return v === undefined || v === null ? '–' : (100 * v).toFixed(1) + '%';
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return s + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

function versionColor(model, version) {
  const m = S.models.find((x) => x.name === model);
  const i = m ? m.versions.findIndex((v) => String(v.version) === String(version)) : -1;
  const k = i < 0 ? Number(version) || 0 : i;
  return { color: PALETTE[k % PALETTE.length], dash: DASHES[k % DASHES.length] };
}

function flash(text, ok) {
  const f = $('flash');
  f.hidden = false;
  f.className = 'flash ' + (ok ? 'ok' : 'bad');
  put(f, h('strong', {}, ok ? 'Done: ' : 'Refused: '), text,
    h('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss message', onclick: () => { f.hidden = true; } }, '×'));
}

// ---- The confirmation dialog ----

function confirmAction(text, detail) {
  const d = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-detail').textContent = detail || '';
  $('confirm-detail').hidden = !detail;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

// Asks, then runs fn (which calls the API); shows the server's answer.
async function act(text, detail, fn) {
  if (!(await confirmAction(text, detail))) return;
  $('flash').hidden = true;
  put($('flash'));
  try {
    await fn();
    flash(text, true);
  } catch (e) {
    flash(e.message, false);
  }
  S.rendered = {};
  await Promise.allSettled([slow(true), fast(true)]);
}

// ---- Reading ----

async function loadModels() {
  let index = null;
  let names;
  try {
    index = await get('/v2/repository/index');
    names = [...new Set(index.map((e) => e.name))].sort();
    S.modelsErr = '';
  } catch (e) {
    // With --tokens the index needs a token; /metrics names the models without one.
    S.modelsErr = e.status === 401 || e.status === 403 ? e.message : '';
    if (!S.modelsErr) throw e;
    names = await modelsFromMetrics();
  }
  const metas = await Promise.allSettled(names.map((n) => get('/v2/models/' + enc(n))));
  S.models = names.map((name, i) => {
    const meta = metas[i].status === 'fulfilled' ? metas[i].value : null;
    const vs = new Map();
    for (const e of (index || []).filter((x) => x.name === name)) {
      vs.set(String(e.version), { version: String(e.version), state: e.state, reason: e.reason });
    }
    for (const v of (meta && meta.version_states) || []) {
      vs.set(String(v.version), { ...(vs.get(String(v.version)) || {}), ...v, version: String(v.version) });
    }
    const versions = [...vs.values()].sort((a, b) => Number(a.version) - Number(b.version));
    return { name, platform: meta ? meta.platform : '', versions };
  });
}

async function loadRoutes() {
  const res = await Promise.allSettled(S.models.map((m) => get('/v2/models/' + enc(m.name) + '/route')));
  S.models.forEach((m, i) => {
    S.routes[m.name] = res[i].status === 'fulfilled' ? res[i].value : { error: res[i].reason.message };
  });
}

async function loadEvents() {
  try {
    const ev = await get('/v2/events?limit=300');
    S.events = ev.slice().reverse();
    S.eventsErr = '';
  } catch (e) {
    S.eventsErr = e.message;
  }
}

async function loadAlerts() {
  if (!S.selected) return;
  try {
    S.alerts = await get('/v2/models/' + enc(S.selected) + '/alerts');
    S.alertsErr = '';
  } catch (e) {
    S.alerts = null;
    S.alertsErr = e.message;
  }
}

async function loadFast() {
  const m = S.selected;
  if (!m) return;
  const base = '/v2/models/' + enc(m);
  const [s5, s60, route, ro] = await Promise.allSettled([
    get(base + '/quiver-stats?window=5'), get(base + '/quiver-stats'), get(base + '/route'), get(base + '/rollout')]);
  if (m !== S.selected) return;
  S.statsErr = s60.status === 'rejected' ? s60.reason.message : '';
  S.stats5 = s5.status === 'fulfilled' ? s5.value : null;
  S.stats60 = s60.status === 'fulfilled' ? s60.value : null;
  S.routes[m] = route.status === 'fulfilled' ? route.value : { error: route.reason.message };
  if (ro.status === 'fulfilled') {
    S.rollout = ro.value;
    S.rolloutErr = '';
  } else {
    S.rollout = null;
    S.rolloutErr = ro.reason.status === 404 ? '' : ro.reason.message;
  }
  if (S.stats5) record(m, S.stats5);
}

function record(model, stats) {
  const now = Date.now();
  const per = (S.series[model] ||= {});
  for (const v of stats.versions || []) {
    const w = v.last || {};
    const s = (per[v.version] ||= { rps: [], p50: [], p99: [], err: [] });
    const rps = w.seconds > 0 ? w.requests / w.seconds : 0;
    s.rps.push([now, rps]);
    if (w.requests > 0) {
      s.p50.push([now, w.p50_ms]);
      s.p99.push([now, w.p99_ms]);
      s.err.push([now, w.error_rate]);
    }
    for (const k of ['rps', 'p50', 'p99', 'err']) {
      while (s[k].length && s[k][0][0] < now - KEEP_MS) s[k].shift();
    }
  }
}

// The first view of a model starts from the store's history (one row per
// sampling interval); the rows go before the live points already taken.
async function backfill(model) {
  if (!model || S.series[model]) return;
  const per = (S.series[model] = {});
  let hist;
  try {
    hist = await get('/v2/models/' + enc(model) + '/history?since=' + (Date.now() - KEEP_MS) + '&limit=2000');
  } catch {
    return; /* no history (no token, or no store): the charts start now */
  }
  const iv = hist.interval_s || 10;
  const old = {};
  for (const r of hist.rows || []) {
    const o = (old[r.version] ||= { rps: [], p50: [], p99: [], err: [] });
    o.rps.push([r.ts_ms, r.requests / iv]);
    if (r.requests > 0) {
      o.p50.push([r.ts_ms, r.p50_ms]);
      o.p99.push([r.ts_ms, r.p99_ms]);
      o.err.push([r.ts_ms, r.error_rate]);
    }
  }
  for (const [v, o] of Object.entries(old)) {
    const s = (per[v] ||= { rps: [], p50: [], p99: [], err: [] });
    for (const k of Object.keys(o)) {
      const first = s[k].length ? s[k][0][0] : Infinity;
      s[k] = o[k].filter(([t]) => t < first).concat(s[k]);
    }
  }
}

// ---- Drawing ----

function labelsOf(model) {
  const r = S.routes[model];
  return r && r.labels ? r.labels : {};
}

function renderModels() {
  const body = $('models-body');
  once('models', [S.models, S.modelsErr, Object.fromEntries(S.models.map((m) => [m.name, labelsOf(m.name)]))], () => {
    const rows = [];
    for (const m of S.models) {
      const labels = labelsOf(m.name);
      m.versions.forEach((v, i) => {
        const vl = Object.entries(labels).filter(([, n]) => String(n) === v.version).map(([l]) => l);
        const ready = v.state === 'READY';
        rows.push(h('tr', { 'data-model': m.name, 'data-version': v.version, 'data-state': v.state || '' },
          i === 0 ? h('th', { scope: 'rowgroup', rowspan: m.versions.length }, m.name) : null,
          h('td', {}, 'v' + v.version),
          h('td', {}, stateBadge(v.state), v.reason ? h('div', { class: 'reason' }, v.reason) : null),
          h('td', { class: 'mono', title: v.sha256 || '' }, v.sha256 ? v.sha256.slice(0, 12) : '–'),
          h('td', {}, v.loaded_at ? new Date(v.loaded_at).toLocaleString() : '–'),
          h('td', { class: 'num' }, mib(v.memory_bytes)),
          h('td', {}, m.platform || '–'),
          h('td', {}, vl.length ? vl.map((l) => h('span', { class: 'tag' }, l)) : '–'),
          h('td', {}, h('button', {
            type: 'button', class: 'small',
            'aria-label': `${ready ? 'Unload' : 'Load'} ${m.name} version ${v.version}`,
            onclick: () => act(`${ready ? 'Unload' : 'Load'} ${m.name} version ${v.version}`, '',
              () => api('POST', `/v2/repository/models/${enc(m.name)}/versions/${enc(v.version)}/${ready ? 'unload' : 'load'}`)),
          }, ready ? 'Unload' : 'Load'))));
      });
    }
    put(body,
      S.modelsErr ? h('p', { class: 'warn' }, 'The repository index needs a token (', S.modelsErr, '); models are listed from /metrics.') : null,
      rows.length
        ? table(null, ['Model', 'Version', 'State', 'SHA-256', 'Loaded', 'Memory', 'Backend', 'Labels', 'Action'], rows, { id: 'models-table' })
        : h('p', {}, 'No models.'));
    body.dataset.ready = '1';
  });
  const sel = $('model-select');
  once('model-select', S.models.map((m) => m.name), () => {
    put(sel, ...S.models.map((m) => h('option', { value: m.name, selected: m.name === S.selected }, m.name)));
    const evm = $('ev-model');
    const cur = evm.value;
    put(evm, h('option', { value: '' }, 'all'), ...S.models.map((m) => h('option', { value: m.name, selected: m.name === cur }, m.name)));
  });
}

// Resolves a weights target (a label or a version) to a version string.
function resolve(route, target) {
  const t = String(target);
  if (route.labels && route.labels[t] !== undefined) return String(route.labels[t]);
  return t;
}

function renderTraffic() {
  const m = S.selected;
  const route = S.routes[m] || {};
  once('route', [m, route], () => {
    const parts = [];
    if (route.error) {
      parts.push(h('p', { class: 'warn' }, 'Route: ', route.error));
    } else {
      const dl = h('dl', { class: 'kv', id: 'route-doc' },
        h('dt', {}, 'Policy'), h('dd', { 'data-field': 'policy' }, route.policy || 'default'),
        h('dt', {}, 'Labels'), h('dd', {}, Object.keys(route.labels || {}).length
          ? Object.entries(route.labels).map(([l, v]) => h('span', { class: 'tag' }, `${l} → v${v}`)) : 'none'),
        h('dt', {}, 'Sticky key'), h('dd', {}, route.sticky
          ? (route.sticky.header ? 'header ' + route.sticky.header : 'parameter ' + route.sticky.parameter) : 'none'),
        h('dt', {}, 'Shadows'), h('dd', {}, (route.shadow || []).length
          ? route.shadow.map((s) => h('span', { class: 'tag' }, `${s.target} (v${resolve(route, s.target)}) ${s.percent ?? 100}%`)) : 'none'),
        route.target !== undefined ? [h('dt', {}, 'Pinned to'), h('dd', {}, String(route.target))] : null,
        route.compare ? [h('dt', {}, 'Compare'), h('dd', {}, `${route.compare.targets.join(', ')} (${route.compare.select})`)] : null);
      const wrows = Object.entries(route.weights || {}).map(([t, w]) =>
        h('tr', {}, h('td', {}, t), h('td', {}, 'v' + resolve(route, t)), h('td', { class: 'num' }, num(w))));
      parts.push(h('h3', {}, 'Route in force'), dl,
        wrows.length ? table('Weights as written (points)', ['Target', 'Version', 'Points'], wrows) : null);
    }
    put($('route-body'), ...parts);
  });

  const st = S.stats60;
  const vs = (st && st.versions) || [];
  const total = vs.reduce((a, v) => a + ((v.last && v.last.requests) || 0), 0);
  const rows = vs.map((v) => {
    const req = (v.last && v.last.requests) || 0;
    const share = total > 0 ? req / total : 0;
    return h('tr', { 'data-version': v.version },
      h('th', { scope: 'row' }, 'v' + v.version),
      h('td', {}, stateBadge(v.state)),
      h('td', { class: 'num', 'data-kind': 'route', 'data-value': v.route_weight }, pct(v.route_weight)),
      h('td', { class: 'num', 'data-kind': 'measured', 'data-value': share }, total > 0 ? pct(share) : '–'),
      h('td', { class: 'num' }, String(req)),
      h('td', { class: 'num', 'data-kind': 'errors', 'data-value': (v.last && v.last.error_rate) || 0 }, pct(v.last ? v.last.error_rate : 0)));
  });
  const bars = stackedBars([
    { label: 'route', parts: vs.map((v) => ({ name: 'v' + v.version, value: v.route_weight || 0, color: versionColor(m, v.version).color })) },
    { label: 'measured', parts: vs.map((v) => ({ name: 'v' + v.version, value: (v.last && v.last.requests) || 0, color: versionColor(m, v.version).color })) },
  ], `traffic split of ${m}: route weights against measured shares`);
  put($('split-body'),
    h('h3', {}, `Split: route against measured (last ${st ? Math.round(st.window_s) : 60} s)`),
    S.statsErr ? h('p', { class: 'warn' }, S.statsErr) : null,
    bars,
    table(null, ['Version', 'State', 'Route weight', 'Measured', 'Requests', 'Error rate'], rows, { id: 'split-table' }));
  renderRouteActions();
}

function readyVersions(model) {
  const mm = S.models.find((x) => x.name === model);
  return mm ? mm.versions.filter((v) => v.state === 'READY').map((v) => v.version) : [];
}

function renderRouteActions() {
  const m = S.selected;
  const route = S.routes[m] || {};
  const ready = readyVersions(m);
  const labels = route.labels || {};
  // The fields start from the weights in force: the route's own (through its
  // labels) when it has weights, else the share the server reports per version.
  const weights = {};
  if (route.weights && !route.error) {
    for (const [t, w] of Object.entries(route.weights)) weights[resolve(route, t)] = w;
  } else {
    for (const v of (S.stats60 && S.stats60.model === m && S.stats60.versions) || []) {
      weights[v.version] = Math.round(100 * (v.route_weight || 0));
    }
  }
  once('route-actions', [m, ready, labels, weights], () => {
    const wform = h('form', { class: 'box', id: 'weights-form', 'data-model': m },
      h('h3', {}, 'Set weights'),
      ready.map((v) => h('div', { class: 'field' },
        h('label', { for: 'w-' + v }, `Weight of v${v} (points)`),
        h('input', { id: 'w-' + v, name: v, type: 'number', min: 0, max: 100, step: 'any', value: weights[v] ?? 0 }))),
      h('button', { type: 'submit' }, 'Set weights'));
    wform.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const w = {};
      for (const inp of wform.querySelectorAll('input')) {
        const n = Number(inp.value);
        if (inp.value !== '' && n > 0) w[inp.name] = n;
      }
      const cur = S.routes[m] && !S.routes[m].error ? S.routes[m] : {};
      const doc = { policy: cur.policy === 'sticky' ? 'sticky' : 'weighted', weights: w };
      if (cur.labels) doc.labels = cur.labels;
      if (cur.sticky) doc.sticky = cur.sticky;
      if (cur.shadow) doc.shadow = cur.shadow;
      act(`Set the weights of ${m}`, JSON.stringify(doc, null, 1), () => api('PUT', `/v2/models/${enc(m)}/route`, doc));
    });

    const lform = h('form', { class: 'box', id: 'label-form' },
      h('h3', {}, 'Labels'),
      h('div', { class: 'field' }, h('label', { for: 'label-name' }, 'Label name'),
        h('input', { id: 'label-name', type: 'text', value: 'canary', required: true, pattern: '[A-Za-z_][A-Za-z0-9_.\\-]*' })),
      h('div', { class: 'field' }, h('label', { for: 'label-version' }, 'Version'),
        h('select', { id: 'label-version' }, ready.map((v) => h('option', { value: v }, 'v' + v)))),
      h('button', { type: 'submit' }, 'Set label'),
      Object.keys(labels).length ? h('ul', { class: 'plain' }, Object.entries(labels).map(([l, v]) => h('li', {},
        h('span', { class: 'tag' }, `${l} → v${v}`), ' ',
        h('button', { type: 'button', class: 'small', onclick: () => act(`Remove the label ${l} of ${m}`, '',
          () => api('DELETE', `/v2/models/${enc(m)}/labels/${enc(l)}`)) }, `Remove ${l}`)))) : null);
    lform.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const l = $('label-name').value.trim();
      const v = Number($('label-version').value);
      act(`Set the label ${l} of ${m} to v${v}`, '', () => api('PUT', `/v2/models/${enc(m)}/labels/${enc(l)}`, { version: v }));
    });

    const promotable = Object.keys(labels).filter((l) => l !== 'stable');
    const pform = h('form', { class: 'box', id: 'promote-form' },
      h('h3', {}, 'Promote or roll back'),
      h('div', { class: 'field' }, h('label', { for: 'promote-label' }, 'Label to promote to stable'),
        h('select', { id: 'promote-label' }, promotable.map((l) => h('option', { value: l, selected: l === 'canary' }, `${l} (v${labels[l]})`)))),
      h('button', { type: 'submit', disabled: promotable.length === 0 }, 'Promote'),
      ' ',
      h('button', { type: 'button', id: 'route-rollback', onclick: () => act(`Roll back the route of ${m} to the previous one`, '',
        () => api('POST', `/v2/models/${enc(m)}/route/rollback`)) }, 'Roll back route'));
    pform.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const l = $('promote-label').value;
      act(`Promote ${l} (v${labels[l]}) of ${m} to stable with all the traffic`, '', () => promote(m, l));
    });
    put($('route-actions'), wform, lform, pform);
  });
}

// The CLI's promote: stable := LABEL's version, LABEL removed, shadows to it
// dropped, all the weight to stable.
async function promote(model, label) {
  const path = `/v2/models/${enc(model)}/route`;
  const doc = await get(path);
  if (!doc.labels || doc.labels[label] === undefined) throw new Error(`model ${model} has no label "${label}"`);
  doc.labels.stable = doc.labels[label];
  delete doc.labels[label];
  if (doc.shadow) {
    doc.shadow = doc.shadow.filter((s) => String(s.target) !== label);
    if (doc.shadow.length === 0) delete doc.shadow;
  }
  doc.weights = { stable: 100 };
  doc.policy = 'weighted';
  delete doc.target;
  delete doc.compare;
  return api('PUT', path, doc);
}

function renderLive() {
  const m = S.selected;
  const per = S.series[m] || {};
  const now = Date.now();
  const versions = Object.keys(per).sort((a, b) => Number(a) - Number(b));
  const last = (arr) => (arr.length ? arr[arr.length - 1][1] : undefined);
  const mk = (k, vfmt, dashBy) => versions.flatMap((v) => {
    const c = versionColor(m, v);
    return [{ name: `v${v}`, points: per[v][k], color: c.color, dash: dashBy ? dashBy : c.dash, value: vfmt(last(per[v][k])) }];
  });
  const figs = [
    ['chart-rps', 'Requests per second', 'req/s', mk('rps', (x) => (x === undefined ? '–' : x.toFixed(1)))],
    ['chart-lat', 'Latency p50 (solid) and p99 (dashed)', 'ms', versions.flatMap((v) => {
      const c = versionColor(m, v);
      return [
        { name: `v${v} p50`, points: per[v].p50, color: c.color, dash: '', value: num(last(per[v].p50)) + ' ms' },
        { name: `v${v} p99`, points: per[v].p99, color: c.color, dash: '6 3', value: num(last(per[v].p99)) + ' ms' }];
    })],
    ['chart-err', 'Error rate', 'fraction of requests', mk('err', (x) => pct(x))],
  ];
  for (const [id, title, unit, series] of figs) {
    const fig = $(id);
    const n = series.reduce((a, s) => a + s.points.length, 0);
    fig.dataset.samples = String(n);
    fig.dataset.last = JSON.stringify(Object.fromEntries(series.map((s) => [s.name, s.points.length ? s.points[s.points.length - 1] : null])));
    put(fig,
      lineChart({ title, unit, series, span_ms: Number($('range').value) * 60000, now, yMax: id === 'chart-err' ? 1 : 0 }),
      h('figcaption', {}, h('strong', {}, title), legend(series)));
  }

  const vs = (S.stats60 && S.stats60.versions) || [];
  const rows = vs.map((v) => {
    const s = v.score;
    return h('tr', { 'data-version': v.version }, h('th', { scope: 'row' }, 'v' + v.version),
      h('td', { class: 'num' }, s ? num(s.p) : '–'),
      h('td', { class: 'num' }, s ? num(s.latency_term) : '–'),
      h('td', { class: 'num' }, s ? num(s.resource_term) : '–'),
      h('td', { class: 'num' }, s ? num(s.error_term) : '–'),
      h('td', { class: 'num' }, s ? String(s.requests) : '–'),
      h('td', { class: 'num' }, v.online_accuracy && v.online_accuracy.accuracy !== null ? num(v.online_accuracy.accuracy) : '–'));
  });
  put($('score-body'), table('Score P and its terms (controller\'s last tick)',
    ['Version', 'P', 'Latency term', 'Resource term', 'Error term', 'Requests', 'Online accuracy'], rows, { id: 'score-table' }));
}

function guardRow(name, observed, limit, breach, note) {
  const verdict = observed === null || observed === undefined ? 'no data' : breach ? 'breached' : 'passes';
  return h('tr', { 'data-guard': name },
    h('th', { scope: 'row' }, name), h('td', { class: 'num' }, num(observed)), h('td', { class: 'num' }, note + num(limit)),
    h('td', {}, h('span', { class: 'badge ' + (breach ? 'st-firing' : verdict === 'passes' ? 'st-ok' : 'st-unknown') },
      breach ? '▲ ' : verdict === 'passes' ? '● ' : '○ ', verdict)));
}

function renderRollout() {
  const m = S.selected;
  const r = S.rollout;
  const body = $('rollout-body');
  if (S.rolloutErr) {
    put(body, h('p', { class: 'warn' }, S.rolloutErr));
  } else if (!r) {
    put(body, h('p', { id: 'rollout-none' }, `No rollout for ${m}.`));
  } else {
    const steps = (r.plan && r.plan.steps) || [];
    const g = (r.plan && r.plan.guards) || {};
    const last = r.last || {};
    const f = last.figures || last;
    const now = Date.now();
    const inStep = r.state === 'running' && r.step_started_ms ? ago(now - r.step_started_ms) : '–';
    put(body,
      h('dl', { class: 'kv', id: 'rollout-status', 'data-state': r.state },
        h('dt', {}, 'State'), h('dd', {}, stateBadge(String(r.state).toUpperCase())),
        h('dt', {}, 'Canary / stable'), h('dd', {}, `v${r.canary} / v${r.stable}`),
        h('dt', {}, 'Step'), h('dd', { 'data-field': 'step' }, `${(r.step ?? 0) + 1} of ${r.n_steps ?? steps.length}`),
        h('dt', {}, 'Weights now'), h('dd', {}, Object.entries(r.weights || {}).map(([k, v]) => `${k} ${num(v)}%`).join(', ')),
        h('dt', {}, 'Time in step'), h('dd', {}, inStep),
        h('dt', {}, 'Started'), h('dd', {}, r.started || '–'),
        r.ended ? [h('dt', {}, 'Ended'), h('dd', {}, r.ended)] : null,
        h('dt', {}, 'Decision'), h('dd', {}, [last.decision, last.detail].filter(Boolean).join(': ') || '–'),
        r.reason ? [h('dt', {}, 'Reason'), h('dd', { class: 'reason', id: 'rollout-reason' }, r.reason)] : null),
      steps.length ? stepChart(steps, r.step ?? 0, r.state) : null,
      table('Guards: last figures against thresholds', ['Guard', 'Observed', 'Threshold', 'Verdict'], [
        guardRow('error rate delta', f.error_rate_delta, g.max_error_rate_delta, f.error_breach, '≤ '),
        guardRow('p99 ratio', f.p99_ratio, g.max_p99_ratio, f.p99_breach, '≤ '),
        g.min_shadow_agreement !== undefined ? guardRow('shadow agreement', f.shadow_agreement, g.min_shadow_agreement, f.agreement_breach, '≥ ') : null,
      ].filter(Boolean), { id: 'guards-table' }),
      h('p', { class: 'note' }, `Canary requests ${num(f.canary_requests)}, errors ${num(f.canary_errors)} (${pct(f.canary_error_rate)}); `
        + `stable (${f.stable_source || '–'}) requests ${num(f.stable_requests)}, errors ${num(f.stable_errors)} (${pct(f.stable_error_rate)}); `
        + `min requests per step ${num(r.plan && r.plan.min_requests)}.`));
  }
  const ready = readyVersions(m);
  const running = r && r.state === 'running';
  once('rollout-actions', [m, ready, running], () => {
    const form = h('form', { class: 'box', id: 'rollout-form' },
      h('h3', {}, 'Start a rollout'),
      h('div', { class: 'field' }, h('label', { for: 'ro-canary' }, 'Canary version'),
        h('select', { id: 'ro-canary' }, ready.map((v, i) => h('option', { value: v, selected: i === ready.length - 1 }, 'v' + v)))),
      h('div', { class: 'field' }, h('label', { for: 'ro-steps' }, 'Steps (canary %, comma separated)'),
        h('input', { id: 'ro-steps', type: 'text', value: '5, 25, 50, 100' })),
      h('div', { class: 'field' }, h('label', { for: 'ro-seconds' }, 'Seconds per step'),
        h('input', { id: 'ro-seconds', type: 'number', min: 1, value: 60 })),
      h('div', { class: 'field' }, h('label', { for: 'ro-min' }, 'Minimum canary requests per step'),
        h('input', { id: 'ro-min', type: 'number', min: 1, value: 500 })),
      h('div', { class: 'field' }, h('label', { for: 'ro-err' }, 'Max error rate delta'),
        h('input', { id: 'ro-err', type: 'number', step: 'any', min: 0, value: 0.01 })),
      h('div', { class: 'field' }, h('label', { for: 'ro-p99' }, 'Max p99 ratio'),
        h('input', { id: 'ro-p99', type: 'number', step: 'any', min: 0, value: 1.5 })),
      h('button', { type: 'submit' }, 'Start rollout'), ' ',
      h('button', { type: 'button', id: 'rollout-abort', disabled: !running,
        onclick: () => act(`Abort the rollout of ${m} (traffic goes back to stable)`, '',
          () => api('DELETE', `/v2/models/${enc(m)}/rollout`)) }, 'Abort rollout'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const plan = {
        canary: Number($('ro-canary').value),
        steps: $('ro-steps').value.split(',').map((x) => Number(x.trim())).filter((x) => x !== 0 || false),
        step_seconds: Number($('ro-seconds').value),
        min_requests: Number($('ro-min').value),
        guards: { max_error_rate_delta: Number($('ro-err').value), max_p99_ratio: Number($('ro-p99').value) },
      };
      act(`Start a rollout of ${m} v${plan.canary}`, JSON.stringify(plan, null, 1),
        () => api('POST', `/v2/models/${enc(m)}/rollout`, plan));
    });
    put($('rollout-actions'), form);
  });
}

function short(v) {
  if (v === null || v === undefined) return '∅';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 140 ? s.slice(0, 137) + '…' : s;
}

function renderEvents() {
  const fm = $('ev-model').value;
  const fk = $('ev-kind').value;
  const kinds = [...new Set(S.events.map((e) => e.what))].sort();
  once('ev-kinds', kinds, () => {
    put($('ev-kind'), h('option', { value: '' }, 'all'), ...kinds.map((k) => h('option', { value: k, selected: k === fk }, k)));
  });
  const evs = S.events.filter((e) => (!fm || e.model === fm) && (!fk || e.what === fk)).slice(0, 200);
  once('events', [S.eventsErr, fm, fk, evs.length ? evs[0].id : 0, evs.length], () => {
    put($('events-body'),
      S.eventsErr ? h('p', { class: 'warn' }, S.eventsErr) : null,
      evs.length ? table(`${evs.length} events, newest first`, ['Time', 'Model', 'Who', 'What', 'Old → new'],
        evs.map((e) => h('tr', { 'data-what': e.what, 'data-model': e.model },
          h('td', { class: 'mono' }, e.ts ? e.ts.replace('T', ' ').replace('Z', '') : ''),
          h('td', {}, e.model || ''), h('td', {}, e.who || ''), h('td', {}, e.what || ''),
          h('td', { class: 'change', title: `${e.old ?? ''} → ${e.new ?? ''}` },
            h('span', { class: 'old' }, short(e.old)), ' → ', h('span', { class: 'new' }, short(e.new))))), { id: 'events-table' })
        : h('p', {}, S.eventsErr ? '' : 'No events.'));
  });
}

function renderAlerts() {
  const a = S.alerts;
  once('alerts', [S.selected, a, S.alertsErr], () => {
    const body = $('alerts-body');
    if (S.alertsErr) {
      put(body, h('p', { class: 'warn' }, S.alertsErr));
      return;
    }
    if (!a) {
      put(body);
      return;
    }
    put(body,
      (a.rules || []).length ? table(`Alert rules of ${a.model}`, ['Rule', 'Condition', 'Window', 'State', 'Per version'],
        a.rules.map((r) => h('tr', {},
          h('th', { scope: 'row' }, r.name), h('td', {}, `${r.metric} ${r.op} ${r.threshold}`), h('td', {}, `${r.window_s} s`),
          h('td', {}, stateBadge(String(r.state).toUpperCase())),
          h('td', {}, (r.versions || []).map((v) => h('div', {}, `v${v.version}: `, stateBadge(String(v.state).toUpperCase()),
            ` ${num(v.value)}`, v.since ? ` since ${v.since}` : '')))))) : h('p', {}, `No alert rules for ${a.model}.`),
      (a.errors || []).length ? h('ul', { class: 'warn' }, a.errors.map((e) => h('li', {}, e))) : null);
  });
}

// ---- Loops ----

let fastBusy = false;
let slowBusy = false;

async function fast(force) {
  if (fastBusy && !force) return;
  fastBusy = true;
  try {
    await loadFast();
    renderTraffic();
    renderLive();
    renderRollout();
  } finally {
    fastBusy = false;
  }
}

async function slow(force) {
  if (slowBusy && !force) return;
  slowBusy = true;
  try {
    await loadModels();
    if (!S.selected || !S.models.some((m) => m.name === S.selected)) {
      S.selected = pickDefault();
      if (S.selected) await backfill(S.selected);
    }
    await Promise.all([loadRoutes(), loadEvents(), loadAlerts()]);
    renderModels();
    renderEvents();
    renderAlerts();
    $('conn').textContent = `Connected; updated ${new Date().toLocaleTimeString()}.`;
    $('conn').className = 'conn ok';
  } catch (e) {
    $('conn').textContent = `Cannot read the server: ${e.message}`;
    $('conn').className = 'conn bad';
  } finally {
    slowBusy = false;
  }
}

// The first view: the models, then everything else in parallel.
async function first() {
  slowBusy = fastBusy = true;
  try {
    await loadModels();
    S.selected = pickDefault();
    renderModels();
    // The store's history fills the charts when it comes; nothing waits for it.
    const sel = S.selected;
    backfill(sel).then(() => { if (sel === S.selected) renderLive(); });
    await Promise.allSettled([loadRoutes(), loadEvents(), loadAlerts(), loadFast()]);
    renderModels();
    renderEvents();
    renderAlerts();
    renderTraffic();
    renderLive();
    renderRollout();
    $('conn').textContent = `Connected; updated ${new Date().toLocaleTimeString()}.`;
    $('conn').className = 'conn ok';
  } catch (e) {
    $('conn').textContent = `Cannot read the server: ${e.message}`;
    $('conn').className = 'conn bad';
  } finally {
    slowBusy = fastBusy = false;
  }
}

function pickDefault() {
  const want = new URLSearchParams(location.search).get('model');
  if (want && S.models.some((m) => m.name === want)) return want;
  const multi = S.models.find((m) => m.versions.filter((v) => v.state === 'READY').length > 1);
  return (multi || S.models[0] || {}).name || '';
}

function loop(fn, ms) {
  const tick = async () => {
    if (!document.hidden) await fn();
    setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

function showToken() {
  $('token-state').textContent = getToken() ? 'token set for this tab' : 'no token (read-only where the server asks for one)';
}

async function main() {
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken($('token-input').value.trim());
    $('token-input').value = '';
    showToken();
    S.rendered = {};
    slow(true).then(() => fast(true));
  });
  $('token-forget').addEventListener('click', () => {
    setToken('');
    showToken();
    S.rendered = {};
    slow(true).then(() => fast(true));
  });
  $('model-select').addEventListener('change', async (ev) => {
    S.selected = ev.target.value;
    S.stats5 = S.stats60 = S.rollout = S.alerts = null;
    await backfill(S.selected);
    await Promise.all([fast(true), loadAlerts().then(renderAlerts)]);
  });
  $('ev-model').addEventListener('change', renderEvents);
  $('ev-kind').addEventListener('change', renderEvents);
  $('range').addEventListener('change', renderLive);
  showToken();
  await first();
  document.body.dataset.ready = '1';
  performance.mark('quiver-interactive');
  loop(fast, FAST_MS);
  loop(slow, SLOW_MS);
}

main();
