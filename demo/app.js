// The Typed Data Explorer: one signed unit (explorer@0.1.0) fetched, verified
// and run in a Worker by runtime/js/molt.js; datasets loaded into it behind
// explicit handles; filter → map → aggregate → sort/page run as unit calls.
// docs/demo.md explains every panel and metric.
//
// URL parameters: dataset=ID (a catalogue id, or "none"; default
// flights-200k-arrow), budget=N (the unit's step budget: work units per
// poll; default STEP_BUDGET).
import { openRegistry, loadUnit, fetchBytes, formatBytes, sha256, MoltError } from './molt.js';
import { parseExpr, buildPredicate, literal, CONDITION_OPS, ExprError } from './expr.js';
import { sniff, arrowStream } from './formats.js';

const UNIT = { name: 'explorer', version: '0.1.0', target: 'wasm32-wasi' };
const RUN_URL = `./run/${UNIT.name}@${UNIT.version}/run`;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const ms = (x) => (x === undefined || x === null ? '–' : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(1)} ms`);
const TYPES = ['int', 'float', 'string', 'bool'];
const AGG_OPS = ['count', 'sum', 'mean', 'min', 'max'];
const MAX_ERRORS = 100;
// Work units per poll. The unit's own default (65536) lets one poll of a JSON
// load run for 60-180 ms; at 8192 a poll stays within a few ms (so Cancel
// lands at once) and throughput is the same (docs/demo.md).
const STEP_BUDGET = 8192;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}
const options = (sel, list, value) => {
  sel.replaceChildren(...list.map(([v, label]) => el('option', { value: v, text: label ?? v })));
  if (value !== undefined && list.some(([v]) => v === value)) sel.value = value;
};

// ---------------------------------------------------------------- state
const S = {
  registry: null, unit: null, budget: undefined,
  catalogue: [],
  dataset: null,          // {label, format, bytes, schema?}
  columns: [],            // the loaded dataset's columns
  base: 0,                // its handle
  made: [],               // handles the last run made (dropped before the next)
  final: 0, finalColumns: [], total: 0, offset: 0, pageSize: 50, sortKeys: [],
  busy: null,             // {cancel} of the call in flight
  lat: new Map(),         // operation → [ms]
};

// ---------------------------------------------------------------- errors and states
function showError(e) {
  $('error').hidden = false;
  $('error-code').textContent = e instanceof MoltError ? e.code : e?.name ?? 'Error';
  $('error-message').textContent = e?.message ?? String(e);
}

function describe(e) {
  if (e instanceof MoltError) return `${e.code}: ${e.message}`;
  if (e instanceof ExprError) return e.message;
  return `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
}

// data-seq counts the changes, so a test can wait for the next one.
function setState(id, state, text) {
  const p = $(id);
  p.dataset.state = state;
  p.dataset.seq = String(Number(p.dataset.seq ?? 0) + 1);
  p.textContent = text;
}

// ---------------------------------------------------------------- unit loading
function setProgress(loaded, total) {
  const bar = $('progress');
  if (total) {
    const pct = Math.min(100, Math.floor((loaded / total) * 100));
    bar.setAttribute('aria-valuenow', String(pct));
    bar.classList.remove('indeterminate');
    bar.querySelector('.fill').style.width = `${pct}%`;
    $('progress-label').textContent = `Downloading unit: ${formatBytes(loaded)} / ${formatBytes(total)} (${pct}%)`;
  } else {
    bar.removeAttribute('aria-valuenow');
    bar.classList.add('indeterminate');
    $('progress-label').textContent = `Downloading unit: ${formatBytes(loaded)}`;
  }
}

// Stages only move forward: the host fetches the schemas and the artifact
// at once, so their events interleave.
const order = [...document.querySelectorAll('#checks li')].map((li) => li.dataset.stage);
let reached = -1;
function reach(stage) {
  const i = stage === 'ready' ? order.length : order.indexOf(stage);
  if (i < 0 || i < reached) return;
  reached = i;
  document.querySelectorAll('#checks li').forEach((li, j) => {
    li.classList.toggle('done', j < i);
    li.classList.toggle('active', j === i);
  });
}

// Marks the check that failed: the one the error names, else the active one.
function failStage(e) {
  const msg = e?.message ?? '';
  const named = [['signature', /manifest signature of /], ['manifest', /manifest of /], ['artifact', /artifact of /],
    ['schemas', /schema [\w.]+ v\d/], ['index', /index of /], ['snapshot', /snapshot\.json/]].find(([, re]) => re.test(msg))?.[0];
  const li = (named && document.querySelector(`#checks li[data-stage="${named}"]`)) || document.querySelector('#checks li.active');
  document.querySelectorAll('#checks li.active').forEach((x) => x.classList.remove('active'));
  li?.classList.remove('done');
  li?.classList.add('failed');
  $('progress').classList.add('failed');
}

