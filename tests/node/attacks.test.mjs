// The TUF attack list against runtime/js (docs/security.md): each hostile
// registry is a copy of the fixture's, edited and re-signed with the stock
// minisign by the regtool that tests/cli/attacks.sh carries. Each case
// fails if its check is removed. Ends with "N passed, M failed".
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openRegistry, loadUnit, MoltError } from '../../runtime/js/molt.js';
import { fileFetch, loadPolicy } from '../../runtime/js/molt-node.mjs';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = process.env.FIXTURE ?? join(here, 'build/test');
const T = mkdtempSync(join(tmpdir(), 'molt-attacks-'));
process.on('exit', () => rmSync(T, { recursive: true, force: true }));
const sh = readFileSync(join(here, 'tests/cli/attacks.sh'), 'utf8');
writeFileSync(join(T, 'regtool.py'), sh.slice(sh.indexOf("<<'PY'\n") + 7, sh.indexOf('\nPY\n') + 1));
const rt = (...a) => execFileSync('python3', [join(T, 'regtool.py'), ...a], { encoding: 'utf8' }).trim();
execFileSync('minisign', ['-G', '-W', '-f', '-p', join(T, 'k2.pub'), '-s', join(T, 'k2.key')], { stdio: 'ignore' });
cpSync(join(FIXTURE, 'dev.pub'), join(T, 'dev.pub'));
const dev = join(FIXTURE, 'dev.key'), k2 = join(T, 'k2.key');
const D = rt('keyid', join(T, 'dev.pub')), K2 = rt('keyid', join(T, 'k2.pub'));
const devPub = readFileSync(join(T, 'dev.pub'), 'utf8');
const W = 'wasm32-wasi';
let n = 0, passed = 0, failed = 0;

function fresh() {
  const r = join(T, `r${n++}`);
  cpSync(join(FIXTURE, 'registry'), r, { recursive: true });
  return r;
}
async function policy(p) {
  const f = join(T, `p${n++}.json`);
  writeFileSync(f, JSON.stringify({ format: 1, thresholds: {}, snapshot: { keys: [D] }, ...p }));
  return loadPolicy(f);
}
const key = (id, pub, extra = {}) => ({ id, pub, names: ['*'], ...extra });
const urls = [];
const recording = () => { const f = fileFetch(); return (u) => { urls.push(String(u)); return f(u); }; };
// No artifact cache: every registry here shares the fixture's digests, and each attack must reach the fetch.
const open = (dir, o = {}) => openRegistry({ url: pathToFileURL(dir).href, fetch: recording(), cache: false, ...(o.policy ? {} : { trustedKeys: [devPub] }), ...o });
const load = (reg, o = {}) => loadUnit(reg, { name: 'hello', version: '0.1.0', target: W, ...o });

async function test(name, f) {
  try { await f(); passed++; console.log(`ok - ${name}`); } catch (e) { failed++; console.log(`not ok - ${name}\n  ${e.stack ?? e}`); }
}
async function refused(p, code, text) {
  try { await p; } catch (e) {
    if (!(e instanceof MoltError)) throw e;
    if (e.code !== code || !e.message.includes(text)) throw new Error(`expected ${code} with "${text}", got ${e.code}: ${e.message}`);
    return e;
  }
  throw new Error(`expected ${code}, but it loaded`);
}

