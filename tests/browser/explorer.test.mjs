// The Typed Data Explorer page (demo/) in headless Chromium, against
// `molt serve` of a site made by scripts/site, with explorer@0.1.0 also run
// natively by the server (--run) for the symmetry panel.
//
//   MOLT_SERVE_CMD="build/runtime/molt serve" SITE=build/test/site node tests/browser/explorer.test.mjs
//
// MOLT_SERVE_CMD is a command prefix; the test appends `--root DIR --port 0
// --run explorer@0.1.0 --registry REG --key PUB --cache TMP` (REG: where
// SITE/registry points; PUB: SITE/trusted-keys.json's first key, written to a
// temp file; TMP: a fresh cache folder).
// Optional: CHROMIUM. Screenshots go to build/screenshots/.
//
// Every figure the page shows is checked against values computed here, in
// plain JavaScript, from node_modules/vega-datasets/data/flights-200k.json:
// filter, map, aggregate, paginate (sort and pages), the Arrow and JSON
// copies of the dataset; then cancel of a long operation (the unit parsing
// the 9.9 MB JSON file), a user file with bad rows, a tampered unit, and the
// wasm/native symmetry panel.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve as startServer, stopServers } from './serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVE = (process.env.MOLT_SERVE_CMD ?? '').trim();
const SITE = process.env.SITE ? resolve(process.env.SITE) : '';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'build/screenshots');
const UNIT = { name: 'explorer', version: '0.1.0', target: 'wasm32-wasi' };

