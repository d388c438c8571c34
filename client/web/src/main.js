// The Squeeze dashboard: jobs list with live progress (WatchJob over gRPC-web),
// a submit form, and a job page with the stage timeline, the report's tables,
// its Pareto plot (pareto.svg from the artifact) and a cancel button.
// Routes: #/ (jobs), #/job/<id>. ?mode=text switches to grpc-web-text.
//
// Browsers allow ~6 HTTP/1.1 connections per host, so at most MAX_WATCHES
// WatchJob streams are open at once (the job page's job, then the newest
// active jobs); every job's state is refreshed by ListJobs every 1.5 s.
import protoText from '../../../proto/squeeze/v1/service.proto';
import { SqueezeApi, loadTypes } from './api.js';
import { el, renderReport, renderTimeline, stageSpans } from './view.js';

const MAX_WATCHES = 3;
const ACTIVE = new Set(['QUEUED', 'RUNNING']);
const params = new URLSearchParams(location.search);
// A coordinator with --auth-config wants a bearer token: open the dashboard
// as /#token=TOKEN (a fragment never reaches the server or its logs). It is
// kept in sessionStorage (this tab only) and sent as `authorization: Bearer`.
const hashToken = new URLSearchParams(location.hash.slice(1)).get('token');
if (hashToken) {
  sessionStorage.setItem('squeezeToken', hashToken);
  history.replaceState(null, '', location.pathname + location.search);
}
const token = sessionStorage.getItem('squeezeToken');
const api = new SqueezeApi(loadTypes(protoText), '', {
  mode: params.get('mode') === 'text' ? 'text' : 'binary',
  headers: token ? { authorization: `Bearer ${token}` } : {},
});

const jobs = new Map();      // job_id -> Job
const progress = new Map();  // job_id -> latest PROGRESS event
const events = new Map();    // job_id -> [JobEvent] (watched jobs)
const watches = new Map();   // job_id -> AbortController
const reports = new Map();   // job_id -> { report, svgUrl } | { error }
let lastError = '';
let renderQueued = false;

