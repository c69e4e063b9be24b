// The JS host's digest cache, byte progress over real HTTP servers, Arrow-codec
// functions and the Unit lifecycle (stats, close), under Node 20.
//
//   FIXTURE=build/test node tests/node/host.test.mjs
//
// Uses the fixture registry ($FIXTURE/registry, made by scripts/fixture if
// missing), small python3 HTTP servers on 127.0.0.1 started here (one that
// gzips every response, one that sends no Content-Length), and a tiny echo
// unit compiled here with clang for wasm32 whose schemas have codec arrow,
// fed with Arrow IPC streams written by apache-arrow. Ends with "N passed, M failed".

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as A from 'apache-arrow';
import * as molt from '../../runtime/js/molt.js';
import { fileFetch } from '../../runtime/js/molt-node.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = process.env.FIXTURE ?? join(ROOT, 'build/test');
const tmp = mkdtempSync(join(tmpdir(), 'molt-host-'));
const sha = (b) => 'sha256:' + createHash('sha256').update(b).digest('hex');

let passed = 0, failed = 0;
async function test(name, fn) {
  try { await fn(); passed++; console.log(`ok - ${name}`); } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split('\n').slice(0, 5).join('\n  ')}`);
  }
}
function assert(c, msg) { if (!c) throw new Error(msg); }
function eq(a, b, msg = '') {
  const s = (v) => JSON.stringify(v, (k, x) => typeof x === 'bigint' ? `${x}n` : x);
  if (s(a) !== s(b)) throw new Error(`${msg} expected ${s(b)}, found ${s(a)}`);
}
async function rejects(p, code, ...texts) {
  let e;
  try { await (typeof p === 'function' ? p() : p); } catch (x) { e = x; }
  assert(e, `expected MoltError ${code}, but nothing was thrown`);
  assert(e instanceof molt.MoltError, `expected MoltError ${code}, found ${e.stack}`);
  assert(e.code === code, `expected code ${code}, found ${e.code}: ${e.message}`);
  for (const t of texts) assert(e.message.includes(t), `message lacks ${JSON.stringify(t)}: ${e.message}`);
  return e;
}

if (!existsSync(join(FIXTURE, 'registry/snapshot.json'))) {
  const r = spawnSync(join(ROOT, 'scripts/fixture'), [FIXTURE], { stdio: 'inherit' });
  if (r.status !== 0) { console.log('cannot make the fixture (scripts/fixture)\n0 passed, 1 failed'); process.exit(1); }
}
const REG = join(FIXTURE, 'registry');
const pub = readFileSync(join(FIXTURE, 'dev.pub'), 'utf8');
const ix = JSON.parse(readFileSync(join(REG, 'index/hello.json')));
const helloManifest = JSON.parse(readFileSync(join(REG, 'blobs/sha256', ix.versions['0.1.0']['wasm32-wasi'].manifest.slice(7))));
const ART = helloManifest.artifact;
const artPath = `blobs/sha256/${ART.digest.slice(7)}`;

// A file fetch that records every URL it is asked for.
function recorder() {
  const f = fileFetch(), urls = [];
  return { urls, fetch: (u) => { urls.push(String(u)); return f(u); }, artifact: () => urls.filter((u) => u.endsWith(artPath)).length };
}
const open = (rec, o = {}) => molt.openRegistry({ url: pathToFileURL(REG).href + '/', trustedKeys: [pub], fetch: rec.fetch, ...o });
const hello = (reg, o = {}) => molt.loadUnit(reg, { name: 'hello', version: '0.1.0', ...o });

// ------------------------------------------------------------ the digest cache

await test('cache: the first load fetches the artifact; the second uses the compiled module (no artifact request)', async () => {
  molt.clearModuleCache();
  const rec = recorder(), bytes = molt.memoryCache();
  const a = await hello(open(rec, { cache: bytes }));
  eq([a.metrics.cached, rec.artifact()], [false, 1]);
  eq(a.worker, false, 'Node runs units on the calling thread');
  const b = await hello(open(rec, { cache: bytes }));
  eq([b.metrics.cached, rec.artifact(), b.metrics.compileMs < a.metrics.compileMs + 1], ['module', 1, true]);
  eq(b.metrics.artifactBytes, ART.size);
  eq(await b.call('greet', { name: 'Ada' }).result, { greeting: 'Hello, Ada!' });
  assert(rec.urls.filter((u) => u.endsWith('snapshot.json')).length === 2, 'the snapshot is fetched and verified on every load');
});

await test('cache: with the module cache cleared, the bytes come from the cache, hashed again (cached: "bytes")', async () => {
  molt.clearModuleCache();
  const rec = recorder(), bytes = molt.memoryCache();
  await hello(open(rec, { cache: bytes }));
  molt.clearModuleCache();
  const ev = [];
  const u = await hello(open(rec, { cache: bytes }), { onProgress: (p) => { if (p.stage === 'artifact') ev.push(p); } });
  eq([u.metrics.cached, rec.artifact()], ['bytes', 1]);
  eq(ev.map((p) => [p.loaded, p.total, p.cached]), [[ART.size, ART.size, 'bytes']], 'one artifact event, complete');
  eq(await u.call('greet', { name: 'Bo' }).result, { greeting: 'Hello, Bo!' });
});

await test('cache: a corrupted cached entry is refused (digest), deleted, fetched again and replaced', async () => {
  molt.clearModuleCache();
  const rec = recorder(), bytes = molt.memoryCache();
  await hello(open(rec, { cache: bytes }));
  molt.clearModuleCache();
  const bad = (await bytes.get(ART.digest)).slice();
  bad[100] ^= 0xff;
  await bytes.put(ART.digest, bad);
  const u = await hello(open(rec, { cache: bytes }));
  eq([u.metrics.cached, rec.artifact()], [false, 2]);
  assert(u.metrics.cacheRefused.includes(`with digest ${sha(bad)}, expected ${ART.size} bytes with digest ${ART.digest}`), u.metrics.cacheRefused);
  eq(sha(await bytes.get(ART.digest)), ART.digest, 'the cache holds the good bytes again');
  eq(await u.call('greet', { name: 'Cy' }).result, { greeting: 'Hello, Cy!' });
});

await test('cache: a truncated entry in a cacheDir is refused by size; the directory gets the good file back', async () => {
  molt.clearModuleCache();
  const dir = join(tmp, 'cache'), rec = recorder();
  const a = await hello(open(rec), { cacheDir: dir });
  eq(a.metrics.cached, false);
  const file = join(dir, 'sha256', ART.digest.slice(7));
  eq(sha(readFileSync(file)), ART.digest, 'stored under sha256/<hex>');
  eq(readdirSync(join(dir, 'sha256')).length, 1, 'no temporary files left');
  molt.clearModuleCache();
  eq((await hello(open(rec), { cacheDir: dir })).metrics.cached, 'bytes');
  molt.clearModuleCache();
  writeFileSync(file, readFileSync(file).subarray(0, 1000));
  const u = await hello(open(rec), { cacheDir: dir });
  eq(u.metrics.cached, false);
  assert(u.metrics.cacheRefused.includes(`is 1000 bytes, expected ${ART.size} bytes`), u.metrics.cacheRefused);
  eq(sha(readFileSync(file)), ART.digest);
  eq(rec.artifact(), 2);
});

await test('cache: false fetches every time and keeps nothing; a failing cache is a miss, not an error', async () => {
  molt.clearModuleCache();
  const rec = recorder();
  await hello(open(rec), { cache: false });
  await hello(open(rec), { cache: false });
  eq(rec.artifact(), 2);
  const broken = { get: async () => { throw new Error('disk on fire'); }, put: async () => { throw new Error('full'); } };
  const u = await hello(open(rec), { cache: broken });
  eq([u.metrics.cached, rec.artifact()], [false, 3]);
  await rejects(() => hello(open(rec), { cache: 'yes' }), 'OPTIONS_INVALID', 'cache must be false, true or a cache object');
  await rejects(() => hello(open(rec), { cache: { get() {} } }), 'OPTIONS_INVALID', 'get(digest) and put(digest, bytes)');
});

await test('a warm start still fetches and verifies the snapshot and index: an unknown version is refused', async () => {
  // The cached module does not stand in for the signed metadata: a registry that
  // no longer lists the unit refuses it even though its module is in memory.
  const rec = recorder();
  await hello(open(rec));
  await rejects(() => molt.loadUnit(open(rec), { name: 'hello', version: '9.9.9' }), 'NOT_FOUND', 'no version "9.9.9"');
});

// ------------------------------------------------------------ Unit lifecycle

await test('stats() gives the wasm memory and instances; close() makes later calls UNIT_CLOSED', async () => {
  const u = await hello(open(recorder()));
  const s = await u.stats();
  assert(s.memoryBytes >= 65536 && s.memoryBytes % 65536 === 0, JSON.stringify(s));
  eq(s.instances, 1);
  u.close();
  u.close();
  await rejects(u.call('greet', { name: 'x' }).result, 'UNIT_CLOSED', 'hello@0.1.0 was closed');
  await rejects(u.callEnvelope(1, new Uint8Array([0xc0])).result, 'UNIT_CLOSED');
  eq((await u.stats()).memoryBytes, 0);
});

await test('worker: true in Node (no global Worker) is OPTIONS_INVALID; a bad worker value too', async () => {
  await rejects(() => hello(open(recorder()), { worker: true }), 'OPTIONS_INVALID', 'no Worker');
  await rejects(() => hello(open(recorder()), { worker: 'yes' }), 'OPTIONS_INVALID', 'worker must be true or false');
});

// ------------------------------------------------------------ progress over HTTP

// A static server for REG: mode gzip compresses every body (Content-Encoding:
// gzip, Content-Length the compressed size); mode chunked sends no
// Content-Length, the body in 1000-byte chunks.
const SERVER_PY = String.raw`
import gzip, http.server, os, sys
root, mode = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        p = os.path.realpath(os.path.join(root, self.path.split('?')[0].lstrip('/')))
        if not p.startswith(os.path.realpath(root)) or not os.path.isfile(p):
            self.send_response(404); self.send_header('Content-Length', '0'); self.end_headers(); return
        body = open(p, 'rb').read()
        self.send_response(200)
        if mode == 'gzip':
            body = gzip.compress(body)
            self.send_header('Content-Encoding', 'gzip'); self.send_header('Content-Length', str(len(body))); self.end_headers()
            self.wfile.write(body)
        else:
            self.send_header('Transfer-Encoding', 'chunked'); self.end_headers()
            for i in range(0, len(body), 1000):
                c = body[i:i + 1000]
                self.wfile.write(b'%x\r\n' % len(c) + c + b'\r\n'); self.wfile.flush()
            self.wfile.write(b'0\r\n\r\n')
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
`;
writeFileSync(join(tmp, 'server.py'), SERVER_PY);
const servers = [];
function pyServer(mode) {
  const child = spawn('python3', [join(tmp, 'server.py'), REG, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  return new Promise((res, rej) => {
    child.on('error', rej);
    child.stdout.once('data', (d) => res(`http://127.0.0.1:${String(d).trim()}/`));
  });
}

