// Loading a unit with runtime/js/molt.js in headless Chromium, against `molt serve` on loopback.
//
//   MOLT_SERVE_CMD="build/runtime/molt serve --quiet" SITE=build/test/site node bench/js-load.mjs [--runs N] [--unit NAME]
//
// SITE is a folder made by scripts/site; it is copied with the current
// runtime/js/molt.js and the page tests/browser/host/ into a temporary folder.
// Cases, N runs each (default 20, at least 15):
//   cold            a fresh browser context (empty HTTP cache, Cache Storage and
//                   module cache), the page loaded, then loadUnit: fetch every
//                   file + verify + compile + init (the unit's Worker starts meanwhile)
//   cold, worker: false  the same, the unit on the page thread (no Worker)
//   warm, in page   loadUnit again in the same page: compiled module from memory
//   warm, reload    the page reloaded, then loadUnit: bytes from Cache Storage, hashed again
// plus the time from navigation start to the unit ready, and per-call overhead
// of a tiny call (hello greet) in a Worker vs on the page thread (batches of 200
// sequential calls; the per-call time of each batch is one sample).
// Then, for where the time goes: the unit Worker's boot alone (new Worker(molt.js)
// until its first reply, in a fresh page), and the time of one small registry
// file over fetch() in Chromium (sequential, and a round of two in parallel as
// loadUnit does) from `molt serve`, python3 -m http.server and nginx (when
// /usr/sbin/nginx exists) serving the same folder, interleaved run by run.
// Prints markdown tables: median, P95, ratio to the baseline row, bytes fetched.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVE = (process.env.MOLT_SERVE_CMD ?? '').trim();
const SITE = process.env.SITE ? resolve(process.env.SITE) : '';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const arg = (name, d) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : d; };
const RUNS = Math.max(15, Number(arg('--runs', 20)));
const UNIT = arg('--unit', 'hello');
if (!SERVE || !SITE || !existsSync(join(SITE, 'registry/snapshot.json'))) {
  console.error('usage: MOLT_SERVE_CMD="PATH/molt serve --quiet" SITE=DIR node bench/js-load.mjs [--runs N] [--unit NAME]  (SITE made by scripts/site)');
  process.exit(2);
}

function serve(root) {
  const [cmd, ...args] = SERVE.split(/\s+/);
  const child = spawn(cmd, [...args, '--root', root, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    child.on('error', rej);
    child.on('exit', (c) => rej(new Error(`${SERVE} exited with ${c}`)));
    child.stdout.once('data', (d) => {
      const m = String(d).match(/on http:\/\/\S+:(\d+)\//);
      m ? res({ child, base: `http://127.0.0.1:${m[1]}/` }) : rej(new Error(`unexpected line from ${SERVE}: ${d}`));
    });
  });
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const med = (xs) => pct(xs, 50);
const f2 = (x) => x < 1 ? x.toFixed(3) : x.toFixed(1);
const kb = (b) => `${(b / 1024).toFixed(1)} KiB`;

const scratch = mkdtempSync(join(tmpdir(), 'molt-bench-'));
const site = join(scratch, 'site');
cpSync(SITE, site, { recursive: true, verbatimSymlinks: true });
cpSync(join(ROOT, 'runtime/js/molt.js'), join(site, 'molt.js'));
cpSync(join(ROOT, 'tests/browser/host'), join(site, 'host'), { recursive: true });
const { child, base } = await serve(site);
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });

