// SPDX-License-Identifier: MIT
//
// The dashboard in a real browser: Debian's chromium driven by playwright-core.
// Starts quiver (QUIVER_BIN) on a copy of the example repository plus a test
// model whose version 2 fails 30% of its calls, sends bounded traffic from
// this process, opens /ui with every request to another origin aborted, and
// checks what an operator would look at and do. Screenshots go to
// QV_ARTIFACT_DIR (default: ./browser-artifacts under the working directory,
// the build dir under ctest). Exits 77 (skipped) only when chromium is absent.
//
//   node tests/browser/run.mjs            (QUIVER_BIN, QV_SOURCE_DIR from the environment)
//   QV_UPDATE_SCREENSHOT=1 node ...       also rewrites docs/ui.png

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = process.env.QV_SOURCE_DIR || path.resolve(here, '../..');
const BIN = process.env.QUIVER_BIN || path.join(SRC, 'build/quiver');
const CHROMIUM = process.env.QV_CHROMIUM || '/usr/bin/chromium';
const ART = process.env.QV_ARTIFACT_DIR || path.join(process.cwd(), 'browser-artifacts');
const DEADLINE = Date.now() + 420_000; // the whole run (ASan, a busy machine): a bound, not an assertion

if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not found; install Debian's chromium (scripts/install-deps.sh test) to run the browser tests`);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = await import(path.join(SRC, 'node_modules/playwright-core/index.mjs')));
} catch (e) {
  console.error(`FAIL: playwright-core is not installed in ${SRC}/node_modules (run npm ci there): ${e.message}`);
  process.exit(1);
}
const axeSource = fs.readFileSync(path.join(SRC, 'node_modules/axe-core/axe.min.js'), 'utf8');

