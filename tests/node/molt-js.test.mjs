// Tests for runtime/js/molt.js and molt-node.mjs under Node 20.
//
//   node tests/node/molt-js.test.mjs                 run the tests
//   node tests/node/molt-js.test.mjs --scratch-registry DIR
//        only build a scratch registry (DIR/registry, DIR/keys/dev.pub) holding
//        hello@0.1.0 for wasm32-wasi made from the test unit below; useful
//        until `mrecipe publish` can make the real one.
//
// Signatures come from the stock minisign CLI, so these tests check our
// verifier against a tool we did not write. The end-to-end cases build a
// throwaway wasm unit with clang (wasm32-wasi) and skip when it is missing.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, readdirSync, cpSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import * as molt from '../../runtime/js/molt.js';
import { fileFetch, main as cliMain } from '../../runtime/js/molt-node.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const sha = (b) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const has = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

// ------------------------------------------------------------ a test unit

// A Molt ABI v0.1 unit in freestanding C, MsgPack written by hand (test only):
// 1 greet {name} -> {greeting: "Hello, NAME!"} after one pending poll; empty name
//   -> validation error at path "name";
// 2 wait {polls} -> stays pending `polls` polls (cancel test), then {polls};
// 3 bad -> a greet_response whose greeting is an int (output validation test).
const UNIT_C = String.raw`
typedef unsigned int u32; typedef long long i64; typedef int i32; typedef unsigned char u8;
#define EXPORT(n) __attribute__((export_name(n)))
void *memcpy(void *d, const void *s, unsigned long n) { u8 *a = d; const u8 *b = s; while (n--) *a++ = *b++; return d; }
void *memset(void *d, int c, unsigned long n) { u8 *a = d; while (n--) *a++ = (u8)c; return d; }
extern u8 __heap_base;
static u32 top;
static void *bump(u32 n) {
	if (!top) top = (u32)&__heap_base;
	top = (top + 7u) & ~7u;
	u32 p = top, end = p + n, have = (u32)__builtin_wasm_memory_size(0) * 65536u;
	if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (unsigned long)-1) return 0;
	top = end; return (void *)p;
}
static u32 slen(const char *s) { u32 n = 0; while (s[n]) n++; return n; }
static int eq(const u8 *a, u32 n, const char *b) { u32 i; if (slen(b) != n) return 0; for (i = 0; i < n; i++) if (a[i] != (u8)b[i]) return 0; return 1; }
EXPORT("molt_abi_version") u32 molt_abi_version(void) { return ABI; }
EXPORT("molt_alloc") void *molt_alloc(u32 n) { return bump(n ? n : 1); }
EXPORT("molt_free") void molt_free(void *p, u32 n) { (void)p; (void)n; }
static int inited;
EXPORT("molt_init") i32 molt_init(const u8 *cfg, u32 len) { if (len < 1 || cfg[0] != 0x93) return -2; inited = 1; return 0; }
typedef struct { u8 b[512]; u32 n; } w_t;
static void w8(w_t *w, u8 c) { if (w->n < sizeof w->b) w->b[w->n++] = c; }
static void wstr(w_t *w, const u8 *s, u32 n) { if (n < 32) w8(w, 0xa0 | n); else { w8(w, 0xd9); w8(w, n); } while (n--) w8(w, *s++); }
static void wcs(w_t *w, const char *s) { wstr(w, (const u8 *)s, slen(s)); }
static void wint(w_t *w, u32 v) { if (v < 128) w8(w, v); else { w8(w, 0xce); w8(w, v >> 24); w8(w, v >> 16); w8(w, v >> 8); w8(w, v); } }
typedef struct { i64 id; int fn, left, cancelled, err; u32 polls, nlen; u8 name[200]; } task_t;
static task_t tasks[16];
static i64 next_id = 1;
static u8 *out_buf;
static u32 envelope(const char *schema, w_t *p) {
	w_t *e = bump(sizeof *e); e->n = 0;
	w8(e, 0x93); wcs(e, schema); w8(e, 1); w8(e, 0xc5); w8(e, p->n >> 8); w8(e, p->n);
	memcpy(e->b + e->n, p->b, p->n); e->n += p->n; out_buf = e->b; return e->n;
}
static u32 error_env(const char *cls, u32 code, const char *msg, const char *path) {
	w_t p; p.n = 0; w8(&p, path ? 0x84 : 0x83);
	wcs(&p, "class"); wcs(&p, cls); wcs(&p, "code"); wint(&p, code); wcs(&p, "message"); wcs(&p, msg);
	if (path) { wcs(&p, "path"); wcs(&p, path); }
	return envelope("molt.error", &p);
}
static int rstr(const u8 *b, u32 len, u32 *pos) {
	if (*pos >= len) return -1;
	u8 c = b[(*pos)++];
	if ((c & 0xe0) == 0xa0) return c & 0x1f;
	if (c == 0xd9 && *pos < len) return b[(*pos)++];
	return -1;
}
#define BAD(e) do { t->err = e; return t->id; } while (0)
EXPORT("molt_call") i64 molt_call(u32 fn, const u8 *env, u32 len) {
	task_t *t = 0; int i, n; u32 pos = 0, plen; u8 c;
	if (!inited) return -7;
	for (i = 0; i < 16; i++) if (!tasks[i].id) { t = &tasks[i]; break; }
	if (!t) return -7;
	t->id = next_id++; t->fn = fn; t->cancelled = 0; t->err = 0; t->polls = 0; t->left = 1;
	const char *want = fn == 2 ? "test.wait_request" : "hello.greet_request";
	if (fn < 1 || fn > 3) BAD(3);
	if (len < 1 || env[pos++] != 0x93) BAD(2);
	n = rstr(env, len, &pos);
	if (n < 0 || pos + n > len || !eq(env + pos, n, want)) BAD(2);
	pos += n;
	if (pos + 1 >= len || env[pos++] != 1) BAD(2);
	c = env[pos++];
	if (c == 0xc4 && pos < len) plen = env[pos++];
	else if (c == 0xc5 && pos + 1 < len) { plen = (env[pos] << 8) | env[pos + 1]; pos += 2; }
	else BAD(2);
	if (pos + plen != len || env[pos++] != 0x81) BAD(2);
	n = rstr(env, len, &pos);
	if (n < 0 || pos + n > len) BAD(2);
	pos += n;
	if (fn == 2) {
		if (pos >= len) BAD(2);
		c = env[pos++];
		if (c < 128) t->left = c;
		else if (c == 0xce && pos + 4 <= len) t->left = (int)((env[pos] << 24) | (env[pos + 1] << 16) | (env[pos + 2] << 8) | env[pos + 3]);
		else BAD(2);
		return t->id;
	}
	n = rstr(env, len, &pos);
	if (n < 0 || pos + n > len || n > 180) BAD(2);
	memcpy(t->name, env + pos, n); t->nlen = n;
	if (n == 0) t->err = 1;
	return t->id;
}
#define DONE(st, len) do { *out_len = (len); *out = out_buf; t->id = 0; return st; } while (0)
EXPORT("molt_poll") i32 molt_poll(i64 id, const u8 **out, u32 *out_len) {
	task_t *t = 0; int i; w_t p; p.n = 0;
	for (i = 0; i < 16; i++) if (id && tasks[i].id == id) { t = &tasks[i]; break; }
	if (!t) return -1;
	t->polls++;
	if (t->cancelled) DONE(2, error_env("cancellation", 4, "cancelled by the host", 0));
	if (t->err == 1) DONE(2, error_env("validation", 1, "name must not be empty", "name"));
	if (t->err == 2) DONE(2, error_env("validation", 2, "malformed request envelope", 0));
	if (t->err == 3) DONE(2, error_env("validation", 1, "unknown function id", 0));
	if (t->left-- > 0) return 0;
	if (t->fn == 1) {
		u8 g[200]; u32 gn = 7;
		memcpy(g, "Hello, ", 7); memcpy(g + gn, t->name, t->nlen); gn += t->nlen; g[gn++] = '!';
		w8(&p, 0x81); wcs(&p, "greeting"); wstr(&p, g, gn);
		DONE(1, envelope("hello.greet_response", &p));
	}
	if (t->fn == 2) { w8(&p, 0x81); wcs(&p, "polls"); wint(&p, t->polls); DONE(1, envelope("test.wait_response", &p)); }
	w8(&p, 0x81); wcs(&p, "greeting"); w8(&p, 42);
	DONE(1, envelope("hello.greet_response", &p));
}
EXPORT("molt_cancel") i32 molt_cancel(i64 id) {
	int i;
	for (i = 0; i < 16; i++) if (id && tasks[i].id == id) { tasks[i].cancelled = 1; return 0; }
	return -1;
}
`;

