#!/usr/bin/env node
// The Typed Data Explorer against the tools a page author would pick instead,
// in one headless Chromium on loopback; prints Markdown tables (BENCHMARKS.md,
// "Typed Data Explorer vs Arquero, plain JS and DuckDB-wasm").
//
//   node bench/explorer.mjs [--fixture DIR] [--molt PATH] [--n 100] [--warmup 5] [--cold 15]
//                           [--engines explorer,arquero,plain,typed,duckdb] [--ops filter,group,...]
//
// Dataset: vega-datasets' flights-200k (200,000 rows: delay, distance, time)
// as the site has it (scripts/site): .arrow (the tables), .json and .csv (the
// parse rows). Operations, as in /work/shared/ANCHORS.md:
//   filter  delay > 15, count          group  by distance: count, mean delay
//   map     delay*2+1, sum             sort   by distance, rows 1000..1099
//   parseCSV / parseJSON  the text into a table (row count)
// Engines: explorer (explorer@0.1.0 through runtime/js/molt.js, a Worker when
// the host runs units in one, as the demo page does), arquero (8.0.3,
// aq.fromArrow), plain (JS row objects), typed (JS typed-array loops),
// duckdb (DuckDB-wasm 1.32 EH bundle in its Worker). Every sample is the
// wall time in the page (performance.now) of one operation including its
// result reaching the page's JS as values; every engine's answers are compared
// and a mismatch fails the run (exit 1).
// Start-up: each engine in fresh browser contexts (--cold runs): explorer is
// loadUnit (fetch + verify + compile + init, from unit.metrics), then warm
// (a second loadUnit in the page) and after a reload (a new page, same
// context); duckdb is import + worker + instantiate + connect + SELECT 1;
// arquero is its script's load. Bytes: response bodies the browser received
// during the start-up (page requests and its Workers'); for the explorer,
// the host's metrics.bytesFetched.
//
// Needs: the fixture (scripts/fixture; DIR defaults to $FIXTURE, else
// build/test), the molt binary (PATH defaults to $MOLT, else
// build/runtime/molt), /usr/bin/chromium (or $CHROMIUM).

import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const FIXTURE = resolve(opt('fixture', process.env.FIXTURE ?? join(ROOT, 'build/test')));
const MOLT = resolve(opt('molt', process.env.MOLT ?? join(ROOT, 'build/runtime/molt')));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const N = Number(opt('n', 100)), WARMUP = Number(opt('warmup', 5)), COLD = Number(opt('cold', 15));
const ENGINES = opt('engines', 'explorer,arquero,plain,typed,duckdb').split(',');
const OPS = opt('ops', 'filter,group,map,sort,parseCSV,parseJSON').split(',');
const UNIT = 'explorer@0.1.0';

const usage = (msg) => { console.error(`bench/explorer: ${msg}`); process.exit(2); };
if (!(N >= 1 && WARMUP >= 0 && COLD >= 1)) usage('--n and --cold must be ≥ 1, --warmup ≥ 0');
for (const [what, p, fix] of [['fixture registry', join(FIXTURE, 'registry/snapshot.json'), 'MRECIPE=build/mrecipe/mrecipe scripts/fixture DIR'],
  ['fixture key', join(FIXTURE, 'dev.pub'), 'scripts/fixture DIR'], ['molt', MOLT, 'make build'], ['browser', CHROMIUM, 'apt-get install chromium']])
  if (!existsSync(p)) { console.error(`bench/explorer: ${what}: ${p} does not exist (${fix})`); process.exit(3); }

const NAMES = { explorer: 'explorer unit', arquero: 'Arquero 8', plain: 'plain JS rows', typed: 'JS typed arrays', duckdb: 'DuckDB-wasm 1.32' };
const OPNAMES = {
  filter: 'filter delay > 15, count', group: 'group by distance: count, mean delay', map: 'map delay*2+1, sum',
  sort: 'sort by distance, rows 1000..1099', parseCSV: 'parse CSV (4.25 MB)', parseJSON: 'parse JSON (9.86 MB)',
};

