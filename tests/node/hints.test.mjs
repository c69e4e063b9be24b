// Index-entry hints (docs/registry.md, "Hints"): a cold loadUnit takes three
// rounds (snapshot; index; manifest + signatures + artifact + schema pack),
// and hinted bytes are used only when the signed manifest names exactly them.
// Each hostile registry is a copy of the fixture's, edited and its snapshot
// re-signed with the stock minisign (the regtool of tests/cli/attacks.sh).
// Ends with "N passed, M failed".
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openRegistry, loadUnit, memoryCache, clearModuleCache, MoltError } from '../../runtime/js/molt.js';
import { fileFetch } from '../../runtime/js/molt-node.mjs';

const here = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = process.env.FIXTURE ?? join(here, 'build/test');
const T = mkdtempSync(join(tmpdir(), 'molt-hints-'));
process.on('exit', () => rmSync(T, { recursive: true, force: true }));
const sh = readFileSync(join(here, 'tests/cli/attacks.sh'), 'utf8');
writeFileSync(join(T, 'regtool.py'), sh.slice(sh.indexOf("<<'PY'\n") + 7, sh.indexOf('\nPY\n') + 1));
const rt = (...a) => execFileSync('python3', [join(T, 'regtool.py'), ...a], { encoding: 'utf8' }).trim();
const dev = join(FIXTURE, 'dev.key');
const devPub = readFileSync(join(FIXTURE, 'dev.pub'), 'utf8');
const W = 'wasm32-wasi';
const sha = (b) => 'sha256:' + createHash('sha256').update(b).digest('hex');
let n = 0, passed = 0, failed = 0;

function fresh() {
  const r = join(T, `r${n++}`);
  cpSync(join(FIXTURE, 'registry'), r, { recursive: true });
  return r;
}
const blob = (r, d) => join(r, 'blobs/sha256', d.slice(7));
const put = (r, bytes) => { const d = sha(bytes); writeFileSync(blob(r, d), bytes); return d; };
const indexOf = (r, name) => JSON.parse(readFileSync(join(r, `index/${name}.json`), 'utf8'));
const entryOf = (r, name = 'hello') => indexOf(r, name).versions['0.1.0'][W];
const manifestOf = (r, name = 'hello') => JSON.parse(readFileSync(blob(r, entryOf(r, name).manifest), 'utf8'));
// Edits the index entry of name@0.1.0 (wasm32-wasi), then re-signs the snapshot over it.
function edit(r, f, name = 'hello') {
  const ix = indexOf(r, name);
  f(ix.versions['0.1.0'][W]);
  writeFileSync(join(r, `index/${name}.json`), JSON.stringify(ix, null, 1));
  rt('snapshot', r, dev);
}
// A pack blob holding `docs` (strings), named by the entry's hint.
function repack(r, docs, name = 'hello') {
  const b = Buffer.from(JSON.stringify(docs));
  const d = put(r, b);
  edit(r, (e) => { e.schemas_pack = { digest: d, size: b.length }; }, name);
  return d;
}
const packOf = (r, name = 'hello') => JSON.parse(readFileSync(blob(r, entryOf(r, name).schemas_pack.digest), 'utf8'));

// A fetch that holds every request until none has arrived for 40 ms, then
// answers the batch: each batch is one round of loadUnit.
function roundFetch() {
  const base = fileFetch(), rounds = [];
  let pending = [], timer = null;
  const flush = () => {
    const batch = pending; pending = [];
    rounds.push(batch.map((b) => b.url));
    for (const b of batch) base(b.url).then(b.res, b.rej);
  };
  const f = (u) => new Promise((res, rej) => {
    pending.push({ url: String(u), res, rej });
    clearTimeout(timer); timer = setTimeout(flush, 40);
  });
  return { f, rounds };
}
const open = (dir, o = {}) => openRegistry({ url: pathToFileURL(dir).href, trustedKeys: [devPub], fetch: fileFetch(), cache: false, ...o });
const load = (reg, o = {}) => loadUnit(reg, { name: 'hello', version: '0.1.0', target: W, ...o });