const labels = {
  snapshot: 'Verifying the registry snapshot…', index: 'Checking the index…',
  signature: 'Fetching the manifest signature…', manifest: 'Verifying the manifest…',
  schemas: 'Checking schemas…', compile: 'Compiling…', init: 'Initialising…',
};

async function openTrusted() {
  const keysBytes = await fetchBytes(new URL('./trusted-keys.json', location.href), { maxSize: 64 * 1024, what: 'trusted keys' });
  let trustedKeys;
  try {
    trustedKeys = JSON.parse(new TextDecoder().decode(keysBytes));
  } catch (e) {
    throw new MoltError('KEY_INVALID', `trusted-keys.json: expected a JSON array of minisign .pub texts (${e.message}); rebuild the site with scripts/site`);
  }
  return openRegistry({ url: './registry/', trustedKeys });
}

async function loadExplorer(showProgress) {
  let artifactTotal = 0;
  const unit = await loadUnit(S.registry, {
    ...UNIT,
    stepBudget: Number(params.get('budget') ?? STEP_BUDGET),
    onProgress(p) {
      if (!showProgress) return;
      reach(p.stage);
      if (p.stage === 'artifact' && p.loaded !== undefined) {
        artifactTotal = p.total ?? 0;
        setProgress(p.loaded, p.total);
      } else if (labels[p.stage]) {
        $('progress-label').textContent = labels[p.stage];
      }
    },
  });
  if (showProgress) {
    reach('ready');
    setProgress(unit.metrics.artifactBytes, artifactTotal || unit.metrics.artifactBytes);
    $('progress-label').textContent += ' · verified, compiled and running';
  }
  return unit;
}

function showUnitMetrics(unit) {
  const m = unit.metrics;
  $('m-cold').textContent = ms(m.totalMs);
  $('m-cold').title = `fetch ${ms(m.fetchMs)}, verify ${ms(m.verifyMs)}, compile ${ms(m.compileMs)}, init ${ms(m.initMs)}${m.cached ? `; cache: ${m.cached}` : ''}`;
  $('m-fv').textContent = `${ms(m.fetchMs)} · ${ms(m.verifyMs)}`;
  $('m-ci').textContent = `${ms(m.compileMs)} · ${ms(m.initMs)}`;
  $('m-size').textContent = formatBytes(m.artifactBytes);
  $('m-size').title = `${m.artifactBytes} bytes of wasm`;
  $('m-bytes').textContent = formatBytes(m.bytesFetched);
  $('m-key').textContent = unit.signedBy;
  $('m-manifest').textContent = unit.manifestDigest;
  $('unit-chip').textContent = `${unit.name}@${unit.version} · verified · ${m.worker ? 'Worker' : 'main thread'}`;
  $('unit-chip').classList.add('ok');
}

// gzip size of the verified module: the artifact blob again (the browser's
// cache), checked against the signed digest, through CompressionStream.
async function showGzip(unit) {
  try {
    const digest = unit.manifest.artifact.digest;
    const bytes = await fetchBytes(new URL(`./registry/blobs/sha256/${digest.slice(7)}`, location.href), { expectedSize: unit.manifest.artifact.size, what: 'artifact' });
    if (await sha256(bytes) !== digest) throw new Error('digest differs from the signed manifest');
    const gz = await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer();
    $('m-gzip').textContent = formatBytes(gz.byteLength);
    $('m-gzip').title = `${gz.byteLength} bytes (CompressionStream gzip of the ${bytes.byteLength} verified bytes)`;
  } catch (e) {
    $('m-gzip').textContent = 'n/a';
    $('m-gzip').title = e.message;
  }
}

async function showMemory() {
  try {
    const s = await S.unit?.stats?.();
    if (s?.memoryBytes) { $('m-memory').textContent = formatBytes(s.memoryBytes); $('m-memory').title = `${s.memoryBytes} bytes of wasm memory`; }
  } catch { /* a closed or broken unit: keep the last figure */ }
}

// A second load of the same unit in this page: what a warm start costs.
async function warmStart() {
  const b = $('reload-unit');
  b.disabled = true;
  try {
    const u = await loadExplorer(false);
    const m = u.metrics;
    $('m-warm').textContent = ms(m.totalMs);
    $('m-warm').title = `cache: ${m.cached || 'none'}; fetch ${ms(m.fetchMs)}, verify ${ms(m.verifyMs)}, compile ${ms(m.compileMs)}, init ${ms(m.initMs)}`;
    u.close?.();
  } catch (e) {
    $('m-warm').textContent = 'failed';
    $('m-warm').title = describe(e);
  } finally {
    b.disabled = false;
  }
}

