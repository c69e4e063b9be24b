// The JS host (runtime/js/molt.js) in headless Chromium (Debian's /usr/bin/chromium):
// units in a Worker, byte progress, cancel, the digest cache (warm start in
// the page, after a reload, a tampered cache entry), errors across postMessage.
//
//   MOLT_SERVE_CMD="build/runtime/molt serve --quiet" SITE=build/test/site node tests/browser/host.test.mjs
//
// SITE is a folder made by scripts/site (its registry must hold hello@0.1.0 and
// countdown@0.1.0). The test copies it, with the current runtime/js/molt.js and
// the page tests/browser/host/, into a temporary folder that `molt serve`
// serves on 127.0.0.1 (a secure context, so WebCrypto and Cache Storage work).
// The page exposes molt.js as window.molt; each case drives it with
// page.evaluate and watches the network with page.on('request').
// Ends with "N passed, M failed".

import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve as startServer, stopServers } from './serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVE = (process.env.MOLT_SERVE_CMD ?? '').trim();
const SITE = process.env.SITE ? resolve(process.env.SITE) : '';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

if (!SERVE || !SITE) {
  console.error('usage: MOLT_SERVE_CMD="PATH/molt serve" SITE=DIR node tests/browser/host.test.mjs');
  process.exit(2);
}
for (const [what, p] of [['SITE', join(SITE, 'trusted-keys.json')], ['registry', join(SITE, 'registry/snapshot.json')], ['browser', CHROMIUM]]) {
  if (!existsSync(p)) {
    console.error(`host.test: ${what}: ${p} does not exist${what === 'browser' ? ' (apt-get install chromium)' : ' (build it with scripts/site)'}`);
    process.exit(3);
  }
}