for (const mode of ['gzip', 'chunked']) {
  await test(`progress (${mode}): artifact total is the manifest's size; monotonic; never loaded > total; last event loaded === total`, async () => {
    const base = await pyServer(mode);
    const seen = [];
    const f = async (u) => { const r = await fetch(u); seen.push([String(u), r.headers.get('content-encoding'), r.headers.get('content-length')]); return r; };
    const ev = {};
    const reg = molt.openRegistry({ url: base, trustedKeys: [pub], fetch: f, cache: false });
    const u = await molt.loadUnit(reg, { name: 'hello', version: '0.1.0', onProgress: (p) => {
      if (p.loaded !== undefined) (ev[p.url] ??= []).push([p.loaded, p.total, p.stage]);
    } });
    eq(await u.call('greet', { name: mode }).result, { greeting: `Hello, ${mode}!` });
    const artUrl = base + artPath;
    const art = seen.find(([url]) => url === artUrl);
    if (mode === 'gzip') assert(art[1] === 'gzip' && Number(art[2]) < ART.size, `the server sent ${JSON.stringify(art)}`);
    else eq(art[2], null, 'no Content-Length');
    const a = ev[artUrl];
    assert(a.length >= 2, JSON.stringify(a));
    for (const [i, [loaded, total]] of a.entries()) {
      eq(total, ART.size, `artifact event ${i} total`);
      assert(loaded <= total, `artifact event ${i}: ${loaded} > ${total}`);
      if (i) assert(loaded >= a[i - 1][0], `artifact event ${i} went backwards`);
    }
    eq(a.at(-1).slice(0, 2), [ART.size, ART.size]);
    // Files with no size in signed metadata (the snapshot): no total from a
    // compressed or missing Content-Length, but a last event with loaded === total.
    const snap = ev[base + 'snapshot.json'], size = readFileSync(join(REG, 'snapshot.json')).length;
    assert(snap.slice(0, -1).every(([l, t]) => t === null && l <= size), JSON.stringify(snap));
    eq(snap.at(-1).slice(0, 2), [size, size]);
  });
}