if (!SERVE || !SITE) {
  console.error('usage: MOLT_SERVE_CMD="PATH/molt serve" SITE=DIR node tests/browser/explorer.test.mjs');
  process.exit(2);
}
for (const [what, p] of [['SITE', join(SITE, 'index.html')], ['registry', join(SITE, 'registry/snapshot.json')],
  ['dataset', join(SITE, 'data/flights-200k.json')], ['browser', CHROMIUM]]) {
  if (!existsSync(p)) {
    console.error(`explorer.test: ${what}: ${p} does not exist${what === 'browser' ? ' (apt-get install chromium)' : ' (build it with scripts/site)'}`);
    process.exit(3);
  }
}

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok - ${name}`); } else { failed++; console.log(`not ok - ${name}${detail ? `\n  ${String(detail).replace(/\n/g, '\n  ')}` : ''}`); }
  return ok;
}
const sha = (b) => 'sha256:' + createHash('sha256').update(b).digest('hex');

// ---- expected values, computed independently from the JSON file
const flights = JSON.parse(readFileSync(join(SITE, 'data/flights-200k.json'), 'utf8'));
const N = flights.length;
const exp = {};
exp.filter = flights.filter((r) => r.delay > 15);
exp.compound = flights.filter((r) => !(r.distance >= 500 || r.delay <= 0)).length; // none of (distance ≥ 500, delay ≤ 0)
exp.sumX = flights.reduce((s, r) => s + r.delay * 2 + 1, 0);
{
  const m = new Map();
  for (const r of flights) {
    let g = m.get(r.distance);
    if (!g) m.set(r.distance, g = { distance: r.distance, count: 0, sum: 0 });
    g.count++; g.sum += r.delay;
  }
  exp.groups = [...m.values()].sort((a, b) => a.distance - b.distance).map((g) => ({ ...g, mean: g.sum / g.count }));
}
// Stable sort: distance descending, then delay ascending; ties keep file order.
exp.sorted = flights.map((r, i) => ({ ...r, i })).sort((a, b) => b.distance - a.distance || a.delay - b.delay || a.i - b.i);

// ---- the server
const serve = (root, extra = []) => startServer(SERVE, root, extra);

// ---- page helpers
const FINAL = ['done', 'error', 'cancelled'];
const LOADED = ['ready', 'error', 'invalid', 'cancelled'];
const seq = (page, id) => page.evaluate((i) => Number(document.getElementById(i).dataset.seq ?? 0), id);
/** Waits until #id's data-seq passes `after` with a state in `states`; returns {state, text}. */
async function waitFor(page, id, states, after, timeout = 60000) {
  await page.waitForFunction(([i, s, a]) => {
    const p = document.getElementById(i);
    return Number(p.dataset.seq ?? 0) > a && s.includes(p.dataset.state);
  }, [id, states, after], { timeout, polling: 20 });
  return page.evaluate((i) => ({ state: document.getElementById(i).dataset.state, text: document.getElementById(i).textContent }), id);
}
async function run(page) {
  const s = await seq(page, 'op-state');
  await page.click('#run');
  return waitFor(page, 'op-state', FINAL, s);
}
async function table(page) {
  return page.evaluate(() => ({
    head: [...document.querySelectorAll('#result-table thead th')].map((th) => th.firstChild.textContent),
    types: [...document.querySelectorAll('#result-table thead th .type')].map((s) => s.textContent),
    rows: [...document.querySelectorAll('#result-table tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent)),
    total: document.getElementById('result-total').textContent,
    info: document.getElementById('page-info').textContent,
  }));
}
async function openPage(ctx, url) {
  const page = await ctx.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 30000 });
  return { page, problems };
}
async function pickDataset(page, id) {
  const s = await seq(page, 'op-state');
  const l = await seq(page, 'load-state');
  await page.selectOption('#dataset', id);
  const st = await waitFor(page, 'load-state', LOADED, l);
  if (st.state !== 'ready') return st;
  await waitFor(page, 'op-state', FINAL, s);
  return st;
}
async function setFilter(page, on, match = 'all', conds = []) {
  await page.setChecked('#filter-on', on);
  if (!on) return;
  await page.selectOption('#filter-match', match);
  const rows = page.locator('#filter-rows li');
  while (await rows.count() < conds.length) await page.click('#filter-add');
  while (await rows.count() > conds.length) await rows.last().locator('button').click();
  for (const [i, c] of conds.entries()) {
    const li = rows.nth(i);
    await li.locator('.col').selectOption(c.column);
    await li.locator('.cmp').selectOption(c.op);
    if (c.value !== undefined) await li.locator('.val').fill(String(c.value));
    await li.locator('.not').setChecked(!!c.not);
  }
  await page.setChecked('#filter-on', true);
}
async function setMap(page, on, cols = []) {
  await page.setChecked('#map-on', on);
  if (!on) return;
  const rows = page.locator('#map-rows li');
  while (await rows.count() < cols.length) await page.click('#map-add');
  while (await rows.count() > cols.length) await rows.last().locator('button.icon').click();
  for (const [i, c] of cols.entries()) {
    await rows.nth(i).locator('.name').fill(c.name);
    await rows.nth(i).locator('.name').dispatchEvent('change');
    await rows.nth(i).locator('.expr').fill(c.expr);
  }
  await page.setChecked('#map-on', true);
  await page.locator('#map-rows').dispatchEvent('change');
}
async function setAggregate(page, on, by = [], aggs = []) {
  await page.setChecked('#agg-on', on);
  await page.dispatchEvent('#agg-on', 'change');
  if (!on) return;
  for (const box of await page.locator('#agg-by input').all()) await box.setChecked(by.includes(await box.getAttribute('value')));
  const rows = page.locator('#agg-rows li');
  while (await rows.count() < aggs.length) await page.click('#agg-add');
  while (await rows.count() > aggs.length) await rows.last().locator('button.icon').click();
  for (const [i, a] of aggs.entries()) {
    await rows.nth(i).locator('.aop').selectOption(a.op);
    await rows.nth(i).locator('.acol').selectOption(a.column ?? '');
    await rows.nth(i).locator('.as').fill(a.as ?? '');
  }
  await page.setChecked('#agg-on', true);
}
async function setSort(page, keys, pageSize = '50') {
  const rows = page.locator('#sort-rows li');
  while (await rows.count() > 0) await rows.last().locator('button').click();
  for (const k of keys) {
    await page.click('#sort-add');
    await rows.last().locator('.scol').selectOption(k.column);
    await rows.last().locator('.sdir').selectOption(k.desc ? 'desc' : 'asc');
  }
  await page.selectOption('#page-size', pageSize);
}
const intRows = (t, cols) => t.rows.map((r) => cols.map((c) => r[t.head.indexOf(c)]).join(','));
const jsonRows = (rs, cols) => rs.map((r) => cols.map((c) => String(r[c])).join(','));
const firstDiff = (a, b) => { const i = a.findIndex((x, j) => x !== b[j]); return i < 0 && a.length === b.length ? '' : `first difference at row ${i}: page ${JSON.stringify(a[i])}, expected ${JSON.stringify(b[i])} (${a.length} vs ${b.length} rows)`; };

const profile = mkdtempSync(join(tmpdir(), 'molt-chromium-'));
const scratch = mkdtempSync(join(tmpdir(), 'molt-explorer-'));
let ctx;
try {
  const registryDir = realpathSync(join(SITE, 'registry'));
  const pub = join(scratch, 'trusted.pub');
  writeFileSync(pub, JSON.parse(readFileSync(join(SITE, 'trusted-keys.json'), 'utf8'))[0]);
  // A cache of its own: a shared one remembers snapshot versions of earlier fixtures (rollback check).
  const base = await serve(SITE, ['--run', `${UNIT.name}@${UNIT.version}`, '--registry', registryDir, '--key', pub, '--cache', join(scratch, 'cache')]);
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1320, height: 1100 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  mkdirSync(SHOTS, { recursive: true });

  // ---- the default dataset: flights-200k.arrow
  const { page, problems } = await openPage(ctx, base + 'index.html?dataset=none');
  check('the unit loads and verifies', await page.evaluate(() => document.body.dataset.state) === 'ready',
    await page.textContent('#error-message'));
  let st = await pickDataset(page, 'flights-200k-arrow');
  let t = await table(page);
  check(`flights-200k.arrow loads: ${N} rows, columns delay/distance int and time float, first page = the file's first 50 rows`,
    st.state === 'ready' && t.total === N.toLocaleString('en') && t.head.join() === 'delay,distance,time' && t.types.join() === 'int,int,float' &&
      !firstDiff(intRows(t, ['delay', 'distance']), jsonRows(flights.slice(0, 50), ['delay', 'distance'])),
    `${st.text}\n${JSON.stringify(t).slice(0, 400)}\n${firstDiff(intRows(t, ['delay', 'distance']), jsonRows(flights.slice(0, 50), ['delay', 'distance']))}`);

  // ---- the JSON copy: every column exact
  st = await pickDataset(page, 'flights-200k-json');
  t = await table(page);
  check(`flights-200k.json loads: ${N} rows, first page equal to the file's first 50 rows (all three columns)`,
    st.state === 'ready' && t.total === N.toLocaleString('en') && !firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(flights.slice(0, 50), ['delay', 'distance', 'time'])),
    `${st.text}\n${firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(flights.slice(0, 50), ['delay', 'distance', 'time']))}`);
  const schema = await page.evaluate(() => [...document.querySelectorAll('#schema-table tbody tr')].map((tr) => `${tr.dataset.col}:${tr.querySelector('select').value}:${tr.querySelector('input').checked}`));
  check('the inferred schema is shown and editable: delay:int, distance:int, time:float, none nullable', schema.join() === 'delay:int:false,distance:int:false,time:float:false', schema.join());

  // ---- filter
  await setFilter(page, true, 'all', [{ column: 'delay', op: 'gt', value: 15 }]);
  let r = await run(page);
  t = await table(page);
  check(`filter delay > 15: ${exp.filter.length} rows, the first page in file order`,
    r.state === 'done' && t.total === exp.filter.length.toLocaleString('en') && !firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(exp.filter.slice(0, 50), ['delay', 'distance', 'time'])),
    `${r.text}\n${t.total}\n${firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(exp.filter.slice(0, 50), ['delay', 'distance', 'time']))}`);
  await setFilter(page, true, 'none', [{ column: 'distance', op: 'ge', value: 500 }, { column: 'delay', op: 'le', value: 0 }]);
  r = await run(page);
  t = await table(page);
  check(`filter none of (distance ≥ 500, delay ≤ 0): ${exp.compound} rows`, r.state === 'done' && t.total === exp.compound.toLocaleString('en'), `${r.text} ${t.total}`);
  await setFilter(page, true, 'all', [{ column: 'delay', op: 'gt', value: 'abc' }]);
  r = await run(page);
  check('a filter value that is not a number is refused before any call, naming the condition', r.state === 'error' && /condition 1 \(delay, int\): expected a number, found "abc"/.test(r.text), r.text);

  // ---- map (+ aggregate sum, no group)
  await setFilter(page, false);
  await setMap(page, true, [{ name: 'x', expr: 'delay * 2 + 1' }]);
  r = await run(page);
  t = await table(page);
  check('map x = delay * 2 + 1: a fourth column, first page values delay*2+1',
    r.state === 'done' && t.head.join() === 'delay,distance,time,x' && t.types[3] === 'int' &&
      !firstDiff(t.rows.map((row) => row[3]), flights.slice(0, 50).map((f) => String(f.delay * 2 + 1))),
    `${r.text}\n${t.head} ${t.types}\n${firstDiff(t.rows.map((row) => row[3]), flights.slice(0, 50).map((f) => String(f.delay * 2 + 1)))}`);
  await setAggregate(page, true, [], [{ op: 'sum', column: 'x', as: 'sum_x' }]);
  r = await run(page);
  t = await table(page);
  check(`map then sum: sum(delay*2+1) = ${exp.sumX}`, r.state === 'done' && t.rows.length === 1 && t.head.join() === 'sum_x' && t.rows[0][0] === String(exp.sumX),
    `${r.text}\n${JSON.stringify(t)}`);
  await page.fill('#map-rows li .expr', 'delay * 2 +');
  const exprErr = await page.textContent('#map-rows .field-error');
  check('a broken expression is flagged while typing, with its position', /expected a value, a column or "\(" at 12, found the end/.test(exprErr), exprErr);

  // ---- aggregate: group by distance, count, mean delay; sorted by distance
  await setMap(page, false);
  await setAggregate(page, true, ['distance'], [{ op: 'count' }, { op: 'mean', column: 'delay', as: 'mean_delay' }]);
  await setSort(page, [{ column: 'distance' }]);
  r = await run(page);
  t = await table(page);
  const g = exp.groups.slice(0, 50);
  const aggOk = t.head.join() === 'distance,count,mean_delay' && t.rows.length === 50 &&
    t.rows.every((row, i) => row[0] === String(g[i].distance) && row[1] === String(g[i].count) && Math.abs(Number(row[2]) - g[i].mean) <= 1e-9 * Math.max(1, Math.abs(g[i].mean)));
  check(`group by distance: ${exp.groups.length} groups; the first 50 by distance with count and mean delay`,
    r.state === 'done' && t.total === exp.groups.length.toLocaleString('en') && aggOk,
    `${r.text}\n${t.total} ${t.head}\n${JSON.stringify(t.rows.slice(0, 3))}\nexpected ${JSON.stringify(g.slice(0, 3))}`);

  // ---- paginate: stable two-key sort, page 3 of 25
  await setAggregate(page, false);
  await setSort(page, [{ column: 'distance', desc: true }, { column: 'delay' }], '25');
  r = await run(page);
  for (const how of ['click', 'key']) {
    const s = await seq(page, 'op-state');
    if (how === 'click') await page.click('#next'); else { await page.focus('#result-table'); await page.keyboard.press(']'); }
    await waitFor(page, 'op-state', FINAL, s);
  }
  t = await table(page);
  check('sort distance desc, delay asc; page 3 of 25 (Next, then the ] key) equals the stable sort\'s rows 51–75',
    r.state === 'done' && t.info === `51–75 of ${N.toLocaleString('en')}` && !firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(exp.sorted.slice(50, 75), ['delay', 'distance', 'time'])),
    `${t.info}\n${firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(exp.sorted.slice(50, 75), ['delay', 'distance', 'time']))}`);
  {
    const s = await seq(page, 'op-state');
    await page.click('#prev');
    await waitFor(page, 'op-state', FINAL, s);
    t = await table(page);
    check('Prev goes back to rows 26–50', t.info === `26–50 of ${N.toLocaleString('en')}` &&
      !firstDiff(intRows(t, ['delay', 'distance', 'time']), jsonRows(exp.sorted.slice(25, 50), ['delay', 'distance', 'time'])), t.info);
  }

  // ---- symmetry: the same run request, wasm here and native on the server
  await setFilter(page, true, 'all', [{ column: 'delay', op: 'gt', value: 15 }]);
  await setMap(page, true, [{ name: 'x', expr: 'delay * 2 + 1' }]);
  await setAggregate(page, true, ['distance'], [{ op: 'count' }, { op: 'mean', column: 'delay' }, { op: 'sum', column: 'x' }]);
  await setSort(page, [{ column: 'distance' }]);
  r = await run(page);
  {
    const s = await seq(page, 'sym-verdict');
    await page.click('#sym-run');
    const v = await waitFor(page, 'sym-verdict', ['equal', 'different', 'error', 'cancelled'], s, 120000);
    const d = await page.evaluate(() => [document.getElementById('sym-browser').textContent, document.getElementById('sym-server').textContent]);
    check('symmetry panel (filter → map → aggregate → page): wasm (page) and native (server) result envelopes have equal SHA-256 digests',
      r.state === 'done' && v.state === 'equal' && /^sha256:[0-9a-f]{64}$/.test(d[0]) && d[0] === d[1], `${v.state}: ${v.text}\n${d.join('\n')}`);
    await page.screenshot({ path: join(SHOTS, 'explorer.png'), fullPage: true });
  }
  const lat = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#latency tbody tr')].map((tr) => [tr.dataset.op, Number(tr.cells[3].textContent)])));
  check('the metrics panel counts samples per operation (load, filter, map, aggregate, paginate)',
    ['load', 'filter', 'map', 'aggregate', 'paginate'].every((k) => lat[k] >= 1), JSON.stringify(lat));
  check('no page errors or console errors', problems.length === 0, problems.join('\n'));
  await page.close();

  // ---- cancel: loading flights-200k.json (9.9 MB of JSON parsed in the unit)
  {
    const { page: p, problems: pr } = await openPage(ctx, base + 'index.html?dataset=none');
    const intoUnit = () => p.waitForFunction(() => /^Loading flights-200k\.json/.test(document.getElementById('load-state').textContent), null, { timeout: 30000, polling: 5 });
    let l = await seq(p, 'load-state');
    await p.selectOption('#dataset', 'flights-200k-json');
    await intoUnit();
    const t0 = Date.now();
    let s1 = await waitFor(p, 'load-state', LOADED, l);
    const full = Date.now() - t0;
    check(`the long operation completes when left alone: the unit parses flights-200k.json in ${full} ms`, s1.state === 'ready' && full > 100, `${s1.state}: ${s1.text}; ${full} ms`);
    await pickDataset(p, 'cars');
    l = await seq(p, 'load-state');
    await p.selectOption('#dataset', 'flights-200k-json');
    await intoUnit();
    await p.waitForTimeout(Math.min(60, full / 5));
    const t1 = Date.now();
    const cancelOn = await p.evaluate(() => !document.getElementById('cancel').disabled);
    await p.keyboard.press('Escape');
    s1 = await waitFor(p, 'load-state', LOADED, l);
    const took = Date.now() - t1;
    check(`Esc cancels it: CANCELLED shows ${took} ms later, before it would have finished (${full} ms alone); Cancel was enabled`,
      cancelOn && s1.state === 'cancelled' && /^Cancelled loading flights-200k\.json after/.test(s1.text) && took < full, `${s1.state}: ${s1.text}; ${took} ms; cancel enabled ${cancelOn}`);
    await p.screenshot({ path: join(SHOTS, 'explorer-cancelled.png'), fullPage: true });
    const cars = JSON.parse(readFileSync(join(SITE, 'data/cars.json'), 'utf8'));
    const want = cars.filter((c) => c.Cylinders > 6).length;
    st = await pickDataset(p, 'cars');
    await setFilter(p, true, 'all', [{ column: 'Cylinders', op: 'gt', value: 6 }]);
    r = await run(p);
    t = await table(p);
    check(`after the cancel, the same unit loads cars.json and filters it: Cylinders > 6 → ${want} rows`,
      st.state === 'ready' && r.state === 'done' && t.total === String(want), `${st.text} / ${r.text} / ${t.total}`);
    check('no page errors after cancel', pr.length === 0, pr.join('\n'));
    await p.close();
  }

  // ---- a user file with bad rows, against an edited schema
  {
    const { page: p } = await openPage(ctx, base + 'index.html?dataset=none');
    const lines = ['id,amount,label'];
    const bad = [];
    for (let i = 0; i < 300; i++) {
      const amount = i % 2 ? String(i * 1.5) : i % 4 === 0 ? 'n/a' : '';
      lines.push(`${i},${amount},row ${i}`);
      if (amount === 'n/a') bad.push({ row: i, found: 'n/a' });
    }
    const csv = lines.join('\n') + '\n';
    let l = await seq(p, 'load-state');
    await p.setInputFiles('#file', { name: 'bad-rows.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    let s1 = await waitFor(p, 'load-state', LOADED, l);
    const inferred = await p.evaluate(() => [...document.querySelectorAll('#schema-table tbody tr')].map((tr) => `${tr.dataset.col}:${tr.querySelector('select').value}`));
    check('a user CSV (file input) loads with inferred types: amount is a string column (it has "n/a")', s1.state === 'ready' && inferred.join() === 'id:int,amount:string,label:string',
      `${s1.text} ${inferred}`);
    await p.selectOption('#schema-table tr[data-col=amount] select', 'float');
    await p.setChecked('#schema-table tr[data-col=amount] input', false);
    l = await seq(p, 'load-state');
    await p.click('#revalidate');
    s1 = await waitFor(p, 'load-state', LOADED, l);
    const v = await p.evaluate(() => ({
      title: document.getElementById('validation-title').textContent,
      rows: [...document.querySelectorAll('#errors-table tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent)),
      more: document.getElementById('errors-more').textContent, run: document.getElementById('run').disabled,
      shown: document.querySelectorAll('#result-table tbody tr').length,
    }));
    // amount: float, not nullable → every "n/a" (not a float) and every empty field (null) is an error, in row order.
    const want = [];
    for (let i = 0; i < 300; i++) if (i % 2 === 0) want.push(i % 4 === 0 ? { row: i, found: 'n/a' } : { row: i, found: '' });
    const listed = v.rows.slice(0, 3).map((x) => x.join('|'));
    check(`edited schema (amount float, not null) → ${want.length} errors: row, column, expected, found listed, and "and N more"`,
      s1.state === 'invalid' && v.title === `${want.length} validation errors` && v.rows.length === 100 && v.more === `and ${want.length - 100} more` &&
        v.rows.every((x, i) => x[0] === String(want[i].row) && x[1] === 'amount' && /float/.test(x[2])) &&
        v.rows[0][3] === 'n/a' && v.run && v.shown === 0,
      `${s1.state}: ${s1.text}\n${JSON.stringify(v).slice(0, 600)}\nfirst rows ${listed.join(' / ')}`);
    await p.screenshot({ path: join(SHOTS, 'explorer-invalid.png'), fullPage: true });
    l = await seq(p, 'load-state');
    await p.setInputFiles('#file', { name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from('[{"a": 1}, {"a": 2,, }]') });
    s1 = await waitFor(p, 'load-state', LOADED, l);
    check('a malformed JSON file is refused with the unit\'s message naming the file', s1.state === 'error' && /broken\.json: UNIT_VALIDATION/.test(s1.text), s1.text);
    await p.close();
  }

  // ---- a tampered unit: refused, with the digests named
  {
    const dir = join(scratch, 'tampered');
    cpSync(SITE, dir, { recursive: true, filter: (src) => src !== join(SITE, 'registry') });
    cpSync(registryDir, join(dir, 'registry'), { recursive: true, dereference: true });
    const index = JSON.parse(readFileSync(join(dir, `registry/index/${UNIT.name}.json`), 'utf8'));
    const entry = index.versions[UNIT.version][UNIT.target];
    const manifest = JSON.parse(readFileSync(join(dir, 'registry/blobs/sha256', entry.manifest.slice(7)), 'utf8'));
    const p = join(dir, 'registry/blobs/sha256', manifest.artifact.digest.slice(7));
    const b = readFileSync(p); b[b.length >> 1] ^= 0x01; writeFileSync(p, b);
    const tbase = await serve(dir);
    const { page: q } = await openPage(ctx, tbase + 'index.html');
    const e = await q.evaluate(() => ({ state: document.body.dataset.state, visible: !document.getElementById('error').hidden,
      code: document.getElementById('error-code').textContent, message: document.getElementById('error-message').textContent,
      failed: document.querySelector('#checks li.failed')?.dataset.stage, run: document.getElementById('run').disabled }));
    check('a flipped byte in explorer.wasm → DIGEST_MISMATCH naming the signed and the found digest; the artifact check marked failed; nothing runs',
      e.state === 'error' && e.visible && e.code === 'DIGEST_MISMATCH' && e.message.includes(manifest.artifact.digest) && e.message.includes(sha(b)) && e.failed === 'artifact' && e.run,
      JSON.stringify(e));
    await q.screenshot({ path: join(SHOTS, 'explorer-tampered.png'), fullPage: true });
    await q.close();
  }
} catch (e) {
  check('the browser test ran to the end', false, String(e?.stack ?? e));
} finally {
  await ctx?.close().catch(() => {});
  stopServers();
  rmSync(profile, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
}

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