/** Compiles the test unit; null when clang cannot target wasm32 here. */
export function buildTestUnit(dir, { abi = 1 } = {}) {
  const c = join(dir, 'unit.c'), wasm = join(dir, `unit-${abi}.wasm`);
  writeFileSync(c, UNIT_C);
  const r = spawnSync('clang', ['--target=wasm32-wasi', '-O2', '-ffreestanding', '-nostdlib', `-DABI=${abi}`,
    '-mexec-model=reactor', '-Wl,--no-entry', '-Wl,--strip-all', '-o', wasm, c], { encoding: 'utf8' });
  return r.status === 0 ? readFileSync(wasm) : null;
}

const TEST_SCHEMAS = [
  { id: 'test.wait_request', version: 1, codec: 'msgpack', doc: 'How many polls to stay pending.', type: { record: [{ name: 'polls', type: 'int' }] } },
  { id: 'test.wait_response', version: 1, codec: 'msgpack', doc: 'How many polls it took.', type: { record: [{ name: 'polls', type: 'int' }] } },
];
const repoSchema = (f) => JSON.parse(readFileSync(join(ROOT, 'schemas', f), 'utf8'));

// ------------------------------------------------------------ a registry

function minisignKeys(dir, name = 'dev') {
  mkdirSync(dir, { recursive: true });
  const pk = join(dir, `${name}.pub`), sk = join(dir, `${name}.key`);
  rmSync(pk, { force: true }); rmSync(sk, { force: true });
  execFileSync('minisign', ['-G', '-W', '-p', pk, '-s', sk], { stdio: 'ignore' });
  return { pk, sk, pub: readFileSync(pk, 'utf8') };
}

function minisign(sk, file, tc, { legacy = true } = {}) {
  const out = file + '.minisig';
  execFileSync('minisign', ['-S', ...(legacy ? ['-l'] : []), '-s', sk, '-m', file, '-x', out, '-t', tc], { stdio: 'ignore' });
  const s = readFileSync(out);
  rmSync(out);
  return s;
}