// ---- A tiny runner ----
let passed = 0;
let failed = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL - ${name}: ${e.stack || e.message}`);
    await shot('fail-' + name.replace(/[^a-z0-9]+/gi, '_')).catch(() => {});
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
async function waitFor(what, fn, ms = 60_000) {
  const end = Math.min(Date.now() + ms, DEADLINE);
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

fs.mkdirSync(ART, { recursive: true });
for (const f of fs.readdirSync(ART)) if (f.endsWith('.png')) fs.rmSync(path.join(ART, f));

// ---- The server ----
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'quiver-browser-'));
const repo = path.join(tmp, 'repo');
fs.cpSync(path.join(SRC, 'examples/models'), repo, { recursive: true });
fs.mkdirSync(path.join(repo, 'canary/1'), { recursive: true });
fs.mkdirSync(path.join(repo, 'canary/2'), { recursive: true });
fs.writeFileSync(path.join(repo, 'canary/config.json'), JSON.stringify({ backend: 'test', version_policy: { all: {} },
  alerts: [{ name: 'errors', metric: 'error_rate', op: '>', threshold: 0.05, window_s: 30 }] }) + '\n');
fs.writeFileSync(path.join(repo, 'canary/1/model.test'), '{"features": 4}\n');
fs.writeFileSync(path.join(repo, 'canary/2/model.test'), '{"features": 4, "fail_rate": 0.3}\n');
const ADMIN = 'adm-' + randomBytes(8).toString('hex');
const READER = 'rd-' + randomBytes(8).toString('hex');
fs.writeFileSync(path.join(tmp, 'tokens'), `ops ${ADMIN} admin\nviewer ${READER} read\n`);
const portFile = path.join(tmp, 'port');
const logFile = path.join(tmp, 'server.log');
const log = fs.openSync(logFile, 'a');
const server = spawn(BIN, ['serve', '--enable-test-backend', '--repo', repo, '--data', path.join(tmp, 'data'), '--port', '0',
  '--port-file', portFile, '--tokens', path.join(tmp, 'tokens'), '--workers', '2', '--http-threads', '2'],
{ stdio: ['ignore', log, log], env: { ...process.env, QUIVER_HISTORY_INTERVAL_S: '2' } });
let serverExited = false;
server.on('exit', () => { serverExited = true; });

let browser;
let page;
let stopTraffic = false;
let trafficDone = Promise.resolve();

async function shot(name) {
  if (!page) return;
  fs.mkdirSync(ART, { recursive: true });
  await page.screenshot({ path: path.join(ART, name + '.png'), fullPage: true });
}

// Stops quiver with SIGTERM and checks that it exits 0 with a clean log (under ASan a leak
// or an error report fails the run here).
async function stopServer() {
  if (!serverExited) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await Promise.race([exited, sleep(20_000)]);
  }
  const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
  if (server.exitCode !== 0 || /AddressSanitizer|LeakSanitizer|runtime error:/.test(text)) {
    failed++;
    console.log(`FAIL - quiver stopped with exit code ${server.exitCode} (signal ${server.signalCode})`);
    console.log(text.split('\n').filter((l) => !l.includes('level=info')).slice(-60).join('\n'));
  } else {
    passed++;
    console.log('ok - quiver stopped cleanly (exit 0, no sanitizer report)');
  }
}

function cleanup() {
  stopTraffic = true;
  if (!serverExited) server.kill('SIGKILL');
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
  } catch {
    /* left for the OS */
  }
}

async function main() {
  const port = await waitFor('the port file', () => {
    assert(!serverExited, 'quiver serve exited: ' + fs.readFileSync(logFile, 'utf8'));
    const t = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8').trim() : '';
    return Number(t) > 0 ? Number(t) : 0;
  });
  const base = `http://127.0.0.1:${port}`;
  const call = async (method, p, body, token) => {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, json, text };
  };
  await waitFor('the server to be ready', async () => (await call('GET', '/v2/health/ready')).status === 200);
  // Every version settled; fraud and canary READY (a build without ONNX leaves cnn and mlp
  // UNAVAILABLE, which the page must show as well).
  await waitFor('every version settled', async () => {
    const r = await call('GET', '/v2/repository/index', undefined, ADMIN);
    return r.status === 200 && r.json.length >= 6 && r.json.every((e) => e.state !== 'LOADING')
      && r.json.filter((e) => e.name === 'fraud' || e.name === 'canary').every((e) => e.state === 'READY');
  });

  // Routes: fraud 70/30 through labels, canary 50/50 by version.
  let r = await call('PUT', '/v2/models/fraud/route',
    { policy: 'weighted', labels: { stable: 1, canary: 2 }, weights: { stable: 70, canary: 30 } }, ADMIN);
  assert(r.status === 200, 'PUT fraud route: ' + r.text);
  r = await call('PUT', '/v2/models/canary/route', { policy: 'weighted', weights: { 1: 50, 2: 50 } }, ADMIN);
  assert(r.status === 200, 'PUT canary route: ' + r.text);

  // Traffic: a few bounded loops (count and time) from this process.
  const fraudBody = JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 30], data: Array.from({ length: 30 }, (_, i) => i / 30) }] });
  const canaryBody = JSON.stringify({ inputs: [{ name: 'input__0', datatype: 'FP32', shape: [1, 4], data: [0.1, 0.2, 0.3, 0.4] }] });
  const gate = { canary: true };
  const worker = async (model, body, pauseMs) => {
    for (let i = 0; i < 100_000 && !stopTraffic && Date.now() < DEADLINE; i++) {
      if (model === 'canary' && !gate.canary) {
        await sleep(50);
        continue;
      }
      try {
        await (await fetch(`${base}/v2/models/${model}/infer`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } })).arrayBuffer();
      } catch {
        await sleep(50);
      }
      await sleep(pauseMs);
    }
  };
  trafficDone = Promise.all([worker('fraud', fraudBody, 3), worker('fraud', fraudBody, 3), worker('canary', canaryBody, 4)]);

  // The browser: everything but quiver is aborted and recorded.
  const userDir = fs.mkdtempSync(path.join(tmp, 'chromium-'));
  // A fresh profile each run; playwright takes it as launchPersistentContext's directory.
  browser = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1360, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = browser;
  const blocked = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.host === `127.0.0.1:${port}`) return route.continue();
    blocked.push(u.href);
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  const cspViolations = [];
  const pageErrors = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const encodings = {};
  page.on('response', async (resp) => {
    const u = new URL(resp.url());
    if (u.pathname.startsWith('/ui/') && resp.status() === 200) {
      encodings[u.pathname] = (await resp.allHeaders())['content-encoding'] || 'identity';
    }
  });

  const printTti = async (what) => {
    const t = await page.evaluate(() => {
      const m = performance.getEntriesByName('quiver-interactive')[0];
      const slow = performance.getEntriesByType('resource').sort((a, b) => b.duration - a.duration).slice(0, 3)
        .map((r) => `${new URL(r.name).pathname} ${r.duration.toFixed(0)} ms`);
      return { tti: m ? m.startTime : null, slow };
    });
    console.log(`# time to interactive (${what}): ${t.tti === null ? '?' : t.tti.toFixed(0)} ms from navigation start to the first full render; slowest: ${t.slow.join(', ')}`);
  };

  await check('page loads offline (only quiver reachable), / redirects to /ui, interactive', async () => {
    const resp = await page.goto(base + '/', { waitUntil: 'load' });
    assert(new URL(page.url()).pathname === '/ui', 'landed on ' + page.url());
    assert(resp.status() === 200, 'status ' + resp.status());
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    await printTti('first load, cold browser');
    assert(blocked.length === 0, 'requests to other origins: ' + blocked.join(', '));
    assert(encodings['/ui/app.js'] === 'gzip' && encodings['/ui/style.css'] === 'gzip',
      'the browser did not get the gzip copies: ' + JSON.stringify(encodings));
  });

  await check('read-only without a token: models from the open endpoints, management views say why', async () => {
    await waitFor('models rows', () => page.locator('#models-table tr[data-model="fraud"]').count());
    const warn = await page.locator('#models-body .warn').textContent();
    assert(/bearer token is required/.test(warn), 'no explanation: ' + warn);
  });

  await check('with the admin token every model and version is shown with its state', async () => {
    await page.fill('#token-input', ADMIN);
    await page.click('#token-save');
    const want = (await call('GET', '/v2/repository/index', undefined, ADMIN)).json;
    await waitFor('all versions in the table', async () => {
      for (const e of want) {
        const row = page.locator(`#models-table tr[data-model="${e.name}"][data-version="${e.version}"]`);
        if ((await row.count()) !== 1) return false;
        if ((await row.getAttribute('data-state')) !== e.state) return false;
        if (!(await row.textContent()).includes(e.state)) return false;
      }
      // Labels come from the route, read once the token is in: wait for them too.
      const v1 = await page.locator('#models-table tr[data-model="fraud"][data-version="1"]').textContent();
      return /stable/.test(v1);
    }, 20_000);
    const fraudV1 = await page.locator('#models-table tr[data-model="fraud"][data-version="1"]').textContent();
    assert(/xgboost/.test(fraudV1) && /stable/.test(fraudV1), 'fraud v1 row lacks backend or label: ' + fraudV1);
  });

  await check('the measured split approaches the route weights (fraud 70/30)', async () => {
    await page.selectOption('#model-select', 'fraud');
    const got = await waitFor('a measured split within 8 points of the route', async () => {
      const rows = await page.$$eval('#split-table tr[data-version]', (trs) => trs.map((tr) => ({
        v: tr.dataset.version,
        route: Number(tr.querySelector('[data-kind="route"]').dataset.value),
        measured: Number(tr.querySelector('[data-kind="measured"]').dataset.value),
        req: Number(tr.children[4].textContent),
      })));
      const total = rows.reduce((a, x) => a + x.req, 0);
      const v1 = rows.find((x) => x.v === '1');
      const v2 = rows.find((x) => x.v === '2');
      if (!v1 || !v2 || total < 300) return false;
      if (Math.abs(v1.route - 0.7) > 1e-6 || Math.abs(v2.route - 0.3) > 1e-6) return false;
      return Math.abs(v1.measured - 0.7) < 0.08 && Math.abs(v2.measured - 0.3) < 0.08 ? rows : false;
    }, 90_000);
    console.log('# split: ' + got.map((x) => `v${x.v} route ${x.route} measured ${x.measured.toFixed(3)} (${x.req} req)`).join('; '));
    await shot('traffic');
  });

  await check('the latency chart data changes between two reads', async () => {
    const read = () => page.$eval('#chart-lat', (f) => ({ n: Number(f.dataset.samples), last: f.dataset.last,
      d: [...f.querySelectorAll('path.series')].map((p) => p.getAttribute('d')).join('|') }));
    const a = await waitFor('latency samples', async () => { const x = await read(); return x.n > 2 ? x : false; });
    const b = await waitFor('new latency samples', async () => { const x = await read(); return x.n > a.n && x.last !== a.last ? x : false; }, 20_000);
    assert(a.d !== b.d, 'the drawn lines did not change');
  });

  await check('a canary with fail_rate shows its error rate', async () => {
    await page.selectOption('#model-select', 'canary');
    await waitFor('v2 error rate about 0.3 and v1 none', async () => {
      const e = await page.$$eval('#split-table tr[data-version]', (trs) => Object.fromEntries(trs.map((tr) =>
        [tr.dataset.version, Number(tr.querySelector('[data-kind="errors"]').dataset.value)])));
      return e['2'] > 0.15 && e['2'] < 0.45 && e['1'] === 0;
    }, 60_000);
    const legend = await page.locator('#chart-err figcaption').textContent();
    assert(/v2: (\d+\.\d)%/.test(legend) && Number(legend.match(/v2: (\d+\.\d)%/)[1]) > 5, 'error chart legend: ' + legend);
    await shot('canary-errors');
  });

  await check('a rollout started from the page shows its progress, then its rollback', async () => {
    gate.canary = false; // no canary traffic: the first step waits for min_requests
    await sleep(300);
    await page.selectOption('#ro-canary', '2');
    await page.fill('#ro-steps', '10, 50, 100');
    await page.fill('#ro-seconds', '1');
    await page.fill('#ro-min', '40');
    await page.fill('#ro-p99', '1000'); // only the error guard decides: latency noise must not
    await page.click('#rollout-form button[type="submit"]');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await waitFor('running in the page', async () =>
      (await page.getAttribute('#rollout-status', 'data-state').catch(() => null)) === 'running', 20_000);
    const status = await page.locator('#rollout-status').textContent();
    assert(/Step\s*1 of 3/.test(status), 'progress not shown: ' + status);
    assert(await page.locator('#rollout svg[aria-label^="rollout plan"]').count() === 1, 'no step chart');
    await shot('rollout-running');
    gate.canary = true;
    await waitFor('rolled back in the page', async () =>
      (await page.getAttribute('#rollout-status', 'data-state').catch(() => null)) === 'rolled_back', 60_000);
    const reason = await page.locator('#rollout-reason').textContent();
    assert(/error_rate/.test(reason), 'reason: ' + reason);
    const api = (await call('GET', '/v2/models/canary/rollout', undefined, ADMIN)).json;
    assert(api.state === 'rolled_back' && reason === api.reason, 'page and API differ: ' + api.reason);
    await waitFor('rollout events in the log', async () => {
      const kinds = await page.$$eval('#events-table tr[data-model="canary"]', (trs) => trs.map((t) => t.dataset.what));
      return kinds.includes('rollout.start') && kinds.includes('rollout.rollback');
    }, 20_000);
    await shot('rollout-rolled-back');
  });

  await check('an action with the admin token changes the route (checked through the API)', async () => {
    await page.selectOption('#model-select', 'fraud');
    await waitFor('the weights form of fraud, filled from the route in force', async () =>
      (await page.locator('#weights-form[data-model="fraud"]').count()) === 1
      && (await page.inputValue('#w-1')) === '70' && (await page.inputValue('#w-2')) === '30');
    await page.fill('#w-1', '40');
    await page.fill('#w-2', '60');
    await page.click('#weights-form button[type="submit"]');
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await waitFor('the success message', async () => /Done: Set the weights of fraud/.test(await page.locator('#flash').textContent()));
    const route = (await call('GET', '/v2/models/fraud/route', undefined, ADMIN)).json;
    assert(route.weights['1'] === 40 && route.weights['2'] === 60, 'route: ' + JSON.stringify(route));
    assert(route.labels && route.labels.stable === 1, 'labels lost: ' + JSON.stringify(route));
    const ev = (await call('GET', '/v2/models/fraud/events', undefined, ADMIN)).json;
    assert(ev.some((e) => e.what === 'route.put' && e.who === 'ops'), 'no route.put by ops in the audit log');
  });

  await check('cancelling the confirmation changes nothing', async () => {
    const before = (await call('GET', '/v2/models/fraud/route', undefined, ADMIN)).text;
    await page.click('#route-rollback');
    await page.waitForSelector('#confirm[open]');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#confirm:not([open])', { state: 'attached' });
    await sleep(500);
    assert((await call('GET', '/v2/models/fraud/route', undefined, ADMIN)).text === before, 'route changed');
  });

  await check('without a token, or with a read token, the action is refused with the server\'s message', async () => {
    const before = (await call('GET', '/v2/models/fraud/route', undefined, ADMIN)).text;
    const expectNo = (await call('PUT', '/v2/models/fraud/route', { policy: 'default' })).json.error;
    const expectRead = (await call('PUT', '/v2/models/fraud/route', { policy: 'default' }, READER)).json.error;
    await page.click('#token-forget');
    await page.fill('#w-1', '90');
    await page.fill('#w-2', '10');
    await page.click('#weights-form button[type="submit"]');
    await page.click('#confirm-ok');
    await waitFor('the refusal', async () => (await page.locator('#flash').textContent()).includes(expectNo));
    await shot('refused');
    await page.fill('#token-input', READER);
    await page.click('#token-save');
    await page.fill('#w-1', '90');
    await page.fill('#w-2', '10');
    await page.click('#weights-form button[type="submit"]');
    await page.click('#confirm-ok');
    await waitFor('the refusal of the read token', async () => (await page.locator('#flash').textContent()).includes(expectRead));
    assert((await call('GET', '/v2/models/fraud/route', undefined, ADMIN)).text === before, 'route changed');
    await page.fill('#token-input', ADMIN);
    await page.click('#token-save');
  });

  await check('events: newest first, filtered by model and kind, with who and old -> new', async () => {
    await page.selectOption('#ev-model', 'fraud');
    await page.selectOption('#ev-kind', 'route.put');
    const rows = await waitFor('filtered rows', async () => {
      const x = await page.$$eval('#events-table tbody tr', (trs) => trs.map((t) => ({ m: t.dataset.model, w: t.dataset.what, text: t.textContent })));
      return x.length >= 2 ? x : false;
    });
    assert(rows.every((x) => x.m === 'fraud' && x.w === 'route.put'), 'filter not applied');
    assert(/ops/.test(rows[0].text) && /"1":40/.test(rows[0].text) && /→/.test(rows[0].text), 'newest first with who and old -> new: ' + rows[0].text);
    await page.selectOption('#ev-model', '');
    await page.selectOption('#ev-kind', '');
  });

  // Runs one action from the page: click, confirm, wait for its own message.
  const doAction = async (selector, done) => {
    await page.click(selector);
    await page.waitForSelector('#confirm[open]');
    await page.click('#confirm-ok');
    await waitFor(`"${done}"`, async () => {
      const t = await page.locator('#flash').textContent();
      if (/Refused/.test(t)) throw new Error(t);
      return t.includes(done);
    }, 20_000);
  };
  const routeOf = async (m) => (await call('GET', `/v2/models/${m}/route`, undefined, ADMIN)).json;

  await check('labels set and removed, promote and route rollback from the page (checked through the API)', async () => {
    await page.selectOption('#model-select', 'fraud');
    await waitFor('the label form of fraud', async () => (await page.locator('#label-version option[value="1"]').count()) === 1);
    await page.fill('#label-name', 'blue');
    await page.selectOption('#label-version', '1');
    await doAction('#label-form button[type="submit"]', 'Set the label blue of fraud to v1');
    let r = await routeOf('fraud');
    assert(r.labels.blue === 1, 'label not set: ' + JSON.stringify(r));
    await waitFor('the remove button', async () => (await page.locator('button:has-text("Remove blue")').count()) === 1);
    await doAction('button:has-text("Remove blue")', 'Remove the label blue of fraud');
    r = await routeOf('fraud');
    assert(r.labels.blue === undefined, 'label not removed: ' + JSON.stringify(r));
    const before = JSON.stringify(r);
    await waitFor('canary in the promote list', async () => (await page.locator('#promote-label option[value="canary"]').count()) === 1);
    await page.selectOption('#promote-label', 'canary');
    await doAction('#promote-form button[type="submit"]', 'Promote canary (v2) of fraud');
    r = await routeOf('fraud');
    assert(r.policy === 'weighted' && r.labels.stable === 2 && r.labels.canary === undefined
      && r.weights.stable === 100 && Object.keys(r.weights).length === 1, 'not promoted: ' + JSON.stringify(r));
    await doAction('#route-rollback', 'Roll back the route of fraud');
    r = await routeOf('fraud');
    assert(JSON.stringify(r) === before, `rollback gave ${JSON.stringify(r)}, expected ${before}`);
  });

  await check('a rollout aborted from the page', async () => {
    await page.fill('#ro-steps', '50, 100');
    await page.fill('#ro-min', '1000000');
    await doAction('#rollout-form button[type="submit"]', 'Start a rollout of fraud');
    await waitFor('running', async () => (await page.getAttribute('#rollout-status', 'data-state').catch(() => null)) === 'running', 20_000);
    await waitFor('the abort button enabled', async () => page.isEnabled('#rollout-abort'));
    await doAction('#rollout-abort', 'Abort the rollout of fraud');
    await waitFor('aborted in the page', async () => (await page.getAttribute('#rollout-status', 'data-state').catch(() => null)) === 'aborted', 20_000);
    assert((await call('GET', '/v2/models/fraud/rollout', undefined, ADMIN)).json.state === 'aborted', 'API state');
  });

  await check('a version unloaded and loaded again from the models table', async () => {
    const row = '#models-table tr[data-model="canary"][data-version="2"]';
    await doAction(`${row} button`, 'Unload canary version 2');
    await waitFor('not READY in the page', async () => (await page.getAttribute(row, 'data-state')) === 'UNLOADED', 30_000);
    assert((await page.locator(row).textContent()).includes('UNLOADED'), 'state not written');
    await doAction(`${row} button`, 'Load canary version 2');
    await waitFor('READY again in the page', async () => (await page.getAttribute(row, 'data-state')) === 'READY', 30_000);
  });

  await check('alerts: the failing canary\'s rule fires for v2', async () => {
    const r = await call('PUT', '/v2/models/canary/route', { policy: 'weighted', weights: { 1: 50, 2: 50 } }, ADMIN);
    assert(r.status === 200, r.text);
    await page.selectOption('#model-select', 'canary');
    await waitFor('a firing rule', async () => {
      const t = await page.locator('#alerts-body').textContent();
      return /errors/.test(t) && /v2: ▲ FIRING/.test(t) && /v1: ● OK/.test(t);
    }, 60_000);
    await shot('alerts');
  });

  await check('every control is reachable with the keyboard', async () => {
    await page.goto(base + '/ui?model=fraud');
    await page.waitForSelector('body[data-ready="1"]');
    await printTti('reload');
    await waitFor('the charts filled from the store\'s history right after a reload', async () =>
      Number(await page.getAttribute('#chart-rps', 'data-samples')) > 12, 10_000);
    const want = await page.$$eval('a[href], button, input, select', (els) => els
      .filter((e) => !e.disabled && e.offsetParent !== null && !e.closest('dialog'))
      .map((e, i) => { e.dataset.kbd = String(i); return String(i); }));
    const seen = new Set();
    for (let i = 0; i < want.length * 2 + 10 && seen.size < want.length; i++) {
      await page.keyboard.press('Tab');
      const k = await page.evaluate(() => document.activeElement && document.activeElement.dataset.kbd);
      if (k !== undefined) seen.add(k);
    }
    const missing = want.filter((k) => !seen.has(k));
    if (missing.length) {
      const names = await page.$$eval(missing.map((k) => `[data-kbd="${k}"]`).join(','), (els) => els.map((e) => e.outerHTML.slice(0, 80)));
      throw new Error(`${missing.length} of ${want.length} controls never got focus: ${names.join(' ')}`);
    }
    console.log(`# keyboard: ${want.length} controls reached with Tab`);
  });

  await check('axe-core: no serious or critical accessibility violation', async () => {
    await page.evaluate(axeSource);
    const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    for (const v of res.violations) console.log(`# axe ${v.impact}: ${v.id} (${v.nodes.length}) ${v.help}`);
    assert(bad.length === 0, bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join('; '));
  });

  await check('no CSP violation, no script error, nothing but quiver requested', async () => {
    assert(cspViolations.length === 0, cspViolations.join('; '));
    assert(pageErrors.length === 0, pageErrors.join('; '));
    assert(blocked.length === 0, blocked.join(', '));
  });

  await page.selectOption('#model-select', 'fraud');
  await sleep(3000);
  await shot('dashboard');
  if (process.env.QV_UPDATE_SCREENSHOT) {
    await page.setViewportSize({ width: 1360, height: 1400 });
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await sleep(300);
    await page.screenshot({ path: path.join(SRC, 'docs/ui.png') });
    console.log('# wrote docs/ui.png');
  }
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL - setup: ${e.stack || e.message}`);
  if (fs.existsSync(logFile)) console.log(fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n'));
} finally {
  stopTraffic = true;
  await Promise.race([trafficDone, sleep(5000)]);
  if (browser) await browser.close().catch(() => {});
  await stopServer();
  cleanup();
}
console.log(`screenshots: ${ART}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
