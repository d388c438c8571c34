// Offline checks of the Kubernetes manifests (deploy/k8s), no cluster needed:
//  1. every object validates against the Kubernetes OpenAPI schema as
//     compiled by npm kubernetes-models (types, required fields, enums);
//  2. the wiring a schema cannot see: selectors match pod labels, Services
//     select pods and name ports that exist, the StatefulSet's volume claim is
//     mounted and its probes are gRPC on the gRPC port, GPU workers request
//     nvidia.com/gpu, workers' grace period fits the SIGTERM checkpoint upload,
//     the batch Job maps the CLI's exit codes.
// Prints "FLAG <program> <--flag>" for every flag a container passes, so the
// caller can check them against the real binaries' --helpfull; exits 1 with
// every problem listed.
//
//   node validate_k8s.mjs NODE_MODULES RENDERED.yaml
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';
import { pathToFileURL } from 'url';

const [nodeModules, renderedFile] = process.argv.slice(2).map((p) => path.resolve(p));
const load = async (spec) => import(pathToFileURL(path.join(nodeModules, spec)).href);
const YAML = createRequire(path.join(nodeModules, 'x.js'))('yaml');

const groups = {
  v1: 'kubernetes-models/v1/index.js',
  'apps/v1': 'kubernetes-models/apps/v1/index.js',
  'batch/v1': 'kubernetes-models/batch/v1/index.js',
};
const problems = [];
const bad = (where, what) => problems.push(`${where}: ${what}`);

const docs = YAML.parseAllDocuments(fs.readFileSync(renderedFile, 'utf8')).map((d) => d.toJS()).filter(Boolean);
if (docs.length === 0) bad(renderedFile, 'no objects');
const byKind = {};
for (const obj of docs) {
  const where = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  (byKind[obj.kind] = byKind[obj.kind] || []).push(obj);
  const mod = groups[obj.apiVersion];
  if (!mod) { bad(where, `apiVersion ${obj.apiVersion} is not one this check knows`); continue; }
  const Model = (await load(mod))[obj.kind];
  if (!Model) { bad(where, `kind ${obj.kind} does not exist in ${obj.apiVersion}`); continue; }
  try { new Model(obj).validate(); } catch (e) { bad(where, `schema: ${e.message}`); }
}

const workloads = [...(byKind.Deployment || []), ...(byKind.StatefulSet || []), ...(byKind.Job || [])];
const subset = (a, b) => Object.entries(a || {}).every(([k, v]) => b && b[k] === v);
for (const w of workloads) {
  const where = `${w.kind}/${w.metadata.name}`;
  const pod = w.spec.template;
  if (w.kind !== 'Job' && !subset(w.spec.selector.matchLabels, pod.metadata.labels)) {
    bad(where, 'selector.matchLabels do not match the pod template labels');
  }
  for (const c of pod.spec.containers) {
    const program = (c.command || [])[0];
    if (!['squeeze', 'squeeze-coordinator', 'squeeze-worker'].includes(program)) {
      bad(where, `container ${c.name} runs ${program}, not one of the image's programs`);
    }
    for (const a of c.args || []) {
      if (a.startsWith('--')) console.log(`FLAG ${program} ${a.split('=')[0]}`);
    }
  }
}

// Services select some workload's pods, and name container ports those pods have.
for (const s of byKind.Service || []) {
  const where = `Service/${s.metadata.name}`;
  const pods = workloads.filter((w) => subset(s.spec.selector, w.spec.template.metadata.labels));
  if (pods.length === 0) { bad(where, 'selects no workload'); continue; }
  for (const p of s.spec.ports) {
    if (typeof p.targetPort !== 'string') continue;
    for (const w of pods) {
      const names = w.spec.template.spec.containers.flatMap((c) => (c.ports || []).map((q) => q.name));
      if (!names.includes(p.targetPort)) bad(where, `targetPort ${p.targetPort} is no port of ${w.kind}/${w.metadata.name}`);
    }
  }
}