/**
 * Writes a registry as docs/registry.md lays it out, signing with the stock
 * minisign CLI. `o` bends it for attack scenarios.
 */
export function buildRegistry(dir, key, wasm, o = {}) {
  const name = o.name ?? 'hello', version = o.version ?? '0.1.0', target = 'wasm32-wasi';
  const blobs = join(dir, 'blobs/sha256');
  mkdirSync(blobs, { recursive: true });
  mkdirSync(join(dir, 'index'), { recursive: true });
  const put = (bytes) => { const d = sha(bytes); writeFileSync(join(blobs, d.slice(7)), bytes); return d; };
  writeFileSync(join(dir, 'registry.json'), '{"format":1,"hash":"sha256"}\n');
  const schemas = [repoSchema('hello.greet_request.v1.json'), repoSchema('hello.greet_response.v1.json'),
    repoSchema('molt.error.v1.json'), ...TEST_SCHEMAS];
  const listed = schemas.map((s) => ({ id: s.id, version: s.version, digest: put(Buffer.from(molt.canonicalJson(s))) }));
  let manifest = {
    format: 1, name: o.manifestName ?? name, version, kind: 'module', target, abi_version: o.abi ?? '0.1',
    artifact: { digest: put(wasm), size: wasm.length, media_type: 'application/wasm' },
    functions: [
      { id: 1, name: 'greet', input: { id: 'hello.greet_request', version: 1 }, output: { id: 'hello.greet_response', version: 1 } },
      { id: 2, name: 'wait', input: { id: 'test.wait_request', version: 1 }, output: { id: 'test.wait_response', version: 1 } },
      { id: 3, name: 'bad', input: { id: 'hello.greet_request', version: 1 }, output: { id: 'hello.greet_response', version: 1 } },
    ],
    schemas: listed, depends: [],
    provenance: { recipe: sha('recipe'), source: sha('source'), toolchain: 'clang-14 (test unit)' },
  };
  if (o.editManifest) manifest = o.editManifest(manifest);
  const mBytes = Buffer.from(JSON.stringify(manifest));
  const mDigest = put(mBytes);
  const mFile = join(dir, 'm.tmp');
  writeFileSync(mFile, mBytes);
  const sig = minisign(key.sk, mFile, o.manifestComment ?? `molt unit ${name}@${version} ${target} ${mDigest}`, { legacy: !o.prehashed });
  rmSync(mFile);
  const index = { format: 1, name, versions: { [version]: { [target]: { manifest: mDigest, size: mBytes.length, signature: put(sig), yanked: !!o.yanked } } } };
  const iBytes = Buffer.from(JSON.stringify(index, null, 1) + '\n');
  writeFileSync(join(dir, `index/${name}.json`), iBytes);
  const snapVersion = o.snapshotVersion ?? 1;
  const snapshot = { format: 1, version: snapVersion, expires: o.expires ?? new Date(Date.now() + 365 * 864e5).toISOString().replace(/\.\d+Z$/, 'Z'),
    indexes: { [name]: { digest: sha(iBytes), size: iBytes.length } } };
  const sBytes = Buffer.from(JSON.stringify(snapshot, null, 1) + '\n');
  writeFileSync(join(dir, 'snapshot.json'), sBytes);
  writeFileSync(join(dir, 'snapshot.json.minisig'),
    minisign(key.sk, join(dir, 'snapshot.json'), `molt snapshot ${snapVersion} ${sha(sBytes)}`));
  return { manifest, mDigest, artifact: manifest.artifact.digest, sigDigest: sha(sig) };
}

// ------------------------------------------------------------ runner