async function test(name, f) {
  try { await f(); passed++; console.log(`ok - ${name}`); } catch (e) { failed++; console.log(`not ok - ${name}\n  ${String(e.stack ?? e).split('\n').slice(0, 4).join('\n  ')}`); }
}
function assert(c, msg) { if (!c) throw new Error(msg); }
async function refused(p, code, ...texts) {
  try { await p; } catch (e) {
    if (!(e instanceof MoltError)) throw e;
    const lacks = texts.filter((t) => !e.message.includes(t));
    if (e.code !== code || lacks.length) throw new Error(`expected ${code} with ${JSON.stringify(lacks)}, got ${e.code}: ${e.message}`);
    return e;
  }
  throw new Error(`expected ${code}, but it loaded`);
}
const rel = (r, u) => u.slice(pathToFileURL(r).href.length + 1);

const units = ['hello', ...(existsSync(join(FIXTURE, 'registry/index/explorer.json')) ? ['explorer'] : [])];
await test('the fixture publishes hints: artifact as in the manifest, a pack of its schemas in manifest order', async () => {
  const r = join(FIXTURE, 'registry');
  for (const u of units) {
    const e = entryOf(r, u), m = manifestOf(r, u);
    assert(e.artifact?.digest === m.artifact.digest && e.artifact?.size === m.artifact.size, `${u}: artifact hint ${JSON.stringify(e.artifact)}`);
    const b = readFileSync(blob(r, e.schemas_pack.digest));
    assert(b.length === e.schemas_pack.size, `${u}: pack size ${b.length} vs ${e.schemas_pack.size}`);
    const docs = JSON.parse(b);
    assert(docs.length === m.schemas.length && docs.every((d, i) => sha(Buffer.from(d)) === m.schemas[i].digest), `${u}: the pack is not the manifest's schemas`);
  }
});