await test('policy: a unit signed by an allowed key loads', async () => {
  await load(open(fresh(), { policy: await policy({ keys: [key(D, 'dev.pub')] }) }));
});
await test('key compromise: threshold 2, one key signs → THRESHOLD', async () => {
  const p = await policy({ keys: [key(D, 'dev.pub'), key(K2, 'k2.pub')], thresholds: { hello: 2 } });
  await refused(load(open(fresh(), { policy: p })), 'THRESHOLD', `hello needs signatures by 2 distinct trusted key(s); found 1 (${D})`);
});
await test('key compromise: the same key signing twice counts once → THRESHOLD', async () => {
  const r = fresh(); rt('unit', r, 'hello', '0.1.0', W, `${dev},${dev}`); rt('snapshot', r, dev);
  const p = await policy({ keys: [key(D, 'dev.pub'), key(K2, 'k2.pub')], thresholds: { hello: 2 } });
  await refused(load(open(r, { policy: p })), 'THRESHOLD', `another signature by key ${D}, already counted (each key counts once)`);
});
await test('threshold 2 met by two distinct keys loads', async () => {
  const r = fresh(); rt('unit', r, 'hello', '0.1.0', W, `${dev},${k2}`); rt('snapshot', r, dev);
  await load(open(r, { policy: await policy({ keys: [key(D, 'dev.pub'), key(K2, 'k2.pub')], thresholds: { 'hel*': 2 } }) }));
});
await test('a key not allowed for the name does not count', async () => {
  const r = fresh(); rt('unit', r, 'hello', '0.1.0', W, `${dev},${k2}`); rt('snapshot', r, dev);
  const p = await policy({ keys: [key(D, 'dev.pub'), key(K2, 'k2.pub', { names: ['other-*'] })], thresholds: { hello: 2 } });
  await refused(load(open(r, { policy: p })), 'THRESHOLD', `key ${K2} may not sign hello under the trust policy`);
});
await test('a revoked key is refused', async () => {
  await refused(load(open(fresh(), { policy: await policy({ keys: [key(D, 'dev.pub', { revoked: true })] }) })), 'THRESHOLD', `key ${D} is revoked`);
});
await test('an expired key is refused', async () => {
  await refused(load(open(fresh(), { policy: await policy({ keys: [key(D, 'dev.pub', { expires: '2020-01-01T00:00:00Z' })] }) })), 'THRESHOLD', `key ${D} expired at 2020-01-01T00:00:00Z`);
});
await test('snapshot threshold 2: one key twice refused, two keys load', async () => {
  const p = await policy({ keys: [key(D, 'dev.pub'), key(K2, 'k2.pub')], snapshot: { keys: [D, K2], threshold: 2 } });
  const r = fresh(); rt('snapshot', r, `${dev},${dev}`);
  await refused(load(open(r, { policy: p })), 'THRESHOLD', 'the snapshot needs signatures by 2 distinct trusted key(s); found 1');
  rt('snapshot', r, `${dev},${k2}`);
  await load(open(r, { policy: p }));
});
const version = JSON.parse(readFileSync(join(FIXTURE, 'registry/snapshot.json'))).version;
await test('rollback: a store remembers the version; an older one is refused', async () => {
  const mem = new Map(), store = { get: (k) => mem.get(k), set: (k, v) => mem.set(k, v) };
  const r = fresh(); rt('snapshot', r, dev, String(version + 2));
  await load(open(r, { store }));
  if (mem.get(pathToFileURL(r).href + '/')?.version !== version + 2) throw new Error(`store holds ${JSON.stringify([...mem])}`);
  rt('snapshot', r, dev, String(version + 1));
  await refused(load(open(r, { store })), 'ROLLBACK', `snapshot version ${version + 1} is older than version ${version + 2}`);
});
await test('fast-forward: a version absurdly far ahead is refused', async () => {
  const mem = new Map(), store = { get: (k) => mem.get(k), set: (k, v) => mem.set(k, v) };
  const r = fresh(); await load(open(r, { store }));
  rt('snapshot', r, dev, '1000000000000');
  await refused(load(open(r, { store })), 'FAST_FORWARD', `snapshot version 1000000000000 is more than 1000000 ahead of version ${version}`);
});
await test('malicious mirror: tampered bytes refused; good mirror gives the signed unit', async () => {
  const good = fresh(), bad = fresh();
  const ix = JSON.parse(readFileSync(join(good, 'index/hello.json')));
  const m = JSON.parse(readFileSync(join(good, 'blobs/sha256', ix.versions['0.1.0'][W].manifest.slice(7))));
  const a = join(bad, 'blobs/sha256', m.artifact.digest.slice(7)); const b = readFileSync(a); b[200] ^= 0xff; writeFileSync(a, b);
  await refused(load(open(join(T, 'nowhere'), { mirrors: [pathToFileURL(bad).href] })), 'DIGEST_MISMATCH', `${pathToFileURL(a).href}: expected digest`);
  const u = await load(open(bad, { mirrors: [pathToFileURL(good).href] }));
  if (u.manifestDigest !== ix.versions['0.1.0'][W].manifest) throw new Error('another manifest');
});
await test('arbitrary installation: only files signed metadata names are fetched', async () => {
  const r = fresh(); cpSync(join(r, 'index/hello.json'), join(r, 'index/evil.json'));
  urls.length = 0;
  await refused(loadUnit(open(r), { name: 'evil', version: '0.1.0', target: W }), 'NOT_FOUND', 'no unit named "evil"');
  if (urls.some((u) => u.includes('evil'))) throw new Error(`fetched ${urls.join(' ')}`);
});
await test('extraneous dependencies: reported, never fetched', async () => {
  const r = fresh(); rt('unit', r, 'hello', '0.1.0', W, dev, '{"depends": ["evil@6.6.6"]}'); rt('snapshot', r, dev);
  const deps = []; urls.length = 0;
  await load(open(r), { onProgress: (p) => { if (p.stage === 'depends') deps.push(p.dependency); } });
  if (deps.join() !== 'evil@6.6.6') throw new Error(`reported ${deps}`);
  if (urls.some((u) => u.includes('evil'))) throw new Error(`fetched ${urls.join(' ')}`);
});
await test('yanked: refused unless allowYanked', async () => {
  const r = fresh(); rt('set', r, 'hello', '0.1.0', W, 'yanked', 'true'); rt('snapshot', r, dev);
  await refused(load(open(r)), 'YANKED', 'was yanked');
  await load(open(r), { allowYanked: true });
});

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
