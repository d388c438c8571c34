#!/usr/bin/env node
// llama.cpp's side of the comparison (run_llamacpp_bench.sh): npm
// node-llama-cpp with its prebuilt CPU binaries (never downloads or builds).
//
//   node llamacpp_bench.mjs NODE_MODULES_DIR MODEL.gguf THREADS PROMPT.json TRIALS
//
// Per trial, on a fresh sequence: prefill = one evaluation of the prompt's
// ids (logits of the last token only, as our Forward with all_logits=false),
// decode = the decode ids one token at a time, the logits of each computed
// (greedy next token requested). CPU only, F32 KV cache (our engine's cache
// is fp32), no flash attention, THREADS threads, batch = the whole prompt.
// Prints the median tokens/s:  RESULT prefill_tps X decode_tps Y
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [modulesDir, modelPath, threadsArg, promptPath, trialsArg] = process.argv.slice(2);
if (!trialsArg) {
    console.error("usage: node llamacpp_bench.mjs NODE_MODULES_DIR MODEL.gguf THREADS PROMPT.json TRIALS");
    process.exit(2);
}
const threads = Number(threadsArg), trials = Number(trialsArg);
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(path.join(modulesDir, "node-llama-cpp/dist/index.js")).href);
const req = JSON.parse(fs.readFileSync(promptPath, "utf8"));
const prompt = req.prompt_ids, decode = req.decode_ids;

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads});
const t0 = performance.now();
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({
    contextSize: prompt.length + decode.length + 8, batchSize: prompt.length, threads,
    flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
});
console.error(`llama.cpp: loaded ${modelPath} in ${((performance.now() - t0) / 1000).toFixed(1)} s, ` +
              `${context.currentThreads} threads`);
const seq = context.getSequence();
const next = {generateNext: {token: true, options: {temperature: 0}}};

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const prefillTps = [], decodeTps = [];
for (let trial = 0; trial < trials; ++trial) {
    await seq.clearHistory();
    let t = performance.now();
    await seq.controlledEvaluate(prompt.map((id, i) => (i + 1 === prompt.length ? [id, next] : id)));
    prefillTps.push(prompt.length / ((performance.now() - t) / 1000));
    t = performance.now();
    for (const id of decode) await seq.controlledEvaluate([[id, next]]);
    decodeTps.push(decode.length / ((performance.now() - t) / 1000));
    console.error(`  trial ${trial}: prefill ${prefillTps.at(-1).toFixed(2)} tok/s, decode ${decodeTps.at(-1).toFixed(2)} tok/s`);
}
console.log(`RESULT prefill_tps ${median(prefillTps).toFixed(4)} decode_tps ${median(decodeTps).toFixed(4)}`);
await context.dispose();
await model.dispose();
await llama.dispose();
