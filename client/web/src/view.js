// DOM helpers and the job page's pieces: the stage timeline and the report's
// tables. Text always goes in as textContent (report values are data, never
// HTML).

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Per stage: first and last event time and the progress reached, in event
// order. `job` supplies the end time for a stage still open.
export function stageSpans(events, job) {
  const spans = [];
  const byName = new Map();
  for (const e of events) {
    if (e.kind !== 'PROGRESS' || !e.stage) continue;
    let s = byName.get(e.stage);
    if (!s) {
      s = { stage: e.stage, start: e.time_ms, end: e.time_ms, current: 0, total: 0, unit: e.unit };
      byName.set(e.stage, s);
      spans.push(s);
    }
    s.end = e.time_ms;
    s.current = e.current;
    s.total = e.total;
    s.unit = e.unit;
  }
  // A stage runs until the next one starts.
  for (let i = 0; i + 1 < spans.length; i++) spans[i].end = Math.max(spans[i].end, spans[i + 1].start);
  if (spans.length && job.end_time_ms) spans.at(-1).end = Math.max(spans.at(-1).end, job.end_time_ms);
  return spans;
}

export function renderTimeline(spans) {
  if (!spans.length) return el('p', { class: 'muted' }, 'No stage has reported progress yet.');
  const t0 = spans[0].start;
  const t1 = Math.max(...spans.map((s) => s.end), t0 + 1);
  return el('div', { class: 'timeline', 'data-testid': 'timeline' }, ...spans.map((s) => {
    const left = (100 * (s.start - t0)) / (t1 - t0);
    const width = (100 * (s.end - s.start)) / (t1 - t0);
    return el('div', { class: 'row', 'data-testid': 'stage', 'data-stage': s.stage },
      el('span', { class: 'mono' }, s.stage),
      el('div', { class: 'track' }, el('div', { class: 'span', style: `left:${left}%;width:${width}%` })),
      el('span', { class: 'muted' }, `${((s.end - s.start) / 1000).toFixed(2)} s · ${s.current}/${s.total} ${s.unit}`));
  }));
}

function cell(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(6);
  if (Array.isArray(v) && v.some((x) => x !== null && typeof x === 'object')) return `[${v.length} entries]`;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isScalar = (v) => v === null || typeof v !== 'object';

// A JSON value as tables: an object's scalar fields in one key/value table,
// an array of objects as one table (columns: the union of their scalar
// keys), nested objects as sub-sections. Depth-limited.
function renderValue(title, v, depth) {
  if (isScalar(v)) return el('table', {}, el('tbody', {}, el('tr', {}, el('th', {}, title), el('td', {}, cell(v)))));
  if (Array.isArray(v)) {
    if (v.every(isPlainObject) && v.length) {
      const cols = [...new Set(v.flatMap((o) => Object.keys(o).filter((k) => isScalar(o[k]) || Array.isArray(o[k]))))];
      return el('div', {}, el('h3', {}, title), el('table', { 'data-testid': 'report-table' },
        el('thead', {}, el('tr', {}, ...cols.map((c) => el('th', {}, c)))),
        el('tbody', {}, ...v.map((o) => el('tr', {}, ...cols.map((c) => el('td', {}, cell(o[c]))))))));
    }
    return el('table', {}, el('tbody', {}, el('tr', {}, el('th', {}, title), el('td', {}, v.map(cell).join(', ')))));
  }
  const scalars = Object.entries(v).filter(([, x]) => isScalar(x) || (Array.isArray(x) && x.every(isScalar)));
  const nested = Object.entries(v).filter(([, x]) => !(isScalar(x) || (Array.isArray(x) && x.every(isScalar))));
  return el('div', { 'data-section': title },
    el('h3', {}, title),
    scalars.length ? el('table', { 'data-testid': 'report-table' }, el('tbody', {},
      ...scalars.map(([k, x]) => el('tr', {}, el('th', {}, k), el('td', {}, Array.isArray(x) ? x.map(cell).join(', ') : cell(x))))))
      : null,
    depth < 3 ? nested.map(([k, x]) => renderValue(`${title} › ${k}`, x, depth + 1))
      : nested.map(([k, x]) => el('p', { class: 'muted' }, `${k}: ${cell(x)}`)));
}

export function renderReport(report) {
  if (!isPlainObject(report)) return el('pre', {}, JSON.stringify(report, null, 2));
  return el('div', { 'data-testid': 'report-tables' }, ...Object.entries(report).map(([k, v]) => renderValue(k, v, 0)));
}