let passed = 0, failed = 0;
async function test(name, f) {
  try { await f(); passed++; console.log(`ok - ${name}`); } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split('\n').slice(0, 6).join('\n  ')}`);
  }
}
function assert(c, msg) { if (!c) throw new Error(msg); }
function eq(a, b, msg = '') {
  const s = (v) => JSON.stringify(v);
  if (s(a) !== s(b)) throw new Error(`${msg} expected ${s(b)}, found ${s(a)}`);
}

const serve = (root) => startServer(SERVE, root);

// The artifact (blob path and size) of NAME@0.1.0 for wasm32-wasi, from the registry on disk.
function artifactOf(name) {
  const reg = join(SITE, 'registry');
  const ix = JSON.parse(readFileSync(join(reg, `index/${name}.json`)));
  const mf = JSON.parse(readFileSync(join(reg, 'blobs/sha256', ix.versions['0.1.0']['wasm32-wasi'].manifest.slice(7))));
  return { digest: mf.artifact.digest, size: mf.artifact.size, path: `registry/blobs/sha256/${mf.artifact.digest.slice(7)}` };
}

const scratch = mkdtempSync(join(tmpdir(), 'molt-host-'));
const site = join(scratch, 'site');
cpSync(SITE, site, { recursive: true, verbatimSymlinks: true });
cpSync(join(ROOT, 'runtime/js/molt.js'), join(site, 'molt.js'));
cpSync(join(ROOT, 'tests/browser/host'), join(site, 'host'), { recursive: true });
const hello = artifactOf('hello'), countdown = artifactOf('countdown');

let browser;
try {
  const base = await serve(site);
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const problems = [], requests = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('request', (r) => requests.push(r.url()));
  page.on('worker', (w) => w.on('console', (m) => { if (m.type() === 'error') problems.push(`worker console: ${m.text()}`); }));
  const open = async () => {
    await page.goto(`${base}host/index.html`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 15000 });
  };
  const blobRequests = (a) => requests.filter((u) => u.endsWith(a.path)).length;
  await open();

  await test('cold load: the unit runs in a Worker; fetched, verified, compiled; metrics say so', async () => {
    requests.length = 0;
    const r = await page.evaluate(async () => {
      const u = await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0' });
      window.helloUnit = u;
      return { worker: u.worker, metrics: u.metrics, greeting: (await u.call('greet', { name: 'Ada' }).result).greeting, stats: await u.stats() };
    });
    eq(r.greeting, 'Hello, Ada!');
    eq(r.worker, true, 'unit.worker');
    eq(r.metrics.worker, true, 'metrics.worker');
    eq(r.metrics.cached, false, 'metrics.cached on a cold load');
    eq(r.metrics.artifactBytes, hello.size);
    for (const k of ['fetchMs', 'verifyMs', 'compileMs', 'initMs', 'totalMs']) assert(typeof r.metrics[k] === 'number' && r.metrics[k] >= 0, `metrics.${k} = ${r.metrics[k]}`);
    assert(r.stats.memoryBytes >= 65536 && r.stats.memoryBytes % 65536 === 0, `stats().memoryBytes = ${r.stats.memoryBytes}`);
    eq(r.stats.instances, 1);
    eq(blobRequests(hello), 1, 'requests for the artifact blob');
  });

  await test('errors cross postMessage as MoltError with code, class, unitCode and path', async () => {
    const r = await page.evaluate(async () => {
      const u = window.helloUnit;
      const grab = async (p) => { try { await p; return null; } catch (e) { return { isMolt: e instanceof window.molt.MoltError, code: e.code, cls: e.class, unitCode: e.unitCode, path: e.path, message: e.message }; } };
      return {
        unit: await grab(u.call('greet', { name: '' }).result),
        host: await grab(u.call('greet', { name: 7 }).result),
        raw: await grab(u.callEnvelope(1, new Uint8Array([1, 2, 3]), { maxOutput: 1 }).result),
      };
    });
    eq([r.unit.isMolt, r.unit.code, r.unit.cls, r.unit.unitCode, r.unit.path], [true, 'UNIT_VALIDATION', 'validation', 1, 'name']);
    assert(r.unit.message.includes('hello.greet: validation error 1'), r.unit.message);
    eq([r.host.code, r.host.path], ['INVALID_INPUT', 'name'], 'host-side validation');
    eq([r.raw.isMolt, r.raw.code, r.raw.cls, r.raw.unitCode], [true, 'OUTPUT_LIMIT', 'runtime', 6], 'a limit enforced in the Worker');
    assert(r.raw.message.includes('over the maxOutput limit of 1 bytes'), r.raw.message);
  });

  await test('the main thread stays responsive while countdown counts to 1e9 (1000 a poll) in the Worker; cancel is prompt; the unit is usable after', async () => {
    const r = await page.evaluate(async () => {
      const u = await window.molt.loadUnit(window.openSite(), { name: 'countdown', version: '0.1.0', stepBudget: 1000 });
      window.countdownUnit = u;
      const t = u.call('count', { n: 1e9 });
      const during = await window.ticksDuring(() => new Promise((res) => setTimeout(res, 400)));
      const t0 = performance.now();
      t.cancel();
      let err;
      try { await t.result; } catch (e) { err = { code: e.code, cls: e.class, unitCode: e.unitCode, message: e.message, isMolt: e instanceof window.molt.MoltError }; }
      const cancelMs = performance.now() - t0;
      const after = await u.call('count', { n: 10 }).result;
      return { ticks: during.ticks, frames: during.frames, err, cancelMs, after, instances: u.instances };
    });
    assert(r.ticks >= 40, `a 5 ms setInterval ticked ${r.ticks} times in 400 ms while the unit counted`);
    assert(r.frames >= 5, `requestAnimationFrame ran ${r.frames} times in 400 ms`);
    eq([r.err?.isMolt, r.err?.code, r.err?.cls, r.err?.unitCode], [true, 'CANCELLED', 'cancellation', 4]);
    assert(r.cancelMs < 100, `the cancel took ${r.cancelMs.toFixed(1)} ms`);
    eq(r.after, { sum: 55, polls: 1 });
    eq(r.instances, 1);
  });

  await test('timeoutMs in the Worker: TIMEOUT, runtime error 5; stats and close()', async () => {
    const r = await page.evaluate(async () => {
      const u = window.countdownUnit;
      let e1;
      try { await u.call('count', { n: 1e9 }, { timeoutMs: 50 }).result; } catch (e) { e1 = { code: e.code, unitCode: e.unitCode, message: e.message }; }
      const stats = await u.stats();
      const pending = u.call('count', { n: 1e9 }).result.catch((e) => e.code);
      u.close();
      let e2;
      try { await u.call('count', { n: 1 }).result; } catch (e) { e2 = e.code; }
      return { e1, stats, inFlight: await pending, e2 };
    });
    eq([r.e1?.code, r.e1?.unitCode], ['TIMEOUT', 5]);
    assert(r.e1.message.includes('(timeoutMs 50, '), r.e1.message);
    assert(r.stats.memoryBytes > 0 && r.stats.instances === 1, JSON.stringify(r.stats));
    eq([r.inFlight, r.e2], ['UNIT_CLOSED', 'UNIT_CLOSED']);
  });

  await test('byte progress: monotonic, never past the total, total = the signed manifest\'s artifact size, last event done === total', async () => {
    const r = await page.evaluate(async () => {
      window.molt.clearModuleCache();
      const ev = [];
      const u = await window.molt.loadUnit(window.openSite(), { name: 'countdown', version: '0.1.0', cache: false,
        onProgress: (p) => { if (p.stage === 'artifact') ev.push([p.loaded, p.total]); } });
      u.close();
      return { ev, size: u.manifest.artifact.size };
    });
    eq(r.size, countdown.size);
    assert(r.ev.length >= 2, `${r.ev.length} artifact events`);
    for (let i = 0; i < r.ev.length; i++) {
      eq(r.ev[i][1], countdown.size, `event ${i} total`);
      assert(r.ev[i][0] <= r.ev[i][1], `event ${i}: loaded ${r.ev[i][0]} > total`);
      if (i) assert(r.ev[i][0] >= r.ev[i - 1][0], `event ${i} went backwards`);
    }
    eq(r.ev.at(-1), [countdown.size, countdown.size], 'last event');
  });

  await test('warm start in the page: a second loadUnit makes no request for the artifact (module cache)', async () => {
    await page.evaluate(() => window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0' }).then((u) => u.close()));
    requests.length = 0;
    const r = await page.evaluate(async () => {
      const u = await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0' });
      return { cached: u.metrics.cached, compileMs: u.metrics.compileMs, greeting: (await u.call('greet', { name: 'Bo' }).result).greeting };
    });
    eq(r.cached, 'module');
    eq(r.greeting, 'Hello, Bo!');
    eq(blobRequests(hello), 0, 'requests for the artifact blob');
    assert(requests.some((u) => u.endsWith('registry/snapshot.json')), 'the snapshot is fetched (and verified) every time');
  });

  await test('after a reload the artifact comes from Cache Storage, hashed again: no request for it', async () => {
    await open();
    requests.length = 0;
    const r = await page.evaluate(async () => {
      const u = await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0' });
      return { cached: u.metrics.cached, bytes: u.metrics.bytesFetched, greeting: (await u.call('greet', { name: 'Cy' }).result).greeting };
    });
    eq(r.cached, 'bytes');
    eq(r.greeting, 'Hello, Cy!');
    eq(blobRequests(hello), 0, 'requests for the artifact blob');
  });

  await test('a tampered Cache Storage entry is refused (hash), deleted and fetched again', async () => {
    await page.evaluate(async (digest) => {
      const c = await caches.open('molt-units-v1');
      const key = `https://molt-cache.invalid/${digest.replace(':', '/')}`;
      const b = new Uint8Array(await (await c.match(key)).arrayBuffer());
      b[b.length >> 1] ^= 1;
      await c.put(key, new Response(b));
    }, hello.digest);
    await open();
    requests.length = 0;
    const r = await page.evaluate(async () => {
      const ev = [];
      const u = await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0', onProgress: (p) => { if (p.stage === 'cache') ev.push(p.refused); } });
      return { cached: u.metrics.cached, refused: u.metrics.cacheRefused, ev, greeting: (await u.call('greet', { name: 'Di' }).result).greeting };
    });
    eq(r.cached, false);
    assert(r.refused?.includes(`expected ${hello.size} bytes with digest ${hello.digest}`) && r.refused.includes('fetched again'), `cacheRefused: ${r.refused}`);
    eq(r.ev, [r.refused], 'progress stage "cache"');
    eq(r.greeting, 'Hello, Di!');
    eq(blobRequests(hello), 1, 'requests for the artifact blob');
    await open();
    requests.length = 0;
    const again = await page.evaluate(async () => (await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0' })).metrics.cached);
    eq(again, 'bytes', 'the good bytes were stored again');
    eq(blobRequests(hello), 0);
  });

  await test('worker: false runs on the page thread with the same API; cache: false fetches', async () => {
    requests.length = 0;
    const r = await page.evaluate(async () => {
      const u = await window.molt.loadUnit(window.openSite(), { name: 'hello', version: '0.1.0', worker: false, cache: false });
      return { worker: u.worker, cached: u.metrics.cached, greeting: (await u.call('greet', { name: 'Ed' }).result).greeting, stats: await u.stats() };
    });
    eq([r.worker, r.cached, r.greeting, r.stats.instances], [false, false, 'Hello, Ed!', 1]);
    eq(blobRequests(hello), 1);
  });

  await test('no page errors', async () => { eq(problems, []); });
} catch (e) {
  failed++;
  console.log(`not ok - host test setup\n  ${e.stack ?? e}`);
} finally {
  await browser?.close();
  stopServers();
  rmSync(scratch, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
