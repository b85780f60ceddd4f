// SPDX-License-Identifier: MIT
// Small SVG charts: a time series with a few lines, a stacked bar and a step
// chart. Every series also has a text legend and its own dash pattern, so
// colour is never the only way to tell them apart.

const NS = 'http://www.w3.org/2000/svg';

export const PALETTE = ['#1f6feb', '#d1242f', '#1a7f37', '#9a6700', '#8250df', '#0e7490', '#bf3989', '#57606a'];
export const DASHES = ['', '6 3', '2 3', '8 3 2 3', '1 2', '10 4', '4 4', '3 6'];

function el(tag, attrs, ...kids) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k);
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

// series: [{name, points: [[t_ms, y], ...], color, dash}]; span_ms: the x range
// ending now. Returns an <svg>.
export function lineChart({ title, unit, series, span_ms, now, yMax }) {
  const W = 520, H = 170, L = 46, R = 8, T = 10, B = 22;
  const t1 = now, t0 = now - span_ms;
  let max = yMax || 0;
  if (!yMax) for (const s of series) for (const [t, y] of s.points) if (t >= t0 && y > max) max = y;
  max = yMax || niceMax(max);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - Math.min(v, max) / max) * (H - T - B);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title} (${unit})`, class: 'chart' });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(el('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v)));
  }
  const mins = Math.round(span_ms / 60000);
  for (let i = 0; i <= mins; i += Math.max(1, Math.round(mins / 5))) {
    const t = t1 - i * 60000;
    svg.append(el('text', { x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'end' : 'middle', class: 'tick' },
      i === 0 ? 'now' : `-${i}m`));
  }
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= t0);
    if (pts.length === 0) continue;
    let d = '';
    let prev = null;
    for (const [t, v] of pts) {
      // A gap of more than 10 s (page hidden, server away) breaks the line.
      d += (prev === null || t - prev > 10000 ? 'M' : 'L') + x(t).toFixed(1) + ' ' + y(v).toFixed(1) + ' ';
      prev = t;
    }
    const attrs = { d: d.trim(), fill: 'none', stroke: s.color, 'stroke-width': 2, class: 'series' };
    if (s.dash) attrs['stroke-dasharray'] = s.dash;
    const path = el('path', attrs);
    path.dataset.series = s.name;
    svg.append(path);
  }
  return svg;
}

// A legend as an HTML list: a line sample in the series' colour and dash, and its name.
export function legend(series) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  for (const s of series) {
    const li = document.createElement('li');
    const sw = el('svg', { viewBox: '0 0 28 8', width: 28, height: 8, 'aria-hidden': 'true' },
      el('line', { x1: 0, x2: 28, y1: 4, y2: 4, stroke: s.color, 'stroke-width': 2, 'stroke-dasharray': s.dash || 'none' }));
    li.append(sw, ' ' + s.name + (s.value !== undefined ? ': ' + s.value : ''));
    ul.append(li);
  }
  return ul;
}

// rows: [{label, parts: [{name, value (0..1), color}]}]: one horizontal bar per
// row, each part labelled with its name and percentage when wide enough.
export function stackedBars(rows, title) {
  const W = 520, rowH = 34, L = 90, R = 8;
  const H = rows.length * rowH + 6;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, class: 'chart bars' });
  rows.forEach((row, i) => {
    const y0 = 4 + i * rowH;
    svg.append(el('text', { x: L - 6, y: y0 + 18, 'text-anchor': 'end', class: 'tick' }, row.label));
    let x0 = L;
    const total = row.parts.reduce((a, p) => a + p.value, 0);
    if (total <= 0) {
      svg.append(el('rect', { x: L, y: y0, width: W - L - R, height: rowH - 8, class: 'empty' }));
      svg.append(el('text', { x: L + 6, y: y0 + 18, class: 'tick' }, 'no traffic'));
      return;
    }
    row.parts.forEach((p, j) => {
      const w = (p.value / total) * (W - L - R);
      if (w <= 0) return;
      svg.append(el('rect', { x: x0, y: y0, width: w, height: rowH - 8, fill: p.color, class: 'seg' },
        el('title', {}, `${p.name}: ${(100 * p.value / total).toFixed(1)}%`)));
      if (j % 2 === 1) {
        svg.append(el('rect', { x: x0, y: y0 + rowH - 12, width: w, height: 4, class: 'stripe' }));
      }
      if (w > 54) {
        svg.append(el('text', { x: x0 + 5, y: y0 + 17, class: 'seglabel' },
          `${p.name} ${(100 * p.value / total).toFixed(0)}%`));
      }
      x0 += w;
    });
  });
  return svg;
}

// steps: canary weights in points; at: the current step index; state: the
// rollout's state. A step line of the plan, done steps filled.
export function stepChart(steps, at, state) {
  const W = 520, H = 120, L = 40, R = 8, T = 8, B = 22;
  const n = steps.length;
  const x = (i) => L + (i / n) * (W - L - R);
  const y = (v) => T + (1 - v / 100) * (H - T - B);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `rollout plan: steps ${steps.join(', ')}; at step ${at + 1} of ${n}, ${state}`, class: 'chart' });
  for (const v of [0, 50, 100]) {
    svg.append(el('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(el('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, v + '%'));
  }
  let d = `M${x(0)} ${y(0)}`;
  steps.forEach((v, i) => {
    d += ` L${x(i)} ${y(v)} L${x(i + 1)} ${y(v)}`;
    const done = i < at || (i === at && state === 'promoted');
    const cur = i === at && state === 'running';
    svg.append(el('rect', { x: x(i) + 1, y: y(v), width: x(i + 1) - x(i) - 2, height: y(0) - y(v),
      class: done ? 'step done' : cur ? 'step current' : 'step' }));
    svg.append(el('text', { x: (x(i) + x(i + 1)) / 2, y: H - 6, 'text-anchor': 'middle', class: 'tick' },
      `${v}%${cur ? ' (now)' : done ? ' ✓' : ''}`));
  });
  svg.append(el('path', { d, fill: 'none', class: 'stepline' }));
  return svg;
}