const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const f1 = (x) => (x === undefined ? '–' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const mb = (b) => (b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(1)} kB`);

// ---- the site: scripts/site into a temp folder, the bench page, node_modules as nm
const tmp = mkdtempSync(join(tmpdir(), 'molt-bench-explorer-'));
const site = join(tmp, 'site');
const built = spawnSync(join(ROOT, 'scripts/site'), [site, join(FIXTURE, 'registry'), join(FIXTURE, 'dev.pub')], { encoding: 'utf8' });
if (built.status !== 0) { console.error(`bench/explorer: scripts/site failed:\n${built.stderr}`); process.exit(3); }
cpSync(join(ROOT, 'bench/explorer'), join(site, 'bench'), { recursive: true });
symlinkSync(join(ROOT, 'node_modules'), join(site, 'nm'));

let server;
function serve() {
  server = spawn(MOLT, ['serve', '--quiet', '--root', site, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    let out = '';
    server.on('exit', (c) => rej(new Error(`molt serve exited with ${c}`)));
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/^serving .+ on http:\/\/\S+:(\d+)\/\s*\n/);
      if (m) res(`http://127.0.0.1:${m[1]}/`);
    });
  });
}

const browserArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

// A context that can reach only the local server; counts response bytes.
async function context(browser) {
  const ctx = await browser.newContext();
  const bytes = { n: 0 };
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    return u.hostname === '127.0.0.1' ? route.continue() : route.abort();
  });
  ctx.on('requestfinished', async (r) => { try { bytes.n += (await r.sizes()).responseBodySize; } catch { /* gone */ } });
  return { ctx, bytes };
}

async function openBench(ctx, base) {
  const page = await ctx.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(base + 'bench/index.html');
  await page.waitForFunction(() => document.getElementById('state').textContent !== 'loading', null, { timeout: 30000 });
  return { page, problems };
}

const settle = () => new Promise((r) => setTimeout(r, 150)); // late requestfinished events

