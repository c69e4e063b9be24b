// The demo page in headless Chromium (Debian's /usr/bin/chromium, never a downloaded one).
//
//   MOLT_SERVE_CMD="build/runtime/molt serve" SITE=build/site node tests/browser/demo.test.mjs
//
// MOLT_SERVE_CMD is a command prefix; the test appends `--root DIR --port 0`
// and reads the first stdout line, `serving DIR on http://ADDR:PORT/`.
// SITE is a folder made by scripts/site. Optional: CHROMIUM, the browser
// binary. Screenshots go to build/screenshots/.
//
// The page is the Typed Data Explorer (demo/, docs/demo.md); this test
// covers how it loads its one unit, explorer@0.1.0: the stage list, the
// byte progress bar, the load metrics, the first dataset shown. What the
// explorer computes is tests/browser/explorer.test.mjs.
//
// After the good site, it serves tampered copies (registry copied, not
// linked) and checks the page refuses each one with a precise error, and
// never offers a dataset or an operation:
//   artifact byte flipped  → DIGEST_MISMATCH: the artifact is hashed and
//                            compared with the signed manifest before compile;
//   artifact truncated     → SIZE_MISMATCH: the size from signed metadata caps
//                            and checks the download;
//   another trusted key    → UNTRUSTED_KEY: only listed keys are accepted,
//                            and the error names both key ids;
//   snapshot sig byte flip → SIGNATURE_INVALID: the Ed25519 signature is
//                            really checked, not just the key id;
//   snapshot.json edited   → SIGNATURE_INVALID: signed metadata cannot be
//                            changed (e.g. a later expiry: freeze attack).
// Manifests, indexes and signatures are content-addressed and covered by the
// signed snapshot, so altering one of them trips a digest check first; the
// Node tests (tests/node) cover the cases that need the signing key.

import { cpSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, existsSync, realpathSync } from 'node:fs';
import { createHash, webcrypto } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve as startServer, stopServers } from './serve.mjs';
import { parseSignature, parsePublicKey } from '../../runtime/js/molt.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVE = (process.env.MOLT_SERVE_CMD ?? '').trim();
const SITE = process.env.SITE ? resolve(process.env.SITE) : '';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'build/screenshots');
const UNIT = { name: 'explorer', version: '0.1.0', target: 'wasm32-wasi' };

if (!SERVE || !SITE) {
  console.error('usage: MOLT_SERVE_CMD="PATH/molt serve" SITE=DIR node tests/browser/demo.test.mjs');
  process.exit(2);
}
for (const [what, p] of [['SITE', join(SITE, 'index.html')], ['registry', join(SITE, 'registry/snapshot.json')], ['browser', CHROMIUM]]) {
  if (!existsSync(p)) {
    console.error(`demo.test: ${what}: ${p} does not exist${what === 'browser' ? ' (apt-get install chromium)' : ' (build it with scripts/site)'}`);
    process.exit(3);
  }
}

let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) { passed++; console.log(`ok - ${name}`); } else { failed++; console.log(`not ok - ${name}${detail ? `\n  ${detail.replace(/\n/g, '\n  ')}` : ''}`); }
  return ok;
}

const sha = (b) => 'sha256:' + createHash('sha256').update(b).digest('hex');

const serve = (root) => startServer(SERVE, root);

/** Opens a page, waits until the demo has loaded or failed; returns its state. */
async function openDemo(ctx, url) {
  const page = await ctx.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(url + (url.includes('?') ? '&' : '?') + 'dataset=cars');
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 30000 });
  const state = await page.evaluate(() => ({
    state: document.body.dataset.state,
    errorVisible: !document.getElementById('error').hidden,
    code: document.getElementById('error-code').textContent,
    message: document.getElementById('error-message').textContent,
    runDisabled: document.getElementById('run').disabled,
    failedStage: document.querySelector('#checks li.failed')?.dataset.stage,
  }));
  return { page, problems, ...state };
}