// ---------------------------------------------------------------- latency
function record(op, t) {
  if (!S.lat.has(op)) S.lat.set(op, []);
  S.lat.get(op).push(t);
  const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
  $('latency').tBodies[0].replaceChildren(...[...S.lat].map(([name, xs]) =>
    el('tr', { 'data-op': name }, el('th', { scope: 'row', text: name }), el('td', { text: q(xs, 50).toFixed(2) }),
      el('td', { text: q(xs, 95).toFixed(2) }), el('td', { text: String(xs.length) }))));
}

// One unit call, cancellable from the Cancel button and Esc.
async function call(fn, value, label = fn, line = 'op-state') {
  const t = performance.now();
  const c = S.unit.call(fn, value);
  S.busy = { cancel: c.cancel, fn, t, line };
  $('cancel').disabled = false;
  try {
    const r = await c.result;
    record(label, performance.now() - t);
    return r;
  } finally {
    S.busy = null;
    $('cancel').disabled = true;
  }
}

function cancelNow() {
  if (!S.busy) return;
  S.busy.cancel();
  setState(S.busy.line, 'cancelling', `Cancelling ${S.busy.fn}…`);
}

async function drop(h) {
  if (!h) return;
  try { await S.unit.call('drop', { handle: h }).result; } catch { /* already gone (e.g. a fresh instance) */ }
}

// ---------------------------------------------------------------- datasets
async function loadCatalogue() {
  const bytes = await fetchBytes(new URL('./data/datasets.json', location.href), { maxSize: 1 << 20, what: 'dataset catalogue' });
  S.catalogue = JSON.parse(new TextDecoder().decode(bytes)).datasets;
  const sel = $('dataset');
  sel.replaceChildren(el('option', { value: '', text: 'Choose a dataset…' }),
    ...S.catalogue.map((d) => el('option', { value: d.id, text: `${d.title} · ${d.format.toUpperCase()} · ${formatBytes(d.bytes)}` })));
  sel.disabled = false;
}

