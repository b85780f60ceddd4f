// SPDX-License-Identifier: MIT
//
// bench/peers/ort_server.cjs -- the Node.js peer of the ONNX serving rows: Node's `http`
// module in a `cluster` of WORKERS processes (default 2), each running MODEL with
// onnxruntime-node (1 intra-op thread), answering the same KServe v2 JSON as quiver:
//
//   POST /v2/models/{name}[/versions/{v}]/infer   {"inputs":[{"name","datatype":"FP32","shape","data"}]}
//     -> {"model_name","model_version","id"?,"outputs":[{"name","datatype","shape","data"}]}
//   GET  /v2/health/ready, /v2/health/live        -> 200
//
// Environment: BENCH_MODEL (path of the .onnx file), BENCH_MODEL_NAME (default mlp),
// BENCH_MODEL_VERSION (default 1), PORT, HOST (default 127.0.0.1), WORKERS (default 2).
// Run with NODE_PATH=bench/onnx/node_modules (bench/run.sh does). Stops on SIGTERM.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 8083);
const WORKERS = Number(process.env.WORKERS || 2);
const MODEL = process.env.BENCH_MODEL;
const NAME = process.env.BENCH_MODEL_NAME || 'mlp';
const VERSION = process.env.BENCH_MODEL_VERSION || '1';

if (cluster.isPrimary) {
  if (!MODEL) {
    console.error('ort_server: set BENCH_MODEL');
    process.exit(2);
  }
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  let stopping = false;
  cluster.on('exit', (w, code) => {
    if (!stopping) {
      console.error(`ort_server: worker ${w.process.pid} exited (${code}); stopping`);
      process.exit(1);
    }
  });
  process.on('SIGTERM', () => {
    stopping = true;
    for (const id in cluster.workers) cluster.workers[id].kill('SIGTERM');
    setTimeout(() => process.exit(0), 200);
  });
} else {
  worker().catch((e) => { console.error('ort_server: ' + (e && e.stack || e)); process.exit(1); });
}

function reply(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json',
                          'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function worker() {
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(MODEL, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inferPaths = new Set([`/v2/models/${NAME}/infer`,
                              `/v2/models/${NAME}/versions/${VERSION}/infer`]);
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/v2/health/ready' || req.url === '/v2/health/live')) {
      res.writeHead(200, { 'Content-Length': 0 });
      res.end();
      return;
    }
    if (req.method !== 'POST' || !inferPaths.has(req.url)) {
      reply(res, 404, { error: `no route for ${req.method} ${req.url}` });
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let doc;
      try {
        doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        reply(res, 400, { error: 'invalid JSON: ' + e.message });
        return;
      }
      const inputs = Array.isArray(doc.inputs) ? doc.inputs : [];
      if (inputs.length !== session.inputNames.length) {
        reply(res, 400, { error: `expected ${session.inputNames.length} input(s)` });
        return;
      }
      const feeds = {};
      try {
        for (const t of inputs) {
          if (t.datatype !== 'FP32' || !session.inputNames.includes(t.name))
            throw new Error(`input ${t.name}: expected one of ${session.inputNames} as FP32`);
          feeds[t.name] = new ort.Tensor('float32', Float32Array.from(t.data.flat(Infinity)),
                                         t.shape);
        }
      } catch (e) {
        reply(res, 400, { error: e.message });
        return;
      }
      let out;
      try {
        out = await session.run(feeds);
      } catch (e) {
        reply(res, 500, { error: e.message });
        return;
      }
      const answer = { model_name: NAME, model_version: VERSION };
      if (doc.id !== undefined) answer.id = doc.id;
      answer.outputs = session.outputNames.map((name) => ({
        name, datatype: 'FP32', shape: out[name].dims, data: Array.from(out[name].data),
      }));
      reply(res, 200, answer);
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(PORT, HOST);
  process.on('SIGTERM', () => process.exit(0));
}
