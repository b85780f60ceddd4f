// SPDX-License-Identifier: MIT
//
// bench/onnx/ort_inproc.js -- onnxruntime-node called in-process, batch 1: the peer of
// bench/onnx_inproc.c. Loads MODEL with THREADS intra-op threads (one inter-op thread,
// sequential execution, all graph optimizations), feeds every graph input FP32 values
// x[i] = sin(0.37 i) with symbolic dims set to 1 (shapes from a one-off metadata read),
// runs WARMUP unrecorded calls and RUNS timed session.run calls, and prints one line:
//
//   ONNX runs=N threads=T p50_us=F p99_us=F min_us=F out0=F sumabs=F
//
// Usage (from bench/onnx, after `npm install --ignore-scripts`):
//   node ort_inproc.js MODEL.onnx THREADS RUNS [WARMUP] [DIMS] [OUT.f32]
// DIMS is the input shape as "1,3,224,224" (needed when the model does not say it).
// OUT.f32, when given, receives output 0 of the last run as raw float32 (as
// bench/onnx_inproc.c writes it), for an element-wise comparison.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, threadsArg, runsArg, warmArg, dimsArg, outArg] = process.argv.slice(2);
  if (!model || !threadsArg || !runsArg) {
    console.error('usage: node ort_inproc.js MODEL.onnx THREADS RUNS [WARMUP] [DIMS]');
    process.exit(2);
  }
  const threads = Number(threadsArg);
  const runs = Number(runsArg);
  const warmup = warmArg ? Number(warmArg) : Math.floor(runs / 10) + 1;
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const dims = dimsArg.split(',').map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sin(0.37 * i);
  const feeds = {};
  for (const name of session.inputNames) feeds[name] = new ort.Tensor('float32', x, dims);
  const ns = [];
  let last;
  for (let r = 0; r < warmup + runs; r++) {
    const t0 = process.hrtime.bigint();
    last = await session.run(feeds);
    const dt = process.hrtime.bigint() - t0;
    if (r >= warmup) ns.push(Number(dt));
  }
  ns.sort((a, b) => a - b);
  const out = last[session.outputNames[0]].data;
  let sumabs = 0;
  for (let i = 0; i < out.length; i++) sumabs += Math.abs(out[i]);
  const us = (v) => (v / 1e3).toFixed(1);
  if (outArg) fs.writeFileSync(outArg, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  console.log(`ONNX runs=${runs} threads=${threads} p50_us=${us(ns[Math.floor(runs / 2)])} ` +
              `p99_us=${us(ns[Math.floor((runs * 99) / 100)])} min_us=${us(ns[0])} ` +
              `out0=${out[0].toPrecision(6)} sumabs=${sumabs.toPrecision(6)}`);
}

main().catch((e) => { console.error('ort_inproc: ' + (e && e.stack || e)); process.exit(1); });