let failed = false;
const out = [];
try {
  const base = await serve();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: browserArgs });
  const env = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).stdout.trim();

  // ---- start-up, in fresh contexts
  const cold = {};
  for (const e of ENGINES.filter((x) => x !== 'plain' && x !== 'typed')) {
    cold[e] = { cold: [], warm: [], reload: [], bytes: [], detail: [] };
    for (let i = 0; i < COLD; i++) {
      const { ctx, bytes } = await context(browser);
      const { page } = await openBench(ctx, base);
      if (e === 'duckdb' || e === 'arquero') await page.evaluate(() => B.data());
      await settle();
      const before = bytes.n;
      const r = await page.evaluate((eng) => B.start(eng, { only: 'start' }), e);
      await settle();
      // The explorer's own count (metadata, schemas, artifact) is exact;
      // Playwright's response events can come late for a Worker's fetches.
      cold[e].bytes.push(e === 'explorer' ? r.bytesFetched : bytes.n - before);
      cold[e].detail.push(r);
      cold[e].cold.push(e === 'explorer' ? r.totalMs : e === 'duckdb' ? r.startMs : r.scriptMs);
      if (e === 'explorer') {
        r.gzipBytes = await page.evaluate(() => B.gzip('explorer'));
        const w = await page.evaluate(() => B.start('explorer', { only: 'start' }));
        cold[e].warm.push(w.totalMs);
        const { page: p2 } = await openBench(ctx, base);
        const rl = await p2.evaluate(() => B.start('explorer', { only: 'start' }));
        cold[e].reload.push(rl.totalMs);
        cold[e].detail.push({ warm: w, reload: rl });
      }
      await ctx.close();
    }
  }

  // ---- operations, one page, engines interleaved per operation
  const { ctx } = await context(browser);
  const { page, problems } = await openBench(ctx, base);
  const data = await page.evaluate(() => B.data());
  const setup = {};
  for (const e of ENGINES) setup[e] = await page.evaluate((eng) => B.start(eng), e);
  const res = {};
  for (const op of OPS) {
    res[op] = {};
    for (const e of ENGINES) {
      if (!(await page.evaluate(([eng, o]) => B.has(eng, o), [e, op]))) continue;
      const n = op.startsWith('parse') ? Math.max(N, 30) : N;
      res[op][e] = await page.evaluate(([eng, o, k, w]) => B.run(eng, o, k, w), [e, op, n, op.startsWith('parse') ? 2 : WARMUP]);
    }
  }
  const mem = ENGINES.includes('explorer') ? await page.evaluate(() => B.stats('explorer')) : null;
  if (problems.length) { failed = true; console.error(`page errors:\n${problems.join('\n')}`); }
  await browser.close();

  // ---- answers agree?
  const mismatches = [];
  for (const op of OPS) {
    const checks = Object.entries(res[op]).map(([e, r]) => [e, String(r.check)]);
    const ref = checks.find(([e]) => e === 'plain') ?? checks[0];
    for (const [e, c] of checks) if (ref && c !== ref[1]) mismatches.push(`${op}: ${NAMES[e]} answered ${c.slice(0, 120)}; ${NAMES[ref[0]]} ${ref[1].slice(0, 120)}`);
  }

  // ---- tables
  const cols = ENGINES;
  out.push(`${env}, loopback, \`node bench/explorer.mjs --n ${N} --warmup ${WARMUP} --cold ${COLD}\`; flights-200k (200,000 rows); ms per operation, P50 / P95 over ${N} samples after ${WARMUP} warm-up runs (parse rows: ${Math.max(N, 30)} after 2).`, '');
  out.push(`| operation | ${cols.map((e) => NAMES[e]).join(' | ')} |${cols.includes('explorer') && cols.includes('arquero') ? ' explorer ÷ Arquero (P50, P95) |' : ''}`);
  out.push(`|---|${cols.map(() => '---').join('|')}|${cols.includes('explorer') && cols.includes('arquero') ? '---|' : ''}`);
  for (const op of OPS) {
    const cell = (e) => { const r = res[op][e]; return r ? `${f1(q(r.samples, 50))} / ${f1(q(r.samples, 95))}` : '–'; };
    let ratio = '';
    if (cols.includes('explorer') && cols.includes('arquero')) {
      const a = res[op].arquero, x = res[op].explorer;
      ratio = a && x ? ` ${(q(x.samples, 50) / q(a.samples, 50)).toFixed(2)}, ${(q(x.samples, 95) / q(a.samples, 95)).toFixed(2)} |` : ' – |';
    }
    out.push(`| ${OPNAMES[op]} | ${cols.map(cell).join(' | ')} |${ratio}`);
  }
  out.push('');
  out.push(`Start-up, ms, P50 / P95 over ${COLD} fresh browser contexts; bytes the browser received for it:`, '');
  out.push('| engine | cold | warm, same page | warm, after reload | bytes (cold) |');
  out.push('|---|---|---|---|---|');
  for (const [e, c] of Object.entries(cold)) {
    const pq = (xs) => (xs.length ? `${f1(q(xs, 50))} / ${f1(q(xs, 95))}` : '–');
    out.push(`| ${NAMES[e]}${e === 'explorer' ? ' (fetch + verify + compile + init)' : e === 'duckdb' ? ' (instantiate + connect + SELECT 1)' : ' (script load)'} | ${pq(c.cold)} | ${pq(c.warm)} | ${pq(c.reload)} | ${mb(q(c.bytes, 50))} |`);
  }
  if (cold.explorer) {
    const d = cold.explorer.detail.filter((x) => x.fetchMs !== undefined);
    const med = (k) => f1(q(d.map((x) => x[k]), 50));
    out.push('', `explorer cold start, medians: fetch ${med('fetchMs')} ms, verify ${med('verifyMs')} ms, compile ${med('compileMs')} ms, init ${med('initMs')} ms; wasm ${d[0]?.artifactBytes} bytes raw, ${d[0]?.gzipBytes ?? '–'} gzip.`);
  }
  const tbl = Object.entries(setup).filter(([, s]) => s && s.tableMs !== undefined).map(([e, s]) => `${NAMES[e]} ${f1(s.tableMs)} ms`);
  out.push('', `Table from flights-200k.arrow (${mb(data.arrow)}), one run: ${tbl.join(', ') || '–'}.${mem?.memoryBytes ? ` Explorer wasm memory after the run: ${mb(mem.memoryBytes)}.` : ''}`);
  if (mismatches.length) { failed = true; out.push('', '**Answers differ:**', ...mismatches.map((m) => `- ${m}`)); }
} catch (e) {
  failed = true;
  console.error(`bench/explorer: ${e?.stack ?? e}`);
} finally {
  if (server && server.exitCode === null) server.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
}
console.log(out.join('\n'));
process.exitCode = failed ? 1 : 0;