let passed = 0, failed = 0, skipped = 0;
async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e?.stack ?? e).split('\n').slice(0, 4).join('\n  ')}`);
  }
}
function skip(name, why) { skipped++; console.log(`ok - ${name} # SKIP ${why}`); }
function assert(c, msg) { if (!c) throw new Error(msg); }
function eq(a, b, msg = '') {
  const x = JSON.stringify(a, (k, v) => typeof v === 'bigint' ? `${v}n` : v), y = JSON.stringify(b, (k, v) => typeof v === 'bigint' ? `${v}n` : v);
  if (x !== y) throw new Error(`${msg} expected ${y}, found ${x}`);
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
const hex = (b) => Buffer.from(b).toString('hex');

// ------------------------------------------------------------ scratch mode

if (process.argv[2] === '--scratch-registry') {
  const out = resolve(process.argv[3] ?? '');
  if (!process.argv[3]) { console.error('usage: molt-js.test.mjs --scratch-registry DIR'); process.exit(2); }
  const wasm = buildTestUnit(mkdtempSync(join(tmpdir(), 'molt-unit-')));
  if (!wasm) { console.error('clang cannot build wasm32-wasi here'); process.exit(3); }
  const key = minisignKeys(join(out, 'keys'));
  rmSync(join(out, 'registry'), { recursive: true, force: true });
  buildRegistry(join(out, 'registry'), key, wasm);
  console.log(`registry: ${join(out, 'registry')}\nkey: ${key.pk}`);
  process.exit(0);
}

// ------------------------------------------------------------ tests

const tmp = mkdtempSync(join(tmpdir(), 'molt-js-test-'));
const haveMinisign = has('minisign', ['-v']);

await test('sha256 of "abc" is the FIPS 180-2 vector, written sha256:<hex>', async () => {
  eq(await molt.sha256('abc'), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  eq(await molt.sha256(new Uint8Array(0)), sha(Buffer.alloc(0)));
});

if (!haveMinisign) {
  skip('minisign signature cases', 'minisign is not installed (apt-get install minisign)');
} else {
  const k = minisignKeys(join(tmp, 'k1'));
  const k2 = minisignKeys(join(tmp, 'k2'), 'other');
  const file = join(tmp, 'data.bin');
  writeFileSync(file, Buffer.from('molt test data\n\x00\x01\x02'));
  const data = readFileSync(file);
  const sig = minisign(k.sk, file, 'molt unit hello@0.1.0 wasm32-wasi sha256:00').toString();
  const keys = [molt.parsePublicKey(k.pub)];

  await test('parsePublicKey reads a minisign .pub; key id printed as minisign does', () => {
    const p = keys[0];
    eq(p.publicKey.length, 32);
    const printed = k.pub.match(/minisign public key ([0-9A-F]{1,16})/)[1];
    eq(p.keyIdHex, printed, 'key id');
    eq(molt.parsePublicKey(k.pub.split('\n')[1]).keyIdHex, printed, 'bare base64 line');
  });
  await test('parsePublicKey refuses garbage with KEY_INVALID', async () => {
    await rejects(() => molt.parsePublicKey('hello'), 'KEY_INVALID');
    await rejects(() => molt.parsePublicKey('untrusted comment: x\nRWQ=\n'), 'KEY_INVALID', '42-byte');
  });
  await test('a legacy Ed signature made by minisign -S -l verifies; trusted comment returned', async () => {
    const r = await molt.verifySignature(data, sig, keys, 'data.bin.minisig');
    eq(r.trustedComment, 'molt unit hello@0.1.0 wasm32-wasi sha256:00');
    eq(r.keyIdHex, keys[0].keyIdHex);
  });
  await test('stock minisign -V agrees with the file we verify (sanity)', () => {
    writeFileSync(file + '.minisig', sig);
    execFileSync('minisign', ['-V', '-q', '-p', k.pk, '-m', file]);
  });
  await test('one changed byte of the data → SIGNATURE_INVALID', async () => {
    const d = Buffer.from(data); d[3] ^= 1;
    await rejects(molt.verifySignature(d, sig, keys, 'data.bin.minisig'), 'SIGNATURE_INVALID', 'data.bin.minisig', keys[0].keyIdHex);
  });
  await test('an edited trusted comment → SIGNATURE_INVALID (global signature)', async () => {
    const s = sig.replace('hello@0.1.0', 'hello@0.2.0');
    await rejects(molt.verifySignature(data, s, keys), 'SIGNATURE_INVALID', 'trusted comment');
  });
  await test('a flipped byte inside the Ed25519 signature → SIGNATURE_INVALID', async () => {
    const ls = sig.split('\n');
    const raw = Buffer.from(ls[1], 'base64'); raw[40] ^= 0x80;
    ls[1] = raw.toString('base64');
    await rejects(molt.verifySignature(data, ls.join('\n'), keys), 'SIGNATURE_INVALID');
  });
  await test('a signature by another key → UNTRUSTED_KEY naming both key ids', async () => {
    const other = molt.parsePublicKey(k2.pub);
    const e = await rejects(molt.verifySignature(data, sig, [other], 'x.minisig'), 'UNTRUSTED_KEY', keys[0].keyIdHex, other.keyIdHex);
    eq(e.keyId, keys[0].keyIdHex);
  });
  await test('the right key among several trusted keys is found by id', async () => {
    await molt.verifySignature(data, sig, [molt.parsePublicKey(k2.pub), keys[0]]);
  });
  await test('a prehashed (ED) signature is refused with UNSUPPORTED_ALGORITHM, naming BLAKE2b', async () => {
    const ed = minisign(k.sk, file, 'c', { legacy: false }).toString();
    eq(Buffer.from(ed.split('\n')[1], 'base64').subarray(0, 2).toString(), 'ED', 'minisign default algorithm');
    await rejects(molt.verifySignature(data, ed, keys), 'UNSUPPORTED_ALGORITHM', 'BLAKE2b', '-l');
  });
  await test('algorithm is checked before key id (ED by an unknown key → UNSUPPORTED_ALGORITHM)', async () => {
    const ed = minisign(k.sk, file, 'c', { legacy: false }).toString();
    await rejects(molt.verifySignature(data, ed, [molt.parsePublicKey(k2.pub)]), 'UNSUPPORTED_ALGORITHM');
  });
  await test('malformed signature texts → SIGNATURE_MALFORMED', async () => {
    await rejects(molt.verifySignature(data, 'nope', keys), 'SIGNATURE_MALFORMED');
    await rejects(molt.verifySignature(data, sig.replace('trusted comment: ', 'comment: '), keys), 'SIGNATURE_MALFORMED');
    const ls = sig.split('\n'); ls[1] = ls[1].slice(0, 20) + '====';
    await rejects(molt.verifySignature(data, ls.join('\n'), keys), 'SIGNATURE_MALFORMED');
  });
}

// Validator.
const greetReq = repoSchema('hello.greet_request.v1.json').type;
const nested = { record: [
  { name: 'title', type: 'string' },
  { name: 'rows', type: { list: { record: [{ name: 'name', type: 'string' }, { name: 'score', type: 'float' }, { name: 'tag', type: { nullable: { enum: ['a', 'b'] } }, optional: true }] } } },
  { name: 'counts', type: { map: 'int' }, optional: true },
  { name: 'blob', type: 'bytes', optional: true },
  { name: 'ok', type: 'bool', optional: true },
] };

await test('validate: a valid value passes and records come out in schema field order', () => {
  const v = molt.validate(nested, { rows: [{ score: 2, name: 'x' }], title: 't', counts: { b: 1, a: 2 } });
  eq([...v.keys()], ['title', 'rows', 'counts']);
  eq([...v.get('rows')[0].keys()], ['name', 'score']);
  assert(v.get('rows')[0].get('score') instanceof molt.Float, 'score is a Float');
});
await test('validate: missing required field names its path', async () => {
  const e = await rejects(() => molt.validate(greetReq, {}), 'INVALID_INPUT', 'missing required field "name"');
  eq(e.path, 'name');
  await rejects(() => molt.validate(nested, { title: 't', rows: [{ name: 'a', score: 1 }, { name: 'b' }] }), 'INVALID_INPUT', 'rows[1].score');
});
await test('validate: wrong type says expected and found, with the nested path rows[3].name', async () => {
  const rows = [0, 1, 2, 3].map((i) => ({ name: `n${i}`, score: 1.5 }));
  rows[3].name = 42;
  const e = await rejects(() => molt.validate(nested, { title: 't', rows }), 'INVALID_INPUT', 'rows[3].name', 'expected string', 'found int 42');
  eq(e.path, 'rows[3].name');
});
await test('validate: unknown key is an error naming the field', async () => {
  await rejects(() => molt.validate(greetReq, { name: 'a', nmae: 'b' }), 'INVALID_INPUT', 'unknown field "nmae"', 'nmae');
});
await test('validate: enum, nullable, map values, bytes, bool, int vs float', async () => {
  molt.validate(nested, { title: 't', rows: [{ name: 'a', score: 1, tag: null }, { name: 'b', score: 1, tag: 'b' }], blob: new Uint8Array(2), ok: true });
  await rejects(() => molt.validate(nested, { title: 't', rows: [{ name: 'a', score: 1, tag: 'c' }] }), 'INVALID_INPUT', 'rows[0].tag', 'one of "a", "b"');
  await rejects(() => molt.validate(nested, { title: 't', rows: [], counts: { x: 1.5 } }), 'INVALID_INPUT', 'counts.x', 'expected int', 'float 1.5');
  await rejects(() => molt.validate(nested, { title: 't', rows: [], counts: { 'a b': 'x' } }), 'INVALID_INPUT', 'counts["a b"]');
  await rejects(() => molt.validate(nested, { title: 't', rows: [], blob: 'xx' }), 'INVALID_INPUT', 'blob', 'bytes');
  await rejects(() => molt.validate(nested, { title: 't', rows: [], ok: 1 }), 'INVALID_INPUT', 'expected bool');
  await rejects(() => molt.validate(nested, { title: 't', rows: {} }), 'INVALID_INPUT', 'at rows', 'list');
  await rejects(() => molt.validate('int', 2 ** 60), 'INVALID_INPUT', 'BigInt');
  eq(molt.validate('int', 2n ** 60n), 2n ** 60n);
  eq(molt.validate('int', 5n), 5);
});
await test('validate (decode): floats and ints stay apart; decoded records become plain objects', async () => {
  const wire = molt.decodeMsgpack(molt.encodeMsgpack(molt.validate(nested, { title: 't', rows: [{ name: 'a', score: 2 }] })));
  eq(molt.validate(nested, wire, { direction: 'decode' }), { title: 't', rows: [{ name: 'a', score: 2 }] });
  const asInt = molt.decodeMsgpack(Uint8Array.from([0x81, 0xa5, ...Buffer.from('score'), 0x02]));
  await rejects(() => molt.validate({ record: [{ name: 'score', type: 'float' }] }, asInt, { direction: 'decode' }), 'INVALID_OUTPUT', 'score', 'expected float', 'int 2');
});
await test('encoding: records in schema order, ints as ints, floats as float64, envelope as [str, uint, bin]', () => {
  const t = { record: [{ name: 'b', type: 'int' }, { name: 'a', type: 'float' }, { name: '1', type: 'string' }] };
  const bytes = molt.encodeMsgpack(molt.validate(t, { '1': 'x', a: 1, b: 300 }));
  eq(hex(bytes), '83' + 'a162' + 'cd012c' + 'a161' + 'cb3ff0000000000000' + 'a131' + 'a178');
  const env = molt.encodeEnvelope('hello.greet_request', 1, molt.encodeMsgpack(molt.validate(greetReq, { name: 'Ada' })));
  eq(hex(env), '93' + 'b3' + Buffer.from('hello.greet_request').toString('hex') + '01' + 'c40a' + '81a46e616d65a3416461');
  const d = molt.decodeEnvelope(env);
  eq([d.schemaId, d.schemaVersion, hex(d.payload)], ['hello.greet_request', 1, '81a46e616d65a3416461']);
});
await test('schema documents: the repo schemas pass checkSchema; bad ones give SCHEMA_INVALID with a path', async () => {
  let seen = 0;
  for (const f of readdirSync(join(ROOT, 'schemas'))) {
    const d = repoSchema(f);
    if (`${d.id}.v${d.version}.json` !== f || typeof d.codec !== 'string') continue; // e.g. recipe.v1.json is a JSON Schema
    molt.checkSchema(d, f);
    seen++;
  }
  assert(seen >= 4, `checked ${seen} payload schemas`);
  await rejects(() => molt.checkSchema({ id: 'x.y', version: 1, type: { record: [{ name: 'a', type: 'strng' }] } }), 'SCHEMA_INVALID', 'type.record[0].type', 'strng');
  await rejects(() => molt.checkSchema({ id: 'X', version: 1, type: 'int' }), 'SCHEMA_INVALID', 'id');
  await rejects(() => molt.checkSchema({ id: 'x.y', version: 1, type: 'int', extra: 1 }), 'SCHEMA_INVALID', 'unknown key "extra"');
});
await test('canonical JSON of schemas/molt.error.v1.json is what the host has built in', async () => {
  for (const f of ['molt.error.v1.json', 'molt.runtime_config.v1.json']) {
    const c = molt.canonicalJson(repoSchema(f));
    assert(!/\s(?=(?:[^"]*"[^"]*")*[^"]*$)/.test(c), 'no whitespace outside strings');
    assert(c.startsWith('{"codec":"msgpack","doc":'), `sorted keys: ${c.slice(0, 40)}`);
  }
});

// fetchBytes.
function fakeFetch(chunks, { status = 200, headers = {} } = {}) {
  const seen = { pulled: 0 };
  const f = async () => {
    let i = 0;
    const body = new ReadableStream({
      pull(c) {
        if (i < chunks.length) { seen.pulled++; c.enqueue(Uint8Array.from(chunks[i++])); } else c.close();
      },
    });
    return new Response(status === 200 ? body : null, { status, headers });
  };
  return { fetch: f, seen };
}
await test('fetchBytes: exact size reads all chunks and reports {loaded, total} from the expected size', async () => {
  const { fetch } = fakeFetch([[1, 2], [3], [4, 5, 6]], { headers: { 'content-length': '99', 'content-encoding': 'gzip' } });
  const ps = [];
  const b = await molt.fetchBytes('http://127.0.0.1/x', { expectedSize: 6, fetch, onProgress: (p) => ps.push([p.loaded, p.total]) });
  eq([...b], [1, 2, 3, 4, 5, 6]);
  eq(ps, [[0, 6], [2, 6], [3, 6], [6, 6]]);
});
await test('fetchBytes: total falls back to Content-Length only without Content-Encoding', async () => {
  const ps = [];
  await molt.fetchBytes('http://127.0.0.1/x', { fetch: fakeFetch([[1, 2]], { headers: { 'content-length': '2' } }).fetch, onProgress: (p) => ps.push(p.total) });
  eq(ps, [2, 2]);
  const qs = [];
  await molt.fetchBytes('http://127.0.0.1/x', { fetch: fakeFetch([[1, 2]], { headers: { 'content-length': '1', 'content-encoding': 'br' } }).fetch, onProgress: (p) => qs.push(p.total) });
  // Content-Length counts compressed bytes: no total until the end, then loaded === total.
  eq(qs, [null, null, 2]);
});
await test('fetchBytes: endless data stops at the expected size (SIZE_MISMATCH, no further reads)', async () => {
  const chunks = Array.from({ length: 1000 }, () => new Array(100).fill(7));
  const { fetch, seen } = fakeFetch(chunks);
  const e = await rejects(molt.fetchBytes('http://127.0.0.1/blob', { expectedSize: 250, fetch, what: 'artifact' }), 'SIZE_MISMATCH', 'expected 250 bytes', 'http://127.0.0.1/blob', 'stopped reading');
  assert(seen.pulled <= 4, `read ${seen.pulled} chunks`);
  eq(e.found, 300);
});
await test('fetchBytes: a short file → SIZE_MISMATCH with expected and found', async () => {
  await rejects(molt.fetchBytes('http://127.0.0.1/b', { expectedSize: 10, fetch: fakeFetch([[1, 2, 3]]).fetch }), 'SIZE_MISMATCH', 'expected 10 bytes', 'found 3');
});
await test('fetchBytes: maxSize caps files of unknown size; HTTP errors → FETCH_FAILED with the URL', async () => {
  await rejects(molt.fetchBytes('http://127.0.0.1/s', { maxSize: 5, fetch: fakeFetch([[1, 2, 3], [4, 5, 6]]).fetch }), 'SIZE_MISMATCH', '5-byte limit');
  await rejects(molt.fetchBytes('http://127.0.0.1/missing', { fetch: fakeFetch([], { status: 404 }).fetch }), 'FETCH_FAILED', 'HTTP 404', 'http://127.0.0.1/missing');
  await rejects(molt.fetchBytes('http://127.0.0.1/down', { fetch: async () => { throw new TypeError('connect ECONNREFUSED'); } }), 'FETCH_FAILED', 'ECONNREFUSED');
});

// End to end: a real wasm unit from a registry signed by minisign.
const wasm = has('clang', ['--version']) ? buildTestUnit(tmp) : null;
if (!wasm || !haveMinisign) {
  skip('end-to-end loadUnit/call cases', !wasm ? 'clang cannot build wasm32-wasi here (apt-get install clang lld)' : 'no minisign');
} else {
  const key = minisignKeys(join(tmp, 'regkey'));
  let n = 0;
  const reg = (o = {}, w = wasm) => {
    const dir = join(tmp, `reg${n++}`);
    const info = buildRegistry(dir, key, w, o);
    return { dir, info, registry: molt.openRegistry({ url: `file://${dir}/`, trustedKeys: [key.pub], fetch: fileFetch() }) };
  };
  const good = reg();
  const load = (r, o = {}) => molt.loadUnit(r.registry, { name: 'hello', version: '0.1.0', ...o });

  await test('loadUnit + call greet: verified, instantiated with no imports, greeting returned', async () => {
    const stages = new Set(), art = [];
    const u = await load(good, { onProgress: (p) => { stages.add(p.stage); if (p.stage === 'artifact') art.push(p); } });
    eq(await u.call('greet', { name: 'Ada' }).result, { greeting: 'Hello, Ada!' });
    eq([...stages], ['snapshot', 'index', 'signature', 'manifest', 'schemas', 'artifact', 'compile', 'init', 'ready']);
    eq(art.at(-1).loaded, wasm.length); eq(art.at(-1).total, wasm.length);
    eq(u.metrics.artifactBytes, wasm.length);
    assert(u.metrics.bytesFetched > wasm.length && u.metrics.compileMs >= 0 && u.metrics.fetchMs >= 0, JSON.stringify(u.metrics));
  });
  await test('call: host validation refuses bad input before the unit sees it', async () => {
    const u = await load(good);
    const e = await rejects(u.call('greet', { name: 7 }).result, 'INVALID_INPUT', 'at name', 'expected string');
    eq(e.path, 'name');
    await rejects(u.call('nope', {}).result, 'UNKNOWN_FUNCTION', 'greet');
  });
  await test('call: a molt.error from the unit rejects with class, code, message and path', async () => {
    const u = await load(good);
    const e = await rejects(u.call('greet', { name: '' }).result, 'UNIT_VALIDATION', 'name must not be empty');
    eq([e.class, e.unitCode, e.path], ['validation', 1, 'name']);
  });
  await test('call: output that breaks the output schema → INVALID_OUTPUT naming the path', async () => {
    const u = await load(good);
    await rejects(u.call('bad', { name: 'x' }).result, 'INVALID_OUTPUT', 'at greeting', 'expected string', 'int 42');
  });
  await test('call: polls yield to the event loop; cancel() stops a long task with CANCELLED', async () => {
    const u = await load(good);
    eq(await u.call('wait', { polls: 20 }).result, { polls: 21 });
    const t = u.call('wait', { polls: 1e9 });
    let ticks = 0;
    const timer = setInterval(() => { ticks++; if (ticks === 3) t.cancel(); }, 1);
    const e = await rejects(t.result, 'CANCELLED', 'cancellation');
    clearInterval(timer);
    eq(e.unitCode, 4);
    assert(ticks >= 3, 'timers ran while polling');
  });
  await test('callEnvelope returns the unit\'s exact envelope bytes (its bin16 header kept as written)', async () => {
    const u = await load(good);
    const r = await u.callEnvelope(1, u.encodeRequest('greet', { name: 'Bo' })).result;
    eq(r.status, 1);
    const p = hex(molt.encodeMsgpack(new Map([['greeting', 'Hello, Bo!']])));
    eq(hex(r.envelope), '93b4' + Buffer.from('hello.greet_response').toString('hex') + '01c50015' + p);
    const bad = await u.callEnvelope(1, Uint8Array.from([0xc0])).result;
    eq(bad.status, 2);
    eq(molt.decodeEnvelope(bad.envelope).schemaId, 'molt.error');
  });
  await test('CLI: molt-node.mjs call prints JSON, --envelope-hex prints the envelope; exit codes', async () => {
    const run = async (...a) => {
      let out = '', err = '';
      const code = await cliMain(a, { write: (s) => { out += s; } }, { write: (s) => { err += s; } });
      return { code, out, err };
    };
    let r = await run('call', '--registry', good.dir, '--key', key.pk, 'hello@0.1.0', 'greet', '{"name":"Cy"}');
    eq([r.code, JSON.parse(r.out)], [0, { greeting: 'Hello, Cy!' }], r.err);
    r = await run('call', '--registry', good.dir, '--key', key.pk, 'hello@0.1.0', 'greet', '{"name":"Cy"}', '--envelope-hex');
    eq(r.code, 0); assert(/^93b468656c6c6f2e/.test(r.out.trim()), r.out);
    r = await run('call', '--registry', good.dir, '--key', key.pk, 'hello@0.1.0', 'greet', '{"name":""}');
    eq(r.code, 2, r.err); assert(r.err.includes('name must not be empty'), r.err);
    r = await run('call', '--registry', good.dir, '--key', key.pk, 'hello@0.1.0', 'greet', '{name}');
    eq(r.code, 2);
    r = await run('call', '--registry', join(tmp, 'nowhere'), '--key', key.pk, 'hello@0.1.0', 'greet', '{}');
    eq(r.code, 3, r.err);
    const other = minisignKeys(join(tmp, 'k3'), 'stranger');
    r = await run('call', '--registry', good.dir, '--key', other.pk, 'hello@0.1.0', 'greet', '{"name":"x"}');
    eq(r.code, 1); assert(r.err.includes('UNTRUSTED_KEY'), r.err);
    r = await run('call', '--registry', good.dir);
    eq(r.code, 2);
  });
  await test('CLI as a process: exit status and stdout', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'runtime/js/molt-node.mjs'), 'call', '--registry', good.dir, '--key', key.pk, 'hello@0.1.0', 'greet', '{"name":"Di"}'], { encoding: 'utf8' });
    eq([r.status, r.stdout.trim()], [0, JSON.stringify({ greeting: 'Hello, Di!' }, null, 2)], r.stderr);
  });

  // Attacks, each on a copy of a good registry or one built to order.
  const copy = (r) => {
    const dir = join(tmp, `copy${n++}`);
    cpSync(r.dir, dir, { recursive: true });
    // No cache: the good registry's artifact (same digest) was verified and cached before.
    return { dir, registry: molt.openRegistry({ url: `file://${dir}/`, trustedKeys: [key.pub], fetch: fileFetch(), cache: false }) };
  };
  const blob = (dir, d) => join(dir, 'blobs/sha256', d.slice(7));
  await test('attack: one flipped byte in the artifact → DIGEST_MISMATCH with expected and found', async () => {
    const c = copy(good);
    const p = blob(c.dir, good.info.artifact);
    const b = readFileSync(p); b[b.length >> 1] ^= 1; writeFileSync(p, b);
    await rejects(load(c), 'DIGEST_MISMATCH', good.info.artifact, sha(b), 'artifact of hello@0.1.0');
  });
  await test('attack: artifact with extra bytes (endless data) → SIZE_MISMATCH', async () => {
    const c = copy(good);
    const p = blob(c.dir, good.info.artifact);
    writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.alloc(100)]));
    await rejects(load(c), 'SIZE_MISMATCH', `expected ${wasm.length} bytes`);
  });
  await test('attack: an edited snapshot.json (extended expiry) → SIGNATURE_INVALID', async () => {
    const c = copy(good);
    const p = join(c.dir, 'snapshot.json');
    writeFileSync(p, readFileSync(p, 'utf8').replace(/"expires": "\d{4}/, '"expires": "2999'));
    await rejects(load(c), 'SIGNATURE_INVALID', 'snapshot.json.minisig');
  });
  await test('attack: an edited index (other manifest size) → DIGEST_MISMATCH against the snapshot', async () => {
    const c = copy(good);
    const p = join(c.dir, 'index/hello.json');
    writeFileSync(p, readFileSync(p, 'utf8').replace('"yanked": false', '"yanked": 0    '));
    await rejects(load(c), 'DIGEST_MISMATCH', 'index of hello', 'snapshot version 1');
  });
  await test('attack: an expired snapshot (freeze) → EXPIRED', async () => {
    await rejects(load(reg({ expires: '2020-01-01T00:00:00Z' })), 'EXPIRED', '2020-01-01T00:00:00Z');
  });
  await test('attack: an older snapshot after a newer one (rollback) → ROLLBACK', async () => {
    const r = reg({ snapshotVersion: 5 });
    await load(r);
    const old = reg({ snapshotVersion: 4 });
    await rejects(molt.loadUnit({ ...old.registry, snapshotVersion: r.registry.snapshotVersion }, { name: 'hello', version: '0.1.0' }), 'ROLLBACK', 'version 4', 'version 5');
  });
  await test('attack: a validly signed manifest for another unit (wrong software) → WRONG_UNIT', async () => {
    await rejects(load(reg({ manifestName: 'evil' })), 'WRONG_UNIT', '"evil"', '"hello"');
  });
  await test('attack: manifest signature whose trusted comment names another unit → TRUSTED_COMMENT_MISMATCH', async () => {
    await rejects(load(reg({ manifestComment: 'molt unit other@9.9.9 wasm32-wasi sha256:00' })), 'TRUSTED_COMMENT_MISMATCH', 'other@9.9.9');
  });
  await test('a prehashed (ED) manifest signature → UNSUPPORTED_ALGORITHM', async () => {
    await rejects(load(reg({ prehashed: true })), 'UNSUPPORTED_ALGORITHM', 'BLAKE2b');
  });
  await test('yanked, unknown version, unknown target, unknown name', async () => {
    await rejects(load(reg({ yanked: true })), 'YANKED');
    await rejects(load(good, { version: '9.9.9' }), 'NOT_FOUND', '0.1.0');
    await rejects(load(good, { target: 'x86_64-linux-gnu' }), 'NOT_FOUND', 'wasm32-wasi');
    await rejects(load(good, { name: 'nope' }), 'NOT_FOUND', 'hello');
  });
  await test('ABI: manifest abi_version 0.2 → ABI_MISMATCH; molt_abi_version() 0x00010000 → ABI_MISMATCH', async () => {
    await rejects(load(reg({ abi: '0.2' })), 'ABI_MISMATCH', '"0.2"');
    await rejects(load(reg({}, buildTestUnit(tmp, { abi: 0x10000 }))), 'ABI_MISMATCH', '1.0');
  });
  await test('a manifest listing another molt.error than the host knows → SCHEMA_MISMATCH', async () => {
    const bytes = Buffer.from(molt.canonicalJson({ ...repoSchema('molt.error.v1.json'), doc: 'another text' }));
    const r = reg({ editManifest: (m) => ({ ...m, schemas: m.schemas.map((s) => s.id === 'molt.error' ? { ...s, digest: sha(bytes) } : s) }) });
    writeFileSync(blob(r.dir, sha(bytes)), bytes);
    await rejects(load(r), 'SCHEMA_MISMATCH', 'molt.error@v1', sha(bytes));
  });
}

rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed ? 1 : 0;