const profile = mkdtempSync(join(tmpdir(), 'molt-chromium-'));
const scratch = mkdtempSync(join(tmpdir(), 'molt-site-'));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 1200 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });

  // ---- the good site
  const base = await serve(SITE);
  const good = await openDemo(ctx, base + 'index.html');
  const { page } = good;
  check('the unit loads and verifies (no error box)', good.state === 'ready' && !good.errorVisible,
    `state ${good.state}; error ${good.code}: ${good.message}`);
  // The default dataset of this test (?dataset=cars) reaches the table.
  const carsRows = JSON.parse(readFileSync(join(SITE, 'data/cars.json'), 'utf8')).length;
  await page.waitForFunction(() => ['ready', 'error', 'invalid'].includes(document.getElementById('load-state').dataset.state) &&
    document.getElementById('op-state').dataset.state !== 'running', null, { timeout: 30000 }).catch(() => {});
  await page.waitForFunction(() => ['done', 'error', 'cancelled'].includes(document.getElementById('op-state').dataset.state), null, { timeout: 30000 }).catch(() => {});
  const shown = await page.evaluate(() => ({
    load: document.getElementById('load-state').textContent, loadState: document.getElementById('load-state').dataset.state,
    total: document.getElementById('result-total').textContent, rows: document.querySelectorAll('#result-table tbody tr').length,
    head: [...document.querySelectorAll('#result-table thead th')].map((th) => th.firstChild.textContent),
    schema: [...document.querySelectorAll('#schema-table tbody tr')].map((tr) => `${tr.dataset.col}:${tr.querySelector('select').value}`),
    run: !document.getElementById('run').disabled,
  }));
  check(`cars.json loads through the unit: ${carsRows} rows, the schema inferred, the first page shown, Run enabled`,
    shown.loadState === 'ready' && shown.total === carsRows.toLocaleString('en') && shown.rows === 50 && shown.head[0] === 'Name' &&
      shown.schema.includes('Horsepower:int') && shown.schema.includes('Name:string') && shown.run,
    JSON.stringify(shown));
  const bar = await page.evaluate(() => ({
    now: document.getElementById('progress').getAttribute('aria-valuenow'),
    width: document.querySelector('#progress .fill').style.width,
    label: document.getElementById('progress-label').textContent,
  }));
  check('the byte progress bar reached 100% with a bytes/total label', bar.now === '100' && bar.width === '100%' && /\d+(\.\d+)? (B|KiB|MiB) \/ \d/.test(bar.label),
    JSON.stringify(bar));
  await page.waitForFunction(() => ['m-gzip', 'm-warm'].every((id) => document.getElementById(id).textContent !== '–'), null, { timeout: 20000 }).catch(() => {});
  const metrics = await page.evaluate(() => Object.fromEntries(['cold', 'warm', 'fv', 'ci', 'size', 'gzip', 'memory', 'bytes'].map((k) => [k, document.getElementById(`m-${k}`).textContent])));
  check('load metrics are shown (cold and warm start, fetch/verify, compile/init ms, module raw and gzip, memory, bytes)',
    Object.values(metrics).every((v) => v && v !== '–' && v !== 'n/a' && v !== 'failed') && / ms$/.test(metrics.cold) && / ms$/.test(metrics.warm) &&
      / ms · .* ms$/.test(metrics.ci) && /iB|B$/.test(metrics.gzip),
    JSON.stringify(metrics));
  const lat = await page.evaluate(() => [...document.querySelectorAll('#latency tbody tr')].map((tr) => tr.dataset.op));
  check('per-operation latency rows for load and paginate', lat.includes('load') && lat.includes('paginate'), JSON.stringify(lat));
  check('no page errors or console errors', good.problems.length === 0, good.problems.join('\n'));
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, 'demo.png'), fullPage: true });
  await page.close();

  // ---- tampered copies, each its own folder under one server
  const registryDir = realpathSync(join(SITE, 'registry'));
  const blobPath = (reg, d) => join(reg, 'blobs/sha256', d.slice(7));
  const snapshot = JSON.parse(readFileSync(join(registryDir, 'snapshot.json'), 'utf8'));
  const index = JSON.parse(readFileSync(join(registryDir, `index/${UNIT.name}.json`), 'utf8'));
  const entry = index.versions[UNIT.version][UNIT.target];
  const manifest = JSON.parse(readFileSync(blobPath(registryDir, entry.manifest), 'utf8'));
  const artifact = manifest.artifact.digest;
  const signer = parseSignature(readFileSync(join(registryDir, 'snapshot.json.minisig'), 'utf8')).keyIdHex;

  let n = 0;
  const copySite = (label) => {
    const dir = join(scratch, `${n++}-${label}`);
    cpSync(SITE, dir, { recursive: true, filter: (src) => src !== join(SITE, 'registry') });
    cpSync(registryDir, join(dir, 'registry'), { recursive: true, dereference: true });
    return dir;
  };
  const scenarios = [];
  {
    const dir = copySite('artifact-flip');
    const p = blobPath(join(dir, 'registry'), artifact);
    const b = readFileSync(p); b[b.length >> 1] ^= 0x01; writeFileSync(p, b);
    scenarios.push({ dir, name: 'one flipped byte in the wasm artifact', code: 'DIGEST_MISMATCH', stage: 'artifact', texts: [artifact, sha(b)], shot: 'demo-digest-mismatch.png' });
  }
  {
    const dir = copySite('artifact-short');
    const p = blobPath(join(dir, 'registry'), artifact);
    const b = readFileSync(p); writeFileSync(p, b.subarray(0, b.length - 1));
    scenarios.push({ dir, name: 'the wasm artifact one byte short', code: 'SIZE_MISMATCH', stage: 'artifact', texts: [`expected ${b.length} bytes`, `found ${b.length - 1}`] });
  }
  {
    const dir = copySite('other-key');
    const kp = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
    const pk = new Uint8Array(await webcrypto.subtle.exportKey('raw', kp.publicKey));
    const id = webcrypto.getRandomValues(new Uint8Array(8));
    const text = `untrusted comment: minisign public key (a stranger)\n${Buffer.concat([Buffer.from('Ed'), id, pk]).toString('base64')}\n`;
    writeFileSync(join(dir, 'trusted-keys.json'), JSON.stringify([text]));
    scenarios.push({ dir, name: 'trusted-keys.json holds a different valid key', code: 'UNTRUSTED_KEY', stage: 'snapshot', texts: [signer, parsePublicKey(text).keyIdHex, 'snapshot.json.minisig'] });
  }
  {
    const dir = copySite('snapshot-sig-flip');
    const p = join(dir, 'registry/snapshot.json.minisig');
    const ls = readFileSync(p, 'utf8').split('\n');
    const raw = Buffer.from(ls[1], 'base64'); raw[40] ^= 0x01; ls[1] = raw.toString('base64');
    writeFileSync(p, ls.join('\n'));
    scenarios.push({ dir, name: 'one flipped bit inside the snapshot\'s Ed25519 signature', code: 'SIGNATURE_INVALID', stage: 'snapshot', texts: ['snapshot.json.minisig', signer] });
  }
  {
    const dir = copySite('snapshot-edit');
    const p = join(dir, 'registry/snapshot.json');
    const s = readFileSync(p, 'utf8');
    const edited = s.replace(/("expires"\s*:\s*")(\d{4})/, (m, a, y) => a + String(Number(y) + 50));
    writeFileSync(p, edited);
    scenarios.push({ dir, name: 'snapshot.json edited (expiry pushed 50 years) under its old signature', code: 'SIGNATURE_INVALID', stage: 'snapshot', texts: ['snapshot.json.minisig'], pre: edited !== s });
  }
  const tbase = await serve(scratch);
  for (const sc of scenarios) {
    const r = await openDemo(ctx, `${tbase}${sc.dir.slice(scratch.length + 1)}/index.html`);
    const missing = sc.texts.filter((t) => !r.message.includes(t));
    const rowsShown = await r.page.locator('#result-table tbody tr').count();
    check(`${sc.name} → error box shows ${sc.code}${sc.texts.length ? ' naming ' + sc.texts.map((t) => t.length > 24 ? t.slice(0, 20) + '…' : t).join(', ') : ''}; the ${sc.stage} check crossed out; nothing runs`,
      sc.pre !== false && r.state === 'error' && r.errorVisible && r.code === sc.code && !missing.length && !rowsShown && r.runDisabled && r.failedStage === sc.stage,
      `state ${r.state}, visible ${r.errorVisible}, code ${r.code}, failed stage ${r.failedStage}, rows shown ${rowsShown}, run disabled ${r.runDisabled}${missing.length ? `, message lacks ${missing.join(', ')}` : ''}\n${r.message}`);
    if (sc.shot) await r.page.screenshot({ path: join(SHOTS, sc.shot), fullPage: true });
    await r.page.close();
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