// ------------------------------------------------------------ Arrow-codec functions

// A unit that answers every call with [ "test.table", 1, <the request's payload> ].
const ECHO_C = String.raw`
typedef unsigned int u32; typedef long long i64; typedef int i32; typedef unsigned char u8;
#define EXPORT(n) __attribute__((export_name(n)))
extern u8 __heap_base;
static u32 top;
static u8 *bump(u32 n) {
	if (!top) top = (u32)&__heap_base;
	top = (top + 7u) & ~7u;
	u32 p = top, end = p + n, have = (u32)__builtin_wasm_memory_size(0) * 65536u;
	if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (unsigned long)-1) return 0;
	top = end; return (u8 *)p;
}
EXPORT("molt_abi_version") u32 molt_abi_version(void) { return 1; }
EXPORT("molt_alloc") void *molt_alloc(u32 n) { return bump(n ? n : 1); }
EXPORT("molt_free") void molt_free(void *p, u32 n) { (void)p; (void)n; }
EXPORT("molt_init") i32 molt_init(const u8 *c, u32 n) { (void)c; (void)n; return 0; }
static u8 *res; static u32 res_len; static i64 next = 1, live;
EXPORT("molt_call") i64 molt_call(u32 fn, const u8 *e, u32 n) {
	u32 pos = 1, len = 0, i;
	(void)fn;
	if (n < 3 || e[0] != 0x93) return -2;
	if ((e[pos] & 0xe0) == 0xa0) pos += 1 + (e[pos] & 0x1f); else if (e[pos] == 0xd9) pos += 2 + e[pos + 1]; else return -2;
	pos++;
	if (e[pos] == 0xc4) { len = e[pos + 1]; pos += 2; }
	else if (e[pos] == 0xc5) { len = (e[pos + 1] << 8) | e[pos + 2]; pos += 3; }
	else if (e[pos] == 0xc6) { len = ((u32)e[pos + 1] << 24) | (e[pos + 2] << 16) | (e[pos + 3] << 8) | e[pos + 4]; pos += 5; }
	else return -2;
	if (pos + len > n) return -2;
	res = bump(len + 18); res_len = len + 18;
	const char *id = "test.table";
	res[0] = 0x93; res[1] = 0xaa;
	for (i = 0; i < 10; i++) res[2 + i] = (u8)id[i];
	res[12] = 1; res[13] = 0xc6; res[14] = len >> 24; res[15] = len >> 16; res[16] = len >> 8; res[17] = len;
	for (i = 0; i < len; i++) res[18 + i] = e[pos + i];
	return live = next++;
}
EXPORT("molt_poll") i32 molt_poll(i64 t, const u8 **out, u32 *out_len) {
	if (!t || t != live) return -1;
	live = 0; *out = res; *out_len = res_len; return 1;
}
EXPORT("molt_cancel") i32 molt_cancel(i64 t) { return t && t == live ? 0 : -1; }
`;