function route() {
  const m = location.hash.match(/^#\/job\/([^/]+)$/);
  return m ? { page: 'job', id: decodeURIComponent(m[1]) } : { page: 'list' };
}

function setConn(text, isError) {
  const c = document.getElementById('conn');
  c.textContent = text;
  c.className = isError ? 'conn error' : 'conn';
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

// Percent done of a job: 100 when it succeeded, else the current stage's i/n.
function percent(job) {
  if (job.state === 'SUCCEEDED') return 100;
  const p = progress.get(job.job_id);
  if (!p || !p.total) return 0;
  return Math.max(0, Math.min(100, (100 * p.current) / p.total));
}

function progressBar(job) {
  const p = progress.get(job.job_id);
  const pct = percent(job);
  const label = job.state === 'SUCCEEDED' ? 'done'
    : p ? `${p.stage} · ${p.unit} ${p.current}/${p.total}` : job.state.toLowerCase();
  return el('div', { class: 'bar', 'data-testid': 'progress', 'data-percent': pct.toFixed(1), 'data-label': label },
    el('div', { class: 'fill', style: `width:${pct}%` }),
    el('span', { class: 'label' }, label));
}

function cancelButton(job) {
  return el('button', {
    class: 'danger', 'data-testid': 'cancel', disabled: !ACTIVE.has(job.state),
    onclick: async (ev) => {
      ev.preventDefault();
      ev.target.disabled = true;
      try {
        jobs.set(job.job_id, await api.cancelJob(job.job_id));
      } catch (e) {
        lastError = `cancel ${job.job_id}: ${e.grpcMessage || e.message}`;
      }
      scheduleRender();
    },
  }, 'Cancel');
}

function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString() : '—'; }

function parseLabels(text) {
  const out = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`label "${part}" is not key=value`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

let formState = { recipe: '', model: '', priority: '0', labels: '' };
let formSection = null;  // built once, so typing is never interrupted by a re-render

function submitForm() {
  if (formSection) return formSection;
  const input = (name, attrs = {}) => el('input', {
    name, value: formState[name], 'data-testid': `submit-${name}`,
    oninput: (e) => { formState[name] = e.target.value; }, ...attrs,
  });
  const status = el('div', { class: 'error-text', 'data-testid': 'submit-error' });
  const section = el('section', { 'data-testid': 'submit-form' },
    el('h2', {}, 'Submit a job'),
    el('form', {
      class: 'submit',
      onsubmit: async (e) => {
        e.preventDefault();
        status.textContent = '';
        try {
          const job = await api.submitJob({
            recipe_yaml: formState.recipe, model_digest: formState.model.trim(),
            priority: Number(formState.priority || 0), labels: parseLabels(formState.labels),
          });
          jobs.set(job.job_id, job);
          syncWatches();
          scheduleRender();
        } catch (err) {
          status.textContent = err.grpcMessage || err.message;
        }
      },
    },
    el('label', {}, 'Recipe (YAML)'),
    el('textarea', { name: 'recipe', 'data-testid': 'submit-recipe', oninput: (e) => { formState.recipe = e.target.value; } },
      formState.recipe),
    el('label', {}, 'Model digest'), input('model', { class: 'mono', placeholder: 'squeeze upload DIR prints it' }),
    el('label', {}, 'Priority'), input('priority', { type: 'number' }),
    el('label', {}, 'Labels'), input('labels', { placeholder: 'team=nlp, exp=7' }),
    el('span', {}), el('div', {}, el('button', { type: 'submit', 'data-testid': 'submit' }, 'Submit'), status)));
  formSection = section;
  return section;
}

// Prefills the model digest from the newest job (once, while empty).
function prefillModel() {
  const newest = [...jobs.values()][0];
  if (formSection && !formState.model && newest) {
    formState.model = newest.model_digest;
    formSection.querySelector('input[name=model]').value = formState.model;
  }
}

function listPage() {
  const rows = [...jobs.values()].map((j) => el('tr', { 'data-job-id': j.job_id },
    el('td', {}, el('a', { href: `#/job/${encodeURIComponent(j.job_id)}`, class: 'mono' }, j.job_id)),
    el('td', {}, el('span', { class: `state ${j.state}`, 'data-testid': 'state' }, j.state)),
    el('td', {}, progressBar(j)),
    el('td', {}, fmtTime(j.create_time_ms)),
    el('td', { class: 'muted' }, Object.entries(j.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')),
    el('td', {}, cancelButton(j))));
  return [
    el('section', {},
      el('h2', {}, `Jobs (${jobs.size})`),
      lastError ? el('div', { class: 'error-text' }, lastError) : null,
      el('table', { 'data-testid': 'jobs' },
        el('thead', {}, el('tr', {}, ...['Job', 'State', 'Progress', 'Created', 'Labels', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows))),
  ];
}

async function loadReport(id) {
  if (reports.has(id)) return;
  reports.set(id, { loading: true });
  try {
    const r = await api.getReport(id);
    const report = JSON.parse(r.report_json);
    let svgUrl = null;
    const svg = await api.artifactFile(id, 'pareto.svg');
    if (svg) svgUrl = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    reports.set(id, { report, svgUrl, digest: r.artifact_digest });
  } catch (e) {
    reports.set(id, { error: e.grpcMessage || e.message });
  }
  scheduleRender();
}

function jobPage(id) {
  const j = jobs.get(id);
  if (!j) return [el('section', {}, el('p', {}, `Loading job ${id}…`))];
  const evs = events.get(id) || [];
  const details = [
    ['Job', j.job_id], ['State', j.state], ['Model', j.model_digest], ['Created', fmtTime(j.create_time_ms)],
    ['Started', fmtTime(j.start_time_ms)], ['Ended', fmtTime(j.end_time_ms)],
    ['Attempts', `${j.attempts} of ${j.max_attempts}`], ['Artifact', j.artifact_digest || '—'],
  ];
  if (j.error) details.push(['Error', j.error]);
  const out = [
    el('section', { 'data-testid': 'job-page', 'data-job-id': id },
      el('h2', {}, el('span', {}, `Job ${id} `), el('span', { class: `state ${j.state}`, 'data-testid': 'state' }, j.state)),
      progressBar(j),
      el('table', {}, el('tbody', {}, ...details.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', { class: 'mono' }, String(v)))))),
      el('p', {}, cancelButton(j))),
    el('section', { 'data-testid': 'timeline-section' }, el('h2', {}, 'Stage timeline'),
      renderTimeline(stageSpans(evs, j))),
    el('section', {}, el('h2', {}, 'Events'),
      el('table', {}, el('tbody', {}, ...evs.filter((e) => e.kind !== 'PROGRESS').map((e) => el('tr', {},
        el('td', {}, fmtTime(e.time_ms)), el('td', {}, e.kind), el('td', {}, e.state), el('td', {}, e.message)))))),
  ];
  if (j.state === 'SUCCEEDED') {
    loadReport(id);
    const r = reports.get(id);
    out.push(el('section', { 'data-testid': 'report' }, el('h2', {}, 'Report'),
      !r || r.loading ? el('p', {}, 'Loading report…')
        : r.error ? el('p', { class: 'error-text' }, r.error)
          : [r.svgUrl ? el('div', { class: 'pareto' }, el('h3', {}, 'Pareto plot'),
            el('img', { src: r.svgUrl, alt: 'Pareto plot', 'data-testid': 'pareto' })) : null,
          renderReport(r.report)]));
  }
  return out;
}

let view = null;
function render() {
  const app = document.getElementById('app');
  if (!view) {
    view = el('div', {});
    app.replaceChildren(view, submitForm());
  }
  const r = route();
  formSection.style.display = r.page === 'list' ? '' : 'none';
  prefillModel();
  view.replaceChildren(...[].concat(r.page === 'job' ? jobPage(r.id) : listPage()).flat().filter(Boolean));
}

// Keeps WatchJob streams open for the jobs that matter (see the file comment).
function syncWatches() {
  const r = route();
  const want = [];
  if (r.page === 'job') want.push(r.id);
  for (const j of jobs.values()) {
    if (want.length >= MAX_WATCHES) break;
    if (ACTIVE.has(j.state) && !want.includes(j.job_id)) want.push(j.job_id);
  }
  for (const [id, ctrl] of watches) {
    if (!want.includes(id)) { ctrl.abort(); watches.delete(id); }
  }
  for (const id of want) {
    if (watches.has(id)) continue;
    const ctrl = new AbortController();
    watches.set(id, ctrl);
    const list = [];
    events.set(id, list);
    api.watchJob(id, 0, (e) => {
      list.push(e);
      if (e.kind === 'PROGRESS') progress.set(id, e);
      const j = jobs.get(id);
      if (j) jobs.set(id, { ...j, last_seq: e.seq, state: e.kind === 'STATE' ? e.state : j.state });
      render();  // at once, not on the next frame: every step of a fast job shows
    }, { signal: ctrl.signal }).then(async () => {
      jobs.set(id, await api.getJob(id));  // final fields: end time, artifact, error
    }).catch((e) => {
      if (e.name === 'AbortError') return;
      lastError = `watch ${id}: ${e.grpcMessage || e.message}`;
      if (watches.get(id) === ctrl) watches.delete(id);  // retried by the next refresh
    }).finally(() => {
      // A finished watch stays in `watches` (its events are complete) unless it
      // failed; the job page re-watches if needed.
      if (ctrl.signal.aborted) return;
      scheduleRender();
    });
  }
}

async function refresh() {
  try {
    const resp = await api.listJobs({ page_size: 50 });
    for (const j of resp.jobs) {
      const old = jobs.get(j.job_id);
      // A live watch may be ahead of ListJobs (it saw the newer event).
      if (old && ACTIVE.has(j.state) && old.last_seq > j.last_seq) continue;
      jobs.set(j.job_id, j);
    }
    const r = route();
    if (r.page === 'job' && !jobs.has(r.id)) jobs.set(r.id, await api.getJob(r.id));
    // Newest first, as ListJobs returns them.
    const sorted = [...jobs.values()].sort((a, b) => b.create_time_ms - a.create_time_ms);
    jobs.clear();
    for (const j of sorted) jobs.set(j.job_id, j);
    setConn(`connected (${api.client.mode})`, false);
  } catch (e) {
    setConn(`error: ${e.grpcMessage || e.message}`, true);
  }
  syncWatches();
  scheduleRender();
}

window.addEventListener('hashchange', () => { syncWatches(); refresh(); });
refresh();
setInterval(refresh, 1500);
