// gRPC-web against a real squeeze-coordinator (see grpcweb_test.sh): the
// dashboard's own client (client/web/src) in Node, binary and -text modes.
//   node grpcweb_client.mjs URL PROTO JOB_ID SIGNAL_FILE
// Phase A (no worker yet): unary calls, errors, CORS, submit + cancel, then
// two live WatchJob streams of JOB_ID (binary and text); once both delivered
// their first event (QUEUED: no worker exists, so the job cannot be done)
// SIGNAL_FILE is written and the test script starts the worker.
// Phase B: both streams must run on to SUCCEEDED with the same events, and
// the report must be readable.
import fs from 'node:fs';
import { SqueezeApi, loadTypes } from '../../../client/web/src/api.js';
import { GrpcError, StatusCode } from '../../../client/web/src/grpc_web.js';

const [url, protoPath, jobId, signalFile] = process.argv.slice(2);
const types = loadTypes(fs.readFileSync(protoPath, 'utf8'));
const apis = { binary: new SqueezeApi(types, url, { mode: 'binary' }), text: new SqueezeApi(types, url, { mode: 'text' }) };
let checks = 0;
function check(cond, what) {
  if (!cond) throw new Error(`FAIL: ${what}`);
  checks++;
}
// Canonical JSON (sorted keys): protobuf map entries (JobEvent.metrics) come in no fixed order.
const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x)
  ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));
async function expectStatus(promise, code, messagePart, what) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof GrpcError, `${what}: not a GrpcError: ${e}`);
    check(e.code === code, `${what}: status ${e.code}, want ${code} (${e.grpcMessage})`);
    check(e.grpcMessage.includes(messagePart), `${what}: message "${e.grpcMessage}" lacks "${messagePart}"`);
    return;
  }
  throw new Error(`FAIL: ${what}: succeeded, want status ${code}`);
}

// ---- Phase A: unary calls in both modes.
const job = await apis.binary.getJob(jobId);
check(job.job_id === jobId && job.state === 'QUEUED', `GetJob (binary): ${JSON.stringify(job)}`);
const jobText = await apis.text.getJob(jobId);
check(canon(jobText) === canon(job), 'GetJob text == binary');
for (const mode of ['binary', 'text']) {
  await expectStatus(apis[mode].getJob('no-such-job'), StatusCode.NOT_FOUND, 'job no-such-job not found', `GetJob unknown (${mode})`);
  await expectStatus(apis[mode].submitJob({ recipe_yaml: 'x: [', model_digest: job.model_digest }),
    StatusCode.INVALID_ARGUMENT, '', `SubmitJob bad recipe (${mode})`);
}
const list = await apis.text.listJobs({ page_size: 10 });
check(list.jobs.some((j) => j.job_id === jobId), 'ListJobs lists the job');
await expectStatus(apis.binary.client.unary('/squeeze.v1.CompressionService/NoSuch', types.GetJobRequest, types.Job, {}),
  StatusCode.UNIMPLEMENTED, '', 'unknown method');
// Metadata passes through (no auth configured: the call just works).
check((await apis.binary.getJob(jobId, { headers: { authorization: 'Bearer t0k' } })).job_id === jobId, 'with authorization');

// ---- CORS.
const path = `${url}/squeeze.v1.CompressionService/GetJob`;
const pre = await fetch(path, { method: 'OPTIONS', headers: {
  origin: 'http://third.example', 'access-control-request-method': 'POST',
  'access-control-request-headers': 'content-type,x-grpc-web,authorization' } });