const TABLE = { id: 'test.table', version: 1, codec: 'arrow', doc: 'Test rows.', type: { record: [
  { name: 'city', type: 'string' }, { name: 'n', type: 'int' }, { name: 'x', type: { nullable: 'float' } }, { name: 'ok', type: 'bool' }] } };
const OTHER = { id: 'test.other', version: 1, codec: 'arrow', doc: 'One int column.', type: { record: [{ name: 'k', type: 'int' }] } };

function buildEcho() {
  const c = join(tmp, 'echo.c'), w = join(tmp, 'echo.wasm');
  writeFileSync(c, ECHO_C);
  const r = spawnSync('clang', ['--target=wasm32-wasi', '-O2', '-ffreestanding', '-nostdlib', '-mexec-model=reactor',
    '-Wl,--no-entry', '-Wl,--strip-all', '-o', w, c], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`clang could not build the echo unit: ${r.stderr}`);
  return readFileSync(w);
}

const v = (a, t) => A.vectorFromArray(a, t);
const ipc = (cols) => A.tableToIPC(new A.Table(cols), 'stream');
const rows = (o = {}) => ipc({
  city: v(['Oslo', 'Lima', 'Pune'], new A.Utf8), n: v([1n, 2n, 3n], new A.Int64),
  x: v([0.5, null, 2.5], new A.Float64), ok: v([true, false, true], new A.Bool), ...o });