// Bytes over the wire for one page load + loadUnit, from the responses' sizes.
async function openPage(ctx) {
  const page = await ctx.newPage();
  const sizes = [];
  page.on('requestfinished', async (r) => {
    // Only the unit's files and the Worker's script (molt.js); a response from the HTTP cache counts 0.
    if (!/\/registry\/|\/molt\.js$/.test(r.url())) return;
    try { sizes.push(Math.max(0, (await r.sizes()).responseBodySize)); } catch { /* gone */ }
  });
  await page.goto(`${base}host/index.html`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  return { page, sizes };
}
const load = (page, o = {}) => page.evaluate(async ([name, o]) => {
  const u = await window.molt.loadUnit(window.openSite(), { name, version: '0.1.0', ...o });
  const ready = performance.now();
  const m = u.metrics;
  u.close();
  return { ...m, ready };
}, [UNIT, o]);

const rows = { cold: [], thread: [], page: [], reload: [] };
const nav = [], bytes = { cold: [], thread: [], page: [], reload: [] };
for (let i = 0; i < RUNS; i++) {
  const ctx = await browser.newContext();
  const { page, sizes } = await openPage(ctx);
  sizes.length = 0;
  const c = await load(page);
  rows.cold.push(c);
  nav.push(c.ready);
  await new Promise((r) => setTimeout(r, 50));
  bytes.cold.push(sizes.reduce((a, b) => a + b, 0));
  sizes.length = 0;
  rows.page.push(await load(page));
  await new Promise((r) => setTimeout(r, 50));
  bytes.page.push(sizes.reduce((a, b) => a + b, 0));
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  sizes.length = 0;
  rows.reload.push(await load(page));
  await new Promise((r) => setTimeout(r, 50));
  bytes.reload.push(sizes.reduce((a, b) => a + b, 0));
  await ctx.close();
  const ctx2 = await browser.newContext();
  const two = await openPage(ctx2);
  two.sizes.length = 0;
  rows.thread.push(await load(two.page, { worker: false }));
  await new Promise((r) => setTimeout(r, 50));
  bytes.thread.push(two.sizes.reduce((a, b) => a + b, 0));
  await ctx2.close();
}

// Per-call overhead: batches of sequential greet calls.
const ctx = await browser.newContext();
const { page } = await openPage(ctx);
const calls = await page.evaluate(async ([name, runs]) => {
  const out = {};
  for (const worker of [false, true]) {
    const u = await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0', worker });
    const per = [];
    for (let i = 0; i < 20; i++) await u.call('greet', { name: 'warm' }).result;
    for (let b = 0; b < runs; b++) {
      const t = performance.now();
      for (let i = 0; i < 200; i++) await u.call('greet', { name: 'Ada' }).result;
      per.push((performance.now() - t) / 200);
    }
    out[worker ? 'worker' : 'thread'] = per;
    u.close();
  }
  return out;
}, [UNIT, RUNS]);
await ctx.close();

// The Worker's boot alone, in a fresh page that has loaded molt.js already.
const boot = [];
for (let i = 0; i < RUNS; i++) {
  const c = await browser.newContext();
  const { page: p } = await openPage(c);
  boot.push(await p.evaluate(async () => {
    const t = performance.now();
    const w = new Worker(new URL('../molt.js', location.href), { type: 'module', name: 'molt-unit' });
    await new Promise((res) => { w.onmessage = res; w.postMessage({ op: 'stats', id: 1 }); }); // answered (with an error) once booted
    w.terminate();
    return performance.now() - t;
  }));
  await c.close();
}

// One small file over fetch(), per server, the servers interleaved.
const freePort = () => new Promise((res, rej) => { const s = createServer(); s.on('error', rej); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); }); });
const waitUp = async (base) => {
  for (let i = 0; i < 100; i++) { try { if ((await fetch(`${base}registry/snapshot.json`)).ok) return true; } catch { /* not yet */ } await new Promise((r) => setTimeout(r, 50)); }
  return false;
};
const others = [];
{
  const port = await freePort();
  const py = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', '--directory', site, String(port)], { stdio: 'ignore' });
  if (await waitUp(`http://127.0.0.1:${port}/`)) others.push({ label: 'python3 -m http.server', base: `http://127.0.0.1:${port}/`, child: py }); else py.kill();
}
if (existsSync('/usr/sbin/nginx')) {
  const port = await freePort(), ng = join(scratch, 'nginx');
  mkdirSync(join(ng, 'logs'), { recursive: true });
  writeFileSync(join(ng, 'nginx.conf'), `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;\nworker_processes 1;\npid ${ng}/nginx.pid;\nerror_log ${ng}/logs/error.log;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n  client_body_temp_path ${ng}/body; proxy_temp_path ${ng}/proxy; fastcgi_temp_path ${ng}/fastcgi; uwsgi_temp_path ${ng}/uwsgi; scgi_temp_path ${ng}/scgi;\n  types { application/json json; text/javascript js; text/html html; }\n  default_type application/octet-stream;\n  server { listen 127.0.0.1:${port}; root ${site}; }\n}\n`);
  const n = spawn('/usr/sbin/nginx', ['-p', ng, '-e', join(ng, 'logs/error.log'), '-c', join(ng, 'nginx.conf')], { stdio: 'ignore' });
  if (await waitUp(`http://127.0.0.1:${port}/`)) others.push({ label: 'nginx', base: `http://127.0.0.1:${port}/`, child: n }); else n.kill();
}
const servers = [{ label: 'molt serve', base }, ...others].map((s) => ({ ...s, seq: [], par: [] }));
for (let i = 0; i < RUNS; i++) for (const s of (i % 2 ? [...servers].reverse() : servers)) {
  const c = await browser.newContext();
  const p = await c.newPage();
  await p.goto(`${s.base}registry/snapshot.json`);
  const r = await p.evaluate(async () => {
    const get = async (f) => { const res = await fetch(f, { cache: 'no-store' }); await res.arrayBuffer(); };
    const seq = [], par = [];
    for (let k = 0; k < 10; k++) {
      let t = performance.now(); await get('snapshot.json'); seq.push(performance.now() - t);
      t = performance.now(); await Promise.all([get('snapshot.json'), get('snapshot.json.minisig')]); par.push(performance.now() - t);
    }
    return { seq, par };
  });
  s.seq.push(...r.seq);
  s.par.push(...r.par);
  await c.close();
}
for (const s of others) s.child.kill();
await browser.close();
child.kill();
rmSync(scratch, { recursive: true, force: true });