check(pre.status === 204, `preflight from an allowed origin: ${pre.status}`);
check(pre.headers.get('access-control-allow-origin') === 'http://third.example', 'preflight allow-origin');
check(/authorization/.test(pre.headers.get('access-control-allow-headers') || ''), 'preflight allow-headers');
check((pre.headers.get('access-control-allow-methods') || '').includes('POST'), 'preflight allow-methods');
const preBad = await fetch(path, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
check(preBad.status === 403 && !preBad.headers.get('access-control-allow-origin'), `preflight from a foreign origin: ${preBad.status}`);
const cross = new SqueezeApi(types, url, { headers: { origin: 'http://allowed.example' } });
const raw = await fetch(path, { method: 'POST', headers: { origin: 'http://allowed.example', 'content-type': 'application/grpc-web' },
  body: new Uint8Array([0, 0, 0, 0, 0]) });
check(raw.headers.get('access-control-allow-origin') === 'http://allowed.example', 'POST allow-origin');
check((raw.headers.get('access-control-expose-headers') || '').includes('grpc-status'), 'expose-headers names grpc-status');
await raw.arrayBuffer();
check((await cross.getJob(jobId)).job_id === jobId, 'cross-origin call from an allowed origin');
await expectStatus(new SqueezeApi(types, url, { headers: { origin: 'http://evil.example' } }).getJob(jobId),
  StatusCode.PERMISSION_DENIED, 'not allowed', 'POST from a foreign origin');

// ---- Submit and cancel through gRPC-web (no worker yet, so it stays QUEUED).
const second = await apis.text.submitJob({ recipe_yaml: job.recipe_yaml, model_digest: job.model_digest, labels: { via: 'grpc-web' } });
check(second.state === 'QUEUED' && second.labels.via === 'grpc-web', `SubmitJob: ${JSON.stringify(second)}`);
const cancelled = await apis.binary.cancelJob(second.job_id);
check(cancelled.state === 'CANCELLED', `CancelJob: ${cancelled.state}`);
const secondEvents = [];
await apis.text.watchJob(second.job_id, 0, (e) => secondEvents.push(e));
check(secondEvents.at(-1).state === 'CANCELLED', 'watch of the cancelled job ends with CANCELLED');

// ---- Live WatchJob streams, both modes.
const seen = { binary: [], text: [] };
let firstSeen = 0;
let signalled;
const bothFirst = new Promise((resolve) => { signalled = resolve; });
const watches = ['binary', 'text'].map((mode) => apis[mode].watchJob(jobId, 0, (e) => {
  seen[mode].push(e);
  if (seen[mode].length === 1) {
    check(e.kind === 'STATE' && e.state === 'QUEUED', `${mode}: first event ${JSON.stringify(e)}`);
    if (++firstSeen === 2) signalled();
  }
}));
await bothFirst;
fs.writeFileSync(signalFile, 'watching\n');  // the script starts the worker now
const trailers = await Promise.all(watches);
for (const mode of ['binary', 'text']) {
  const ev = seen[mode];
  check(trailers[mode === 'binary' ? 0 : 1]['grpc-status'] === '0', `${mode}: trailer grpc-status 0`);
  check(ev.every((e, i) => e.seq === i + 1), `${mode}: seqs are 1..${ev.length}`);
  check(ev.some((e) => e.kind === 'PROGRESS' && e.unit === 'layer'), `${mode}: per-layer progress events`);
  check(ev.at(-1).state === 'SUCCEEDED', `${mode}: last event is SUCCEEDED`);
}
check(canon(seen.binary) === canon(seen.text), 'text and binary streams carry the same events');

// A watch of a finished job replays its history and ends.
const replay = [];
await apis.text.watchJob(jobId, 2, (e) => replay.push(e));
check(replay.length === seen.binary.length - 2 && replay[0].seq === 3, 'after_seq replay');

// ---- Report and artifact files.
const done = await apis.binary.getJob(jobId);
const report = await apis.text.getReport(jobId);
check(report.artifact_digest === done.artifact_digest && done.artifact_digest.length === 64, 'GetReport artifact digest');
const parsed = JSON.parse(report.report_json);
check(typeof parsed === 'object' && parsed !== null, 'report_json is JSON');
// Artifact files over the DownloadArtifact stream; the script compares them
// with what the native CLI downloads.
for (const [name, mode] of [['report.json', 'text'], ['model.safetensors', 'binary']]) {
  const bytes = await apis[mode].artifactFile(jobId, name);
  check(bytes && bytes.length > 0, `artifact ${name} over gRPC-web (${mode})`);
  fs.writeFileSync(`${signalFile}.${name}`, bytes);
}
console.log(`grpcweb_client: ${checks} checks passed; ${seen.binary.length} events streamed per mode`);