async function fetchWithProgress(url, label) {
  const r = await fetch(url);
  if (!r.ok) throw new MoltError('FETCH_FAILED', `${url}: HTTP ${r.status}; rebuild the site with scripts/site`);
  const total = Number(r.headers.get('content-length')) || 0;
  const reader = r.body.getReader();
  const parts = [];
  let n = 0, last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    n += value.byteLength;
    if (performance.now() - last > 50) {
      last = performance.now();
      setState('load-state', 'loading', `Fetching ${label}: ${formatBytes(n)}${total ? ` / ${formatBytes(total)}` : ''}`);
    }
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

async function pickCatalogue(id) {
  const d = S.catalogue.find((x) => x.id === id);
  if (!d) return;
  $('dataset').value = id;
  $('dataset-note').textContent = `${d.description} ${d.rows.toLocaleString('en')} rows · ${d.source}`;
  try {
    setState('load-state', 'loading', `Fetching ${d.file}…`);
    const bytes = await fetchWithProgress(new URL(`./data/${d.file}`, location.href), d.file);
    await loadDataset({ label: d.file, format: d.format, bytes });
  } catch (e) {
    setState('load-state', 'error', describe(e));
  }
}

async function pickFile(file) {
  if (!file) return;
  $('dataset').value = '';
  try {
    setState('load-state', 'loading', `Reading ${file.name}…`);
    const bytes = new Uint8Array(await file.arrayBuffer());
    const format = sniff(file.name, bytes);
    $('dataset-note').textContent = `Your file ${file.name}: ${formatBytes(bytes.byteLength)}, read as ${format.toUpperCase()}.`;
    await loadDataset({ label: file.name, format, bytes });
  } catch (e) {
    setState('load-state', 'error', describe(e));
  }
}

// Loads `ds` (with ds.schema when given) into a new handle; shows the
// schema, or the validation errors.
async function loadDataset(ds) {
  if (!S.unit) { setState('load-state', 'error', 'The unit is not loaded (see the error above): nothing can run.'); return; }
  if (S.busy) { setState('load-state', 'error', 'An operation is running: cancel it (Esc) first.'); return; }
  await resetHandles();
  S.dataset = ds;
  setRunnable(false);
  clearResults();
  S.columns = [];
  $('validation').hidden = true;
  $('schema-form').hidden = true;
  $('schema-empty').hidden = false;
  $('schema-empty').textContent = `Loading ${ds.label}…`;
  for (const id of ['filter-rows', 'map-rows', 'agg-rows', 'agg-by', 'sort-rows']) $(id).replaceChildren();
  setState('op-state', 'idle', `Loading ${ds.label}…`);
  const data = ds.format === 'arrow' ? arrowStream(ds.bytes) : ds.bytes;
  setState('load-state', 'loading', `Loading ${ds.label} (${formatBytes(ds.bytes.byteLength)}) into the unit… Esc cancels`);
  const t = performance.now();
  let r;
  try {
    r = await call('load', { format: ds.format, data, ...(ds.schema ? { schema: ds.schema } : {}), max_errors: MAX_ERRORS }, 'load', 'load-state');
  } catch (e) {
    if (e.code === 'CANCELLED') setState('load-state', 'cancelled', `Cancelled loading ${ds.label} after ${ms(performance.now() - t)}. Pick a dataset to go on.`);
    else setState('load-state', 'error', `${ds.label}: ${describe(e)}`);
    setState('op-state', 'idle', 'No dataset loaded.');
    $('schema-empty').textContent = 'No dataset loaded.';
    showMemory();
    return;
  }
  showMemory();
  S.columns = r.columns;
  renderSchema(r.columns.length ? r.columns : ds.schema ?? []);
  renderValidation(r);
  if (!r.handle || r.error_count > 0) {
    if (r.handle) { await drop(r.handle); }
    setState('load-state', 'invalid', `${ds.label}: ${r.error_count.toLocaleString('en')} value${r.error_count === 1 ? ' does' : 's do'} not match the schema; fix the file or the column types.`);
    setState('op-state', 'idle', 'The dataset has validation errors: no operation runs on it.');
    clearResults();
    return;
  }
  S.base = r.handle;
  setState('load-state', 'ready', `${ds.label}: ${r.rows.toLocaleString('en')} rows × ${r.columns.length} columns, ${ds.schema ? 'validated against your schema' : 'types inferred'} in ${ms(performance.now() - t)}.`);
  refreshBuilders(true);
  setRunnable(true);
  await runPipeline();
}

async function resetHandles() {
  const hs = [...S.made, S.base];
  S.made = []; S.base = 0; S.final = 0;
  for (const h of hs) await drop(h);
}

// ---------------------------------------------------------------- schema and validation
function renderSchema(columns) {
  $('schema-empty').hidden = true;
  $('schema-form').hidden = false;
  $('schema-table').tBodies[0].replaceChildren(...columns.map((c, i) => {
    const type = el('select', { 'aria-label': `type of ${c.name}`, 'data-col': c.name });
    options(type, TYPES.map((t) => [t]), c.type);
    const nul = el('input', { type: 'checkbox', checked: c.nullable, 'aria-label': `${c.name} may be null` });
    return el('tr', { 'data-col': c.name }, el('th', { scope: 'row', text: c.name, title: `column ${i + 1}` }), el('td', {}, type), el('td', {}, nul));
  }));
}

function editedSchema() {
  return [...$('schema-table').tBodies[0].rows].map((tr) => ({
    name: tr.dataset.col, type: tr.querySelector('select').value, nullable: tr.querySelector('input').checked,
  }));
}

function renderValidation(r) {
  const box = $('validation');
  if (!r.error_count) { box.hidden = true; return; }
  box.hidden = false;
  $('validation-title').textContent = `${r.error_count.toLocaleString('en')} validation error${r.error_count === 1 ? '' : 's'}`;
  $('errors-table').tBodies[0].replaceChildren(...r.errors.map((e) =>
    el('tr', {}, el('td', { class: 'num', text: String(e.row) }), el('td', { text: e.column }), el('td', { text: e.expected }),
      el('td', {}, el('code', { text: e.found })))));
  const more = r.error_count - r.errors.length;
  $('errors-more').textContent = more > 0 ? `and ${more.toLocaleString('en')} more` : '';
}

// ---------------------------------------------------------------- the operation builders
const numeric = (c) => c.type === 'int' || c.type === 'float';

// Columns after the enabled map step (what aggregate can use).
function mappedColumns() {
  const cols = [...S.columns];
  if ($('map-on').checked) for (const r of mapRows()) if (r.name && !cols.some((c) => c.name === r.name)) cols.push({ name: r.name, type: 'float', nullable: true, derived: true });
  return cols;
}
const aggName = (a) => a.as || (a.column ? `${a.op}_${a.column}` : 'count');
// Columns the page shows (what sort keys can use).
function finalNames() {
  if (!$('agg-on').checked) return mappedColumns().map((c) => c.name);
  return [...aggBy(), ...aggRows().map(aggName)];
}

function condRow(cols, init = {}) {
  const c0 = cols.find((c) => c.name === init.column) ?? cols.find(numeric) ?? cols[0];
  const col = el('select', { 'aria-label': 'column', class: 'col' });
  options(col, cols.map((c) => [c.name, `${c.name} (${c.type})`]), c0?.name);
  const op = el('select', { 'aria-label': 'comparison', class: 'cmp' });
  options(op, CONDITION_OPS, init.op ?? (c0 && numeric(c0) ? 'gt' : 'contains'));
  const value = el('input', { 'aria-label': 'value', class: 'val', value: init.value ?? '', placeholder: 'value', spellcheck: false });
  const not = el('input', { type: 'checkbox', class: 'not', checked: !!init.not });
  const sync = () => { value.hidden = op.value === 'is_null' || op.value === 'not_null'; };
  op.addEventListener('change', sync);
  sync();
  const li = el('li', {}, el('label', { class: 'not-label', title: 'negate this condition' }, not, ' not'), col, op, value,
    el('button', { type: 'button', class: 'icon', 'aria-label': 'remove condition', text: '×', onclick: () => { li.remove(); } }));
  return li;
}
function condRows() {
  return [...$('filter-rows').children].map((li) => ({
    not: li.querySelector('.not').checked, column: li.querySelector('.col').value,
    op: li.querySelector('.cmp').value, value: li.querySelector('.val').value,
  }));
}

function mapRow(init = {}) {
  const name = el('input', { 'aria-label': 'new column name', class: 'name', value: init.name ?? '', placeholder: 'name', spellcheck: false });
  const expr = el('input', { 'aria-label': 'expression', class: 'expr', value: init.expr ?? '', placeholder: 'expression, e.g. delay * 2 + 1', spellcheck: false });
  const msg = el('p', { class: 'field-error', 'aria-live': 'polite' });
  const check = () => {
    msg.textContent = '';
    expr.removeAttribute('aria-invalid');
    if (!expr.value.trim()) return;
    try { parseExpr(expr.value, S.columns.map((c) => c.name)); } catch (e) { msg.textContent = e.message; expr.setAttribute('aria-invalid', 'true'); }
  };
  expr.addEventListener('input', check);
  const li = el('li', {}, name, el('span', { class: 'eq', text: '=' }), expr,
    el('button', { type: 'button', class: 'icon', 'aria-label': 'remove column', text: '×', onclick: () => { li.remove(); refreshBuilders(); } }), msg);
  return li;
}
function mapRows() {
  return [...$('map-rows').children].map((li) => ({ name: li.querySelector('.name').value.trim(), expr: li.querySelector('.expr').value }));
}

function aggRow(cols, init = {}) {
  const op = el('select', { 'aria-label': 'aggregate', class: 'aop' });
  options(op, AGG_OPS.map((o) => [o]), init.op ?? 'count');
  const col = el('select', { 'aria-label': 'of column', class: 'acol' });
  const as = el('input', { 'aria-label': 'output name', class: 'as', value: init.as ?? '', placeholder: 'name (optional)', spellcheck: false });
  const fill = () => {
    const keep = col.value || init.column;
    const list = op.value === 'count' ? [['', 'rows'], ...cols.map((c) => [c.name])] : cols.filter((c) => op.value === 'min' || op.value === 'max' || numeric(c) || c.derived).map((c) => [c.name]);
    options(col, list, keep);
  };
  op.addEventListener('change', () => { fill(); refreshSort(); });
  col.addEventListener('change', refreshSort);
  as.addEventListener('input', refreshSort);
  fill();
  const li = el('li', {}, op, el('span', { class: 'eq', text: 'of' }), col, as,
    el('button', { type: 'button', class: 'icon', 'aria-label': 'remove aggregate', text: '×', onclick: () => { li.remove(); refreshSort(); } }));
  return li;
}
function aggRows() {
  return [...$('agg-rows').children].map((li) => {
    const a = { op: li.querySelector('.aop').value };
    const c = li.querySelector('.acol').value;
    if (c) a.column = c;
    const as = li.querySelector('.as').value.trim();
    if (as) a.as = as;
    return a;
  });
}
function aggBy() { return [...$('agg-by').querySelectorAll('input:checked')].map((i) => i.value); }

function sortRow(names, init = {}) {
  const col = el('select', { 'aria-label': 'sort column', class: 'scol' });
  options(col, names.map((n) => [n]), init.column);
  const dir = el('select', { 'aria-label': 'direction', class: 'sdir' });
  options(dir, [['asc', 'ascending'], ['desc', 'descending']], init.desc ? 'desc' : 'asc');
  const li = el('li', {}, col, dir, el('button', { type: 'button', class: 'icon', 'aria-label': 'remove sort key', text: '×', onclick: () => li.remove() }));
  return li;
}
function sortRows() {
  return [...$('sort-rows').children].map((li) => ({ column: li.querySelector('.scol').value, desc: li.querySelector('.sdir').value === 'desc' }));
}

// Keeps every select's choices in step with the dataset and the steps before it.
function refreshBuilders(fresh = false) {
  const cols = S.columns;
  if (fresh) {
    $('filter-rows').replaceChildren(condRow(cols));
    $('map-rows').replaceChildren(mapRow());
    $('agg-rows').replaceChildren(aggRow(cols));
    $('sort-rows').replaceChildren();
    for (const id of ['filter-on', 'map-on', 'agg-on']) $(id).checked = false;
  } else {
    for (const li of $('filter-rows').children) {
      const s = li.querySelector('.col'), v = s.value;
      options(s, cols.map((c) => [c.name, `${c.name} (${c.type})`]), v);
    }
  }
  const mcols = mappedColumns();
  const by = new Set(aggBy());
  $('agg-by').replaceChildren(...mcols.map((c) => el('label', { class: 'chip-toggle' },
    el('input', { type: 'checkbox', value: c.name, checked: by.has(c.name), onchange: refreshSort }), c.name)));
  for (const li of $('agg-rows').children) {
    const init = { column: li.querySelector('.acol').value };
    const fresh2 = aggRow(mcols, { op: li.querySelector('.aop').value, column: init.column, as: li.querySelector('.as').value });
    li.replaceWith(fresh2);
  }
  refreshSort();
}

function refreshSort() {
  const names = finalNames();
  for (const li of $('sort-rows').children) {
    const s = li.querySelector('.scol'), v = s.value;
    options(s, names.map((n) => [n]), v);
  }
}

// The enabled steps, as `run` takes them (and the handle calls use).
function buildSteps() {
  const steps = [];
  if ($('filter-on').checked) {
    const where = buildPredicate($('filter-match').value, condRows(), S.columns);
    if (where) steps.push({ op: 'filter', where });
  }
  if ($('map-on').checked) {
    const names = S.columns.map((c) => c.name);
    const columns = [];
    for (const [i, r] of mapRows().entries()) {
      if (!r.name && !r.expr.trim()) continue;
      if (!r.name) throw new ExprError(`derived column ${i + 1}: give it a name`);
      if (names.includes(r.name)) throw new ExprError(`derived column ${i + 1}: ${JSON.stringify(r.name)} is already a column; pick another name`);
      try { columns.push({ name: r.name, expr: parseExpr(r.expr, names) }); } catch (e) { throw new ExprError(`derived column ${JSON.stringify(r.name)}: ${e.message}`); }
      names.push(r.name);
    }
    if (columns.length) steps.push({ op: 'map', columns });
  }
  if ($('agg-on').checked) {
    const aggs = aggRows();
    if (!aggs.length) throw new ExprError('group and aggregate: add at least one aggregate (e.g. count of rows)');
    steps.push({ op: 'aggregate', by: aggBy(), aggs });
  }
  return steps;
}

function pageRequest() {
  const names = finalNames();
  const sort = sortRows();
  for (const k of sort) if (!names.includes(k.column)) throw new ExprError(`sort key ${JSON.stringify(k.column)} is not a column of the result (${names.join(', ')})`);
  return { sort, limit: Number($('page-size').value) };
}

// ---------------------------------------------------------------- running
function setRunnable(on) {
  $('run').disabled = !on;
  $('sym-run').disabled = !on;
}

async function runPipeline() {
  if (!S.base || S.busy) return;
  let steps, page;
  try {
    steps = buildSteps();
    page = pageRequest();
  } catch (e) {
    setState('op-state', 'error', describe(e));
    return;
  }
  setRunnable(false);
  const t0 = performance.now();
  const old = S.made;
  S.made = [];
  S.final = 0;
  for (const h of old) await drop(h);
  let step = '';
  try {
    let h = S.base, cols = S.columns;
    for (const s of steps) {
      step = s.op;
      setState('op-state', 'running', `Running ${s.op}… Esc cancels`);
      if (s.op === 'filter') {
        const r = await call('filter', { handle: h, where: s.where });
        h = r.handle;
      } else if (s.op === 'map') {
        const r = await call('map', { handle: h, columns: s.columns });
        h = r.handle; cols = r.columns;
      } else {
        // The groups come back through paginate: ask for no values here.
        const r = await call('aggregate', { handle: h, by: s.by, aggs: s.aggs, keep: true, format: 'arrow' });
        h = r.handle; cols = r.columns;
      }
      S.made.push(h);
    }
    S.final = h; S.finalColumns = cols; S.offset = 0;
    S.sortKeys = page.sort; S.pageSize = page.limit;
    step = 'paginate';
    await showPage(t0);
  } catch (e) {
    failOp(e, step, t0);
  } finally {
    setRunnable(true);
    showMemory();
  }
}

function failOp(e, step, t0) {
  if (e?.code === 'CANCELLED') setState('op-state', 'cancelled', `Cancelled ${step} after ${ms(performance.now() - t0)}. The unit is ready: run again.`);
  else setState('op-state', 'error', `${step ? `${step}: ` : ''}${describe(e)}`);
}

async function showPage(t0 = performance.now()) {
  setState('op-state', 'running', 'Fetching the page… Esc cancels');
  const r = await call('paginate', { handle: S.final, sort: S.sortKeys, offset: S.offset, limit: S.pageSize, format: 'msgpack' });
  S.total = r.total;
  renderTable(r);
  setState('op-state', 'done', `Done in ${ms(performance.now() - t0)}: ${r.total.toLocaleString('en')} rows.`);
}

async function turnPage(delta) {
  if (!S.final || S.busy) return;
  const next = S.offset + delta * S.pageSize;
  if (next < 0 || next >= S.total) return;
  const keep = S.offset;
  S.offset = next;
  try { await showPage(); } catch (e) { S.offset = keep; failOp(e, 'paginate', performance.now()); }
}

function clearResults() {
  $('result-table').tHead.replaceChildren();
  $('result-table').tBodies[0].replaceChildren();
  $('result-total').textContent = '–';
  $('page-info').textContent = '–';
  $('prev').disabled = $('next').disabled = true;
}

function renderTable(r) {
  const cols = r.columns;
  const values = r.data ? r.data.map((d) => d.int ?? d.float ?? d.string ?? d.bool ?? []) : cols.map(() => []);
  $('result-table').tHead.replaceChildren(el('tr', {}, ...cols.map((c) =>
    el('th', { scope: 'col', class: numeric(c) ? 'num' : '' }, c.name, el('span', { class: `type t-${c.type}`, text: c.type, title: c.nullable ? 'nullable' : 'never null' })))));
  const rows = [];
  for (let i = 0; i < r.rows; i++) {
    rows.push(el('tr', {}, ...cols.map((c, j) => {
      const v = values[j][i];
      if (v === null || v === undefined) return el('td', { class: 'null', text: 'null' });
      return el('td', { class: numeric(c) ? 'num' : c.type === 'bool' ? 'bool' : '', text: String(v) });
    })));
  }
  $('result-table').tBodies[0].replaceChildren(...rows);
  $('result-total').textContent = r.total.toLocaleString('en');
  const from = r.rows ? S.offset + 1 : 0, to = S.offset + r.rows;
  $('page-info').textContent = `${from.toLocaleString('en')}–${to.toLocaleString('en')} of ${r.total.toLocaleString('en')}`;
  $('prev').disabled = S.offset === 0;
  $('next').disabled = to >= r.total;
}

// ---------------------------------------------------------------- symmetry
async function compare() {
  if (!S.dataset || S.busy) return;
  const v = $('sym-verdict');
  let steps, page;
  try {
    steps = buildSteps();
    page = pageRequest();
  } catch (e) {
    setState('sym-verdict', 'error', describe(e));
    return;
  }
  const ds = S.dataset;
  const value = {
    dataset: { format: ds.format, data: ds.format === 'arrow' ? arrowStream(ds.bytes) : ds.bytes, ...(ds.schema ? { schema: ds.schema } : {}), max_errors: MAX_ERRORS },
    steps: [...steps, { op: 'paginate', sort: page.sort, offset: S.offset, limit: page.limit }],
    format: 'msgpack',
  };
  $('sym-run').disabled = true;
  $('sym-browser').textContent = $('sym-server').textContent = '…';
  $('sym-browser-ms').textContent = $('sym-server-ms').textContent = '';
  setState('sym-verdict', 'running', 'Running the request in both builds…');
  try {
    const env = S.unit.encodeRequest('run', value);
    const id = S.unit.functions.get('run').id;
    const tb = performance.now();
    const c = S.unit.callEnvelope(id, env);
    S.busy = { cancel: c.cancel, fn: 'run', t: tb, line: 'sym-verdict' };
    $('cancel').disabled = false;
    let mine;
    try { mine = await c.result; } finally { S.busy = null; $('cancel').disabled = true; }
    const browserMs = performance.now() - tb;
    record('run (symmetry)', browserMs);
    const ts = performance.now();
    const resp = await fetch(RUN_URL, { method: 'POST', body: env, headers: { 'Content-Type': 'application/x-molt-envelope' } });
    const theirs = new Uint8Array(await resp.arrayBuffer());
    const serverMs = performance.now() - ts;
    if (!resp.ok) {
      let msg = new TextDecoder().decode(theirs.subarray(0, 2000));
      try { const j = JSON.parse(msg); msg = `${j.error}: ${j.message}`; } catch { /* not JSON */ }
      throw new MoltError('SERVER_RUN_FAILED', `POST ${RUN_URL}: HTTP ${resp.status}: ${msg}${resp.status === 404 ? ' (serve with molt serve --run explorer@0.1.0 ...; make demo does)' : ''}`);
    }
    const [a, b] = await Promise.all([sha256(mine.envelope), sha256(theirs)]);
    const kindA = mine.status === 1 ? 'result' : 'error', kindB = resp.headers.get('X-Molt-Result') ?? '?';
    $('sym-browser').textContent = a;
    $('sym-server').textContent = b;
    $('sym-browser-ms').textContent = ` ${kindA}, ${formatBytes(mine.envelope.byteLength)}, ${ms(browserMs)}`;
    const us = Number(resp.headers.get('X-Molt-Time-Us'));
    $('sym-server-ms').textContent = ` ${kindB}, ${formatBytes(theirs.byteLength)}, ${ms(serverMs)} round trip${us ? `, ${ms(us / 1000)} in the unit` : ''}`;
    if (a === b) setState('sym-verdict', 'equal', `Equal: the wasm and native builds returned the same ${mine.envelope.byteLength}-byte ${kindA} envelope.`);
    else setState('sym-verdict', 'different', `Different: ${mine.envelope.byteLength} bytes here (${kindA}), ${theirs.byteLength} from the server (${kindB}).`);
  } catch (e) {
    if (e?.code === 'CANCELLED') setState('sym-verdict', 'cancelled', 'Cancelled.');
    else setState('sym-verdict', 'error', describe(e));
  } finally {
    $('sym-run').disabled = !S.base;
    v.hidden = false;
  }
}

// ---------------------------------------------------------------- wiring
function wire() {
  $('dataset').addEventListener('change', (e) => { if (e.target.value) pickCatalogue(e.target.value); });
  $('file').addEventListener('change', (e) => pickFile(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); pickFile(e.dataTransfer.files[0]); });
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); } });
  drop.addEventListener('click', (e) => { if (e.target.tagName !== 'LABEL' && e.target.tagName !== 'INPUT') $('file').click(); });

  $('schema-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (S.dataset) loadDataset({ ...S.dataset, schema: editedSchema() });
  });
  $('infer').addEventListener('click', () => { if (S.dataset) loadDataset({ ...S.dataset, schema: undefined }); });

  $('filter-add').addEventListener('click', () => { $('filter-rows').append(condRow(S.columns)); $('filter-on').checked = true; });
  $('map-add').addEventListener('click', () => { $('map-rows').append(mapRow()); $('map-on').checked = true; });
  $('agg-add').addEventListener('click', () => { $('agg-rows').append(aggRow(mappedColumns())); $('agg-on').checked = true; refreshSort(); });
  $('sort-add').addEventListener('click', () => $('sort-rows').append(sortRow(finalNames())));
  // Editing inside a step turns it on.
  for (const [box, on] of [['filter-rows', 'filter-on'], ['map-rows', 'map-on'], ['agg-rows', 'agg-on'], ['agg-by', 'agg-on']])
    $(box).addEventListener('input', () => { $(on).checked = true; });
  for (const id of ['map-on', 'agg-on']) $(id).addEventListener('change', () => refreshBuilders());
  $('map-rows').addEventListener('change', () => refreshBuilders());

  $('ops').addEventListener('submit', (e) => { e.preventDefault(); runPipeline(); });
  $('cancel').addEventListener('click', cancelNow);
  $('prev').addEventListener('click', () => turnPage(-1));
  $('next').addEventListener('click', () => turnPage(1));
  $('reload-unit').addEventListener('click', warmStart);
  $('sym-run').addEventListener('click', compare);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && S.busy) { e.preventDefault(); cancelNow(); return; }
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runPipeline(); return; }
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName ?? '');
    if (!typing && e.key === '[') turnPage(-1);
    if (!typing && e.key === ']') turnPage(1);
  });
}