const version = (await import('node:child_process')).execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
console.log(`${UNIT}@0.1.0 (${rows.cold[0].artifactBytes} bytes of wasm), ${version}, ${RUNS} runs each, molt serve on 127.0.0.1\n`);
console.log('| case | loadUnit total ms (median / P95) | ratio vs cold | fetch | verify | compile | init | cached | registry bytes fetched | + Worker script over the wire |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
const base0 = med(rows.cold.map((m) => m.totalMs));
for (const [k, label] of [['cold', 'cold (fresh context)'], ['thread', 'cold, worker: false'], ['page', 'warm, same page'], ['reload', 'warm, after reload']]) {
  const ms = rows[k];
  const t = ms.map((m) => m.totalMs);
  const part = (f) => f2(med(ms.map((m) => m[f])));
  console.log(`| ${label} | ${f2(med(t))} / ${f2(pct(t, 95))} | ${(med(t) / base0).toFixed(2)} | ${part('fetchMs')} | ${part('verifyMs')} | ${part('compileMs')} | ${part('initMs')} | ${ms[0].cached || 'no'} | ${kb(med(ms.map((m) => m.bytesFetched)))} | ${kb(Math.max(0, med(bytes[k]) - med(ms.map((m) => m.bytesFetched))))} |`);
}
console.log(`\nNavigation start → unit ready (cold, fresh context): ${f2(med(nav))} / ${f2(pct(nav, 95))} ms (median / P95).\n`);
console.log('| per call, hello greet | median ms | P95 ms | ratio vs page thread |');
console.log('|---|---|---|---|');
const t0 = med(calls.thread);
for (const [k, label] of [['thread', 'page thread (worker: false)'], ['worker', 'Worker (default)']])
  console.log(`| ${label} | ${f2(med(calls[k]))} | ${f2(pct(calls[k], 95))} | ${(med(calls[k]) / t0).toFixed(2)} |`);
console.log(`\nThe unit Worker's boot alone (new Worker(molt.js) until its first reply, fresh page): ${f2(med(boot))} / ${f2(pct(boot, 95))} ms (median / P95).\n`);
console.log('| one small registry file over fetch() in Chromium | sequential, median / P95 ms | ratio | two in parallel (a loadUnit round), median / P95 ms | ratio |');
console.log('|---|---|---|---|---|');
for (const s of servers)
  console.log(`| ${s.label} | ${f2(med(s.seq))} / ${f2(pct(s.seq, 95))} | ${(med(s.seq) / med(servers[0].seq)).toFixed(2)} | ${f2(med(s.par))} / ${f2(pct(s.par, 95))} | ${(med(s.par) / med(servers[0].par)).toFixed(2)} |`);