let echo;
await test('arrow: the echo unit loads from a manifest whose schemas have codec arrow', async () => {
  const wasm = buildEcho();
  const schemas = [TABLE, OTHER];
  const manifest = { format: 1, name: 'echo', version: '0.1.0', kind: 'module', target: 'wasm32-wasi', abi_version: '0.1',
    artifact: { digest: sha(wasm), size: wasm.length, media_type: 'application/wasm' },
    functions: [{ id: 1, name: 'echo', input: { id: 'test.table', version: 1 }, output: { id: 'test.table', version: 1 } },
      { id: 2, name: 'relabel', input: { id: 'test.other', version: 1 }, output: { id: 'test.table', version: 1 } }],
    schemas: schemas.map((s) => ({ id: s.id, version: s.version, digest: sha(molt.canonicalJson(s)) })) };
  echo = await molt.instantiateLocal({ bytes: wasm, manifest: JSON.stringify(manifest), schemas });
});

await test('arrow: call() resolves to the Arrow IPC stream bytes, which apache-arrow reads back', async () => {
  const s = rows();
  const out = await echo.call('echo', s).result;
  assert(out instanceof Uint8Array, `resolved to ${out?.constructor?.name}`);
  eq(Buffer.from(out).equals(Buffer.from(s)), true, 'the same bytes');
  const t = A.tableFromIPC(out);
  eq([t.numRows, t.getChild('city').toArray(), t.getChild('x').get(1), t.getChild('n').get(2)], [3, ['Oslo', 'Lima', 'Pune'], null, 3n]);
  const info = molt.checkArrowStream(out, TABLE);
  eq([info.batches, info.rows, info.columns.map((c) => c.nullable)], [1, 3, [false, false, true, false]]);
});