async function main() {
  S.registry = await openTrusted();
  const unit = await loadExplorer(true);
  S.unit = unit;
  showUnitMetrics(unit);
  showGzip(unit);
  showMemory();
  return unit;
}

wire();
main().then(async () => {
  document.body.dataset.state = 'ready';
  $('reload-unit').disabled = false;
  $('checks-box').open = false;
  try {
    await loadCatalogue();
  } catch (e) {
    setState('load-state', 'error', `dataset catalogue: ${describe(e)}`);
    return;
  }
  const want = params.get('dataset') ?? 'flights-200k-arrow';
  if (want !== 'none') await pickCatalogue(want);
  // A warm start too, once the page is idle (the button repeats it).
  if (!S.busy) await warmStart();
}, (e) => {
  document.body.dataset.state = 'error';
  failStage(e);
  options($('dataset'), [['', 'Unavailable: the unit was refused']]);
  $('drop').setAttribute('aria-disabled', 'true');
  $('drop').classList.add('disabled');
  setState('op-state', 'error', 'The unit was refused: nothing can run. See the error above.');
  showError(e);
  $('unit-chip').textContent = 'Unit refused';
  $('unit-chip').classList.add('bad');
});

// For tests and the console: the page's state (read-only use).
window.explorer = { state: S, literal };