// The coordinator: a StatefulSet with its claim mounted, gRPC health probes on the gRPC port.
const coord = (byKind.StatefulSet || []).find((s) => s.metadata.name === 'squeeze-coordinator');
if (!coord) bad('StatefulSet/squeeze-coordinator', 'missing');
else {
  const where = 'StatefulSet/squeeze-coordinator';
  const c = coord.spec.template.spec.containers[0];
  const claims = (coord.spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
  if (claims.length === 0) bad(where, 'no volumeClaimTemplates');
  for (const n of claims) {
    if (!(c.volumeMounts || []).some((m) => m.name === n)) bad(where, `claim ${n} is not mounted`);
  }
  const grpcPort = (c.ports || []).find((p) => p.name === 'grpc');
  if (!grpcPort) bad(where, 'no container port named grpc');
  const listen = (c.args || []).find((a) => a.startsWith('--listen='));
  if (!listen || !grpcPort || !listen.endsWith(`:${grpcPort.containerPort}`)) bad(where, '--listen does not match the grpc port');
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    if (!c[probe] || !c[probe].grpc || !grpcPort || c[probe].grpc.port !== grpcPort.containerPort) {
      bad(where, `${probe} is not a gRPC probe on port ${grpcPort && grpcPort.containerPort}`);
    }
  }
  const dataDir = (c.args || []).find((a) => a.startsWith('--data-dir='));
  const mount = (c.volumeMounts || [])[0];
  if (!dataDir || !mount || !dataDir.slice('--data-dir='.length).startsWith(mount.mountPath)) {
    bad(where, '--data-dir is not on the mounted volume');
  }
  const headless = (byKind.Service || []).find((s) => s.metadata.name === coord.spec.serviceName);
  if (!headless || headless.spec.clusterIP !== 'None') bad(where, `serviceName ${coord.spec.serviceName} is no headless Service`);
}

// Workers: grace period fits the SIGTERM checkpoint upload; GPU ones ask for GPUs.
const workers = (byKind.Deployment || []).filter((d) => d.spec.template.metadata.labels['app.kubernetes.io/component'] === 'worker');
if (workers.length < 2) bad('Deployment', 'expected a CPU and a GPU worker Deployment');
let gpuWorkers = 0;
for (const d of workers) {
  const where = `Deployment/${d.metadata.name}`;
  const spec = d.spec.template.spec;
  if (!(spec.terminationGracePeriodSeconds >= 300)) bad(where, 'terminationGracePeriodSeconds < 300 s: too short for the SIGTERM checkpoint upload');
  const res = spec.containers[0].resources || {};
  const gpuReq = res.requests && res.requests['nvidia.com/gpu'];
  const gpuLim = res.limits && res.limits['nvidia.com/gpu'];
  if (gpuReq !== undefined || gpuLim !== undefined) {
    gpuWorkers++;
    if (String(gpuReq) !== String(gpuLim)) bad(where, 'nvidia.com/gpu request and limit must be equal');
  }
}
if (gpuWorkers === 0) bad('Deployment', 'no worker requests nvidia.com/gpu');

// The batch Job: Never restarts in place, fails fast on the CLI's job-failed / usage exit codes.
for (const j of byKind.Job || []) {
  const where = `Job/${j.metadata.name}`;
  if (j.spec.template.spec.restartPolicy !== 'Never') bad(where, 'podFailurePolicy needs restartPolicy Never');
  const rule = ((j.spec.podFailurePolicy || {}).rules || []).find((r) => r.action === 'FailJob' && r.onExitCodes);
  const codes = rule ? [...rule.onExitCodes.values].sort().join(',') : '';
  if (codes !== '1,2') bad(where, `FailJob exit codes are [${codes}], expected [1,2] (job failed, bad usage)`);
  const args = j.spec.template.spec.containers[0].args || [];
  if (!args.includes('submit') || !args.includes('--watch')) bad(where, 'does not run `squeeze submit --watch`');
  if (!args.some((a) => a.startsWith('--idempotency-key='))) bad(where, 'a retried pod would submit a second job: no --idempotency-key');
}

const cm = (byKind.ConfigMap || []).find((c) => c.data && c.data['prometheus.yml']);
if (!cm) bad('ConfigMap', 'no prometheus.yml');
else fs.writeFileSync(path.join(path.dirname(renderedFile), 'prometheus.yml'), cm.data['prometheus.yml']);

if (problems.length) {
  for (const p of problems) console.error(`PROBLEM ${p}`);
  process.exit(1);
}
console.error(`validate_k8s: ${docs.length} objects valid`);