await test('arrow input: a column of another type is INVALID_INPUT naming the column, expected and found', async () => {
  const e = await rejects(echo.call('echo', rows({ n: v([1.5, 2, 3], new A.Float64) })).result, 'INVALID_INPUT',
    'echo.echo input (test.table v1): column 1 "n": expected int (Arrow Int(32 or 64, signed)), found FloatingPoint(DOUBLE)');
  eq([e.path, e.found], ['n', 'FloatingPoint(DOUBLE)']);
  await rejects(echo.call('echo', rows({ n: v([1, 2, 3], new A.Int8) })).result, 'INVALID_INPUT', 'found Int(8, signed)');
  await rejects(echo.call('echo', rows({ n: v([1, 2, 3], new A.Uint32) })).result, 'INVALID_INPUT', 'found Int(32, unsigned)');
  await rejects(echo.call('echo', rows({ x: v([1, 2, 3], new A.Float32) })).result, 'INVALID_INPUT', 'column 2 "x": expected float (Arrow FloatingPoint(DOUBLE)), found FloatingPoint(SINGLE)');
  await rejects(echo.call('echo', rows({ city: v(['a', 'b', 'c'], new A.Dictionary(new A.Utf8(), new A.Int32())) })).result, 'INVALID_INPUT', 'column 0 "city"');
  eq(await echo.call('echo', rows({ n: v([1, 2, 3], new A.Int32) })).result instanceof Uint8Array, true, 'Int32 is an int column too');
});

await test('arrow input: names, column count, nulls in a non-nullable column, framing', async () => {
  const renamed = ipc({ town: v(['a'], new A.Utf8), n: v([1n], new A.Int64), x: v([1], new A.Float64), ok: v([true], new A.Bool) });
  await rejects(echo.call('echo', renamed).result, 'INVALID_INPUT', 'column 0: expected the name "city", found "town"');
  await rejects(echo.call('echo', ipc({ city: v(['a'], new A.Utf8) })).result, 'INVALID_INPUT', 'the stream has 1 column(s) ("city"), expected 4: "city", "n", "x", "ok"');
  await rejects(echo.call('echo', rows({ n: v([1n, null, 3n], new A.Int64) })).result, 'INVALID_INPUT',
    'record batch 0), column 1 "n": expected no nulls (the column is not nullable in test.table v1), found 1');
  const s = rows();
  await rejects(echo.call('echo', s.subarray(0, s.length - 8)).result, 'INVALID_INPUT', 'without the end-of-stream marker');
  await rejects(echo.call('echo', s.subarray(0, 40)).result, 'INVALID_INPUT', 'runs past the end of the stream');
  await rejects(echo.call('echo', Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])).result, 'INVALID_INPUT', 'expected the continuation marker 0xFFFFFFFF, found 0x04030201');
  const extra = new Uint8Array(s.length + 1); extra.set(s);
  await rejects(echo.call('echo', extra).result, 'INVALID_INPUT', '1 bytes follow the end-of-stream marker');
  await rejects(echo.call('echo', { city: ['a'] }).result, 'INVALID_INPUT', 'expected an Arrow IPC stream (Uint8Array), found map (1 keys)');
});

await test('arrow output: a result whose columns are not the output schema\'s is INVALID_OUTPUT (runtime, code 3)', async () => {
  const e = await rejects(echo.call('relabel', ipc({ k: v([1n, 2n], new A.Int64) })).result, 'INVALID_OUTPUT',
    'echo.relabel output (test.table v1): the stream has 1 column(s) ("k"), expected 4');
  eq([e.class, e.unitCode], ['runtime', 3]);
});

await test('arrow: a fuzzed stream never throws anything but a MoltError', async () => {
  const s = rows();
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 3000; i++) {
    const b = s.slice();
    for (let k = 0; k < 1 + (i % 4); k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    try { molt.checkArrowStream(b, TABLE, 'fuzz', 'INVALID_INPUT'); } catch (e) {
      if (!(e instanceof molt.MoltError) || e.code !== 'INVALID_INPUT') throw new Error(`mutation ${i}: ${e.stack}`);
    }
  }
});

for (const s of servers) s.kill();
rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
