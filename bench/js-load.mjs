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
// Prints markdown tables: median, P95, ratio to the baseline row, bytes fetched.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
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
