#!/usr/bin/env node
// Runs a GGUF file in llama.cpp (npm node-llama-cpp, its prebuilt CPU
// binaries) for tests/unit/formats/gguf_llamacpp_test.cc.
//
//   node gguf_llamacpp.mjs REQUEST.json OUT.json
//
// REQUEST: {"models": [paths], "prompt_ids": [ids], "max_tokens": n, "stop_ids": [ids],
//           "score_ids": [ids], "texts": [strings]}
// OUT:     {"results": [per model {"greedy_ids": [ids after the prompt],
//           "logprobs": [log p(score_ids[i] | score_ids[<i]) for i >= 1],
//           "tokens": [[ids of each text, tokenized by llama.cpp without BOS]],
//           "bos": id, "eos": id}]}
// Greedy = argmax of the raw logits (lowest id on ties), as our engine does;
// log-probabilities are the log of llama.cpp's softmax of the raw logits.
import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [requestPath, outPath] = process.argv.slice(2);
if (!requestPath || !outPath) {
    console.error("usage: node gguf_llamacpp.mjs REQUEST.json OUT.json");
    process.exit(2);
}
const req = JSON.parse(fs.readFileSync(requestPath, "utf8"));

// CPU only, prebuilt binaries only: never download or compile anything.
// One thread: llama.cpp's worker threads spin while waiting, which only
// slows a model this small down on a shared machine.
const tStart = performance.now();
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: 1});

// With temperature 0 node-llama-cpp's sampler chain is llama.cpp's greedy
// sampler alone: `token` is the argmax of the raw logits (the first, i.e.
// lowest, id on ties) and `probabilities` is the softmax of all raw logits.
const startSeconds = (performance.now() - tStart) / 1000;
const withNext = (t) => [t, {generateNext: {token: true, probabilities: true, options: {temperature: 0}}}];

async function run(modelPath) {
    const t0 = performance.now();
    const model = await llama.loadModel({modelPath, gpuLayers: 0});
    const n = Math.max(req.score_ids.length, req.prompt_ids.length + req.max_tokens) + 8;
    // An F32 KV cache (llama.cpp's default is F16), so that cache rounding
    // does not blur the comparison.
    const context = await model.createContext({
        contextSize: n, batchSize: n, threads: 1, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = context.getSequence();

    // Greedy generation.
    const greedy = [];
    let res = await seq.controlledEvaluate(req.prompt_ids.map((t, i) => (i === req.prompt_ids.length - 1 ? withNext(t) : t)));
    let next = res[req.prompt_ids.length - 1].next;
    for (let step = 0; step < req.max_tokens; ++step) {
        const tok = next.token;
        if (req.stop_ids.includes(tok)) break;
        greedy.push(tok);
        if (step + 1 === req.max_tokens) break;
        res = await seq.controlledEvaluate([withNext(tok)]);
        next = res[0].next;
    }

    // Per-token log-probabilities of score_ids, one pass from an empty sequence.
    await seq.clearHistory();
    const ids = req.score_ids;
    const logprobs = [];
    res = await seq.controlledEvaluate(ids.map((t, i) => (i + 1 < ids.length ? withNext(t) : t)));
    for (let i = 0; i + 1 < ids.length; ++i) logprobs.push(Math.log(res[i].next.probabilities.get(ids[i + 1]) ?? 0));

    const tokens = req.texts.map((text) => Array.from(model.tokenize(text, false)));
    const out = {greedy_ids: greedy, logprobs, tokens, bos: model.tokens.bos, eos: model.tokens.eos,
                 seconds: (performance.now() - t0) / 1000};
    await context.dispose();
    await model.dispose();
    return out;
}

const results = [];
for (const m of req.models) results.push(await run(m));
fs.writeFileSync(outPath, JSON.stringify({results, start_seconds: startSeconds}));
await llama.dispose();