for (const u of units) {
  await test(`${u}: a cold load takes 3 rounds; the third is the manifest, its signatures, the artifact and the schema pack`, async () => {
    const r = fresh(), { f, rounds } = roundFetch();
    const unit = await loadUnit(open(r, { fetch: f }), { name: u, version: '0.1.0', target: W });
    const e = entryOf(r, u), m = manifestOf(r, u);
    const got = rounds.map((x) => x.map((y) => rel(r, y)).sort());
    const want = [['snapshot.json', 'snapshot.json.minisig'], [`index/${u}.json`],
      [e.manifest, ...e.signatures, e.artifact.digest, e.schemas_pack.digest].map((d) => `blobs/sha256/${d.slice(7)}`).sort()];
    assert(JSON.stringify(got) === JSON.stringify(want), `rounds ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    assert(unit.manifestDigest === e.manifest, 'another manifest');
    console.log(`  # ${u}: ${rounds.length} rounds, ${rounds.flat().length} requests (${m.schemas.length} schemas in one pack)`);
  });
  await test(`${u}: without hints (an older registry) it still loads, in 4 rounds, one request per schema`, async () => {
    const r = fresh();
    edit(r, (e) => { delete e.artifact; delete e.schemas_pack; }, u);
    const { f, rounds } = roundFetch();
    await loadUnit(open(r, { fetch: f }), { name: u, version: '0.1.0', target: W });
    const m = manifestOf(r, u);
    assert(rounds.length === 4, `rounds: ${JSON.stringify(rounds.map((x) => x.map((y) => rel(r, y))))}`);
    assert(rounds[3].length === 1 + m.schemas.length, `round 4 has ${rounds[3].length} requests, expected the artifact and ${m.schemas.length} schemas`);
    console.log(`  # ${u} without hints: ${rounds.length} rounds, ${rounds.flat().length} requests`);
  });
}

await test('only the artifact hinted: 3 rounds to the artifact, schemas one by one after the manifest', async () => {
  const r = fresh();
  edit(r, (e) => { delete e.schemas_pack; });
  const { f, rounds } = roundFetch();
  await load(open(r, { fetch: f }));
  const e = entryOf(r);
  assert(rounds.length === 4 && rounds[2].includes(pathToFileURL(blob(r, e.artifact.digest)).href), JSON.stringify(rounds));
});

await test('a hinted artifact that differs from the signed manifest → METADATA_INVALID, never used', async () => {
  const r = fresh(), other = entryOf(r, 'countdown').artifact;
  edit(r, (e) => { e.artifact = other; });
  const m = manifestOf(r);
  await refused(load(open(r)), 'METADATA_INVALID', `0.1.0.${W}.artifact hints ${other.digest} (${other.size} bytes)`,
    `but the signed manifest ${entryOf(r).manifest} names ${m.artifact.digest} (${m.artifact.size} bytes)`, 'registry is inconsistent');
});
await test('a hinted artifact size that differs from the signed manifest → METADATA_INVALID (not a size error)', async () => {
  const r = fresh(), m = manifestOf(r);
  edit(r, (e) => { e.artifact = { digest: m.artifact.digest, size: m.artifact.size + 1 }; });
  await refused(load(open(r)), 'METADATA_INVALID', `hints ${m.artifact.digest} (${m.artifact.size + 1} bytes)`, `(${m.artifact.size} bytes)`);
});
await test('a malformed hint → METADATA_INVALID naming the field', async () => {
  const r = fresh();
  edit(r, (e) => { e.schemas_pack = 'sha256:nothex'; });
  await refused(load(open(r)), 'METADATA_INVALID', `0.1.0.${W}.schemas_pack: expected a hint {"digest"`);
  const r2 = fresh();
  edit(r2, (e) => { e.artifact.size = -1; });
  await refused(load(open(r2)), 'METADATA_INVALID', `0.1.0.${W}.artifact.size: expected a size between 0 and`);
});
await test('a pack missing a schema → METADATA_INVALID naming the missing schema', async () => {
  const r = fresh(), m = manifestOf(r), docs = packOf(r);
  const last = m.schemas.at(-1);
  repack(r, docs.slice(0, -1));
  await refused(load(open(r)), 'METADATA_INVALID', 'does not hold exactly the schemas of the signed manifest',
    `it holds ${docs.length - 1} document(s), the manifest lists ${docs.length} schema(s)`, `it lacks ${last.id}@v${last.version} (${last.digest})`);
});
await test('a pack holding an extra document → METADATA_INVALID naming the entry', async () => {
  const r = fresh(), docs = packOf(r), extra = '{"id":"evil.x","version":1,"type":"int"}';
  repack(r, [...docs, extra]);
  await refused(load(open(r)), 'METADATA_INVALID', `entry ${docs.length} (${sha(Buffer.from(extra))}) is not a schema the manifest lists`);
});
await test('a pack entry whose bytes do not hash to the manifest\'s digest → METADATA_INVALID naming schema and digests', async () => {
  const r = fresh(), m = manifestOf(r), docs = packOf(r);
  const changed = docs[0].replace('"type"', ' "type"');
  repack(r, [changed, ...docs.slice(1)]);
  await refused(load(open(r)), 'METADATA_INVALID', `entry 0 hashes to ${sha(Buffer.from(changed))}, but the manifest lists ${m.schemas[0].id}@v${m.schemas[0].version} as ${m.schemas[0].digest}`);
});
await test('the right schemas in another order → METADATA_INVALID (the pack follows the manifest)', async () => {
  const r = fresh(), docs = packOf(r);
  repack(r, [...docs].reverse());
  await refused(load(open(r)), 'METADATA_INVALID', 'entry 0 hashes to');
});
await test('a pack that is not a JSON array of strings → METADATA_INVALID', async () => {
  const r = fresh();
  repack(r, [1, 2]);
  await refused(load(open(r)), 'METADATA_INVALID', 'expected a JSON array of strings', 'array holding a non-string');
});
await test('a pack blob altered on the server (not what the index hints) → DIGEST_MISMATCH', async () => {
  const r = fresh(), d = entryOf(r).schemas_pack.digest, p = blob(r, d);
  const b = readFileSync(p); b[5] ^= 0x01; writeFileSync(p, b);
  await refused(load(open(r)), 'DIGEST_MISMATCH', `schema pack of hello@0.1.0 (${W})`, `expected digest ${d}`);
});
await test('a flipped byte in the hinted artifact → DIGEST_MISMATCH (artifact of …), after the manifest verifies', async () => {
  const r = fresh(), a = manifestOf(r).artifact.digest, p = blob(r, a);
  const b = readFileSync(p); b[b.length >> 1] ^= 0x01; writeFileSync(p, b);
  await refused(load(open(r)), 'DIGEST_MISMATCH', `artifact of hello@0.1.0 (${W})`, `expected digest ${a}`, sha(b));
});
await test('order of use: a bad manifest signature is reported, not the hinted files', async () => {
  const r = fresh(), e = entryOf(r);
  const p = blob(r, e.artifact.digest); const b = readFileSync(p); b[10] ^= 1; writeFileSync(p, b);
  // The manifest signed by an untrusted key: the signature fails before any hinted byte is looked at.
  execFileSync('minisign', ['-G', '-W', '-f', '-p', join(T, 'k2.pub'), '-s', join(T, 'k2.key')], { stdio: 'ignore' });
  rt('unit', r, 'hello', '0.1.0', W, join(T, 'k2.key')); rt('snapshot', r, dev);
  const err = await refused(load(open(r)), 'UNTRUSTED_KEY');
  assert(!/artifact of|schema pack/.test(err.message), err.message);
});
await test('progress: stages in check order; the artifact\'s total is its size from the first event; the pack under "schemas"', async () => {
  const r = fresh(), seen = [], art = [];
  // (The signature and manifest fetches run together, so their events interleave.)
  await load(open(r), { onProgress: (p) => { if (!seen.includes(p.stage)) seen.push(p.stage); if (p.stage === 'artifact') art.push([p.loaded, p.total]); } });
  const order = ['snapshot', 'index', 'signature', 'manifest', 'schemas', 'artifact', 'compile', 'init', 'ready'];
  assert(JSON.stringify(seen) === JSON.stringify(order), `first events of each stage: ${seen.join(' ')}`);
  const size = manifestOf(r).artifact.size;
  assert(art.length >= 2 && art.every(([, t]) => t === size) && art.at(-1)[0] === size, JSON.stringify(art));
});
await test('cache by digest: with the artifact cached, a hinted load does not fetch it (module, then bytes)', async () => {
  const r = fresh(), cache = memoryCache(), urls = [];
  const base = fileFetch(), f = (u) => { urls.push(String(u)); return base(u); };
  const a = manifestOf(r).artifact.digest, artUrl = pathToFileURL(blob(r, a)).href;
  await load(open(r, { fetch: f, cache }));
  assert(urls.includes(artUrl), 'the first load fetched no artifact');
  urls.length = 0;
  const u2 = await load(open(r, { fetch: f, cache }));
  assert(!urls.includes(artUrl) && u2.metrics.cached === 'module', `second load: cached ${u2.metrics.cached}, fetched ${urls.join(' ')}`);
  clearModuleCache(); urls.length = 0;
  const u3 = await load(open(r, { fetch: f, cache }));
  assert(!urls.includes(artUrl) && u3.metrics.cached === 'bytes', `third load: cached ${u3.metrics.cached}, fetched ${urls.join(' ')}`);
  // A damaged cache entry is refused, deleted and fetched again, as without hints.
  clearModuleCache(); await cache.put(a, new Uint8Array([0, 97, 115, 109])); urls.length = 0;
  const u4 = await load(open(r, { fetch: f, cache }));
  assert(urls.includes(artUrl) && /cached artifact of hello/.test(u4.metrics.cacheRefused ?? ''), `fourth load: ${u4.metrics.cacheRefused}`);
});
await test('a hint disagreeing with the manifest is refused even when its artifact is in the cache', async () => {
  const cache = memoryCache(), good = fresh();
  await load(open(good, { cache }));
  const r = fresh(), other = entryOf(r, 'countdown').artifact;
  await loadUnit(open(r, { cache }), { name: 'countdown', version: '0.1.0', target: W });
  edit(r, (e) => { e.artifact = other; });
  await refused(load(open(r, { cache })), 'METADATA_INVALID', `hints ${other.digest}`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
