// The JS host's limits and status codes (docs/abi.md, "Limits"), under Node 20:
// slicing by step budget, cancel in the middle of a sliced task, wall-clock
// timeout, output size, memory ceiling, traps, every status code, and the
// raw ABI's answers for unknown and finished tasks.
//
//   node tests/node/limits.test.mjs
//
// Runs the countdown unit that scripts/fixture builds ($FIXTURE, default
// build/test; made if missing), plus a tiny freestanding unit that traps
// (compiled here with clang for wasm32). Ends with "N passed, M failed".

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as molt from '../../runtime/js/molt.js';
import { fileFetch } from '../../runtime/js/molt-node.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = process.env.FIXTURE ?? join(ROOT, 'build/test');
const BILLION = 1e9;

let passed = 0, failed = 0;
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
const ms = () => performance.now();
const tick = () => new Promise((r) => setImmediate(r));
const fromHex = (h) => Uint8Array.from(h.replace(/\s+/g, '').match(/../g), (x) => parseInt(x, 16));

// ------------------------------------------------------------ the countdown unit

if (!existsSync(join(FIXTURE, 'out/wasm32/countdown-0.1.0/manifest.json'))) {
  const r = spawnSync(join(ROOT, 'scripts/fixture'), [FIXTURE], { stdio: 'inherit' });
  if (r.status !== 0) { console.log('cannot make the fixture (scripts/fixture)\n0 passed, 1 failed'); process.exit(1); }
}
const dir = join(FIXTURE, 'out/wasm32/countdown-0.1.0');
const wasm = readFileSync(join(dir, 'countdown.wasm'));
const manifestText = readFileSync(join(dir, 'manifest.json'));
const manifest = JSON.parse(manifestText);
const schemas = manifest.schemas.map((s) => readFileSync(join(ROOT, 'schemas', `${s.id}.v${s.version}.json`)));
const countdown = (o = {}) => molt.instantiateLocal({ bytes: wasm, manifest: manifestText, schemas, ...o });

await test('count slices by the step budget: polls = ceil(n / budget)', async () => {
  const u = await countdown();
  eq(await u.call('count', { n: 10 }).result, { sum: 55, polls: 1 });
  eq(await u.call('count', { n: 200000 }).result, { sum: 20000100000, polls: 4 });
  eq(u.limits, { stepBudget: undefined, timeoutMs: 0, maxOutput: 64 << 20, maxMemory: 256 << 20 });
  const v = await countdown({ stepBudget: 10 });
  eq(await v.call('count', { n: 1000 }).result, { sum: 500500, polls: 100 });
  eq(await v.call('list', { n: 3 }).result, { values: [3, 2, 1] });
  eq(await u.call('count', { n: BILLION }).result, { sum: 500000000500000000n, polls: 15259 });
});

await test('two counts in flight interleave, each with its own state', async () => {
  const u = await countdown({ stepBudget: 7 });
  const [a, b] = await Promise.all([u.call('count', { n: 100 }).result, u.call('count', { n: 50 }).result]);
  eq([a, b], [{ sum: 5050, polls: 15 }, { sum: 1275, polls: 8 }]);
});

await test('cancel() in the middle of a count to 10^9 lands at the next poll; the unit stays usable', async () => {
  // At 100 numbers a poll the count would take 10^7 polls: only a cancel ends it soon.
  const u = await countdown({ stepBudget: 100 });
  const t = u.call('count', { n: BILLION });
  for (let i = 0; i < 5; i++) await tick();
  const t0 = ms();
  t.cancel();
  t.cancel();
  const e = await rejects(t.result, 'CANCELLED', 'countdown.count: cancellation error 4 (Cancelled)', 'was cancelled');
  eq([e.class, e.unitCode], ['cancellation', 4]);
  assert(ms() - t0 < 1000, `the cancel took ${ms() - t0} ms`);
  t.cancel();
  eq(await u.call('count', { n: 10 }).result, { sum: 55, polls: 1 });
  eq(u.instances, 1);
});

await test('cancel() on a finished call is a no-op', async () => {
  const u = await countdown();
  const t = u.call('count', { n: 3 });
  eq(await t.result, { sum: 6, polls: 1 });
  t.cancel();
  eq(await u.call('count', { n: 3 }).result, { sum: 6, polls: 1 });
});

await test('timeoutMs: the host cancels the task and rejects with TIMEOUT, code 5', async () => {
  const u = await countdown({ stepBudget: 1000 });
  const t0 = ms();
  const e = await rejects(u.call('count', { n: BILLION }, { timeoutMs: 30 }).result, 'TIMEOUT',
    'countdown.count: runtime error 5 (Timeout): no result after', '(timeoutMs 30, ', 'the host cancelled the task');
  eq([e.class, e.unitCode], ['runtime', 5]);
  assert(e.polls > 1, `polls ${e.polls}`);
  assert(ms() - t0 < 2000, `a 30 ms timeout took ${ms() - t0} ms`);
  // Every timed-out task was reaped in the unit: the task table is whole.
  for (let i = 0; i < 3; i++) await rejects(u.call('count', { n: BILLION }, { timeoutMs: 5 }).result, 'TIMEOUT');
  const all = Array.from({ length: 64 }, () => u.call('count', { n: 1 }).result);
  eq((await Promise.all(all)).length, 64);
  await rejects(u.callEnvelope(1, u.encodeRequest('count', { n: BILLION }), { timeoutMs: 5 }).result, 'TIMEOUT', 'countdown@0.1.0 function 1: runtime error 5');
});

await test('timeoutMs given at load is the default; a call may lift it', async () => {
  const u = await countdown({ stepBudget: 1000, timeoutMs: 20 });
  await rejects(u.call('count', { n: BILLION }).result, 'TIMEOUT', '(timeoutMs 20, ');
  eq(await u.call('count', { n: 5000 }, { timeoutMs: 0 }).result, { sum: 12502500, polls: 5 });
});

await test('maxOutput: an oversized result is OUTPUT_LIMIT, code 6, not a truncated value', async () => {
  const u = await countdown();
  const e = await rejects(u.call('list', { n: 1000 }, { maxOutput: 100 }).result, 'OUTPUT_LIMIT',
    'countdown.list: runtime error 6 (CapabilityDenied): the result envelope is 2658 bytes, over the maxOutput limit of 100 bytes');
  eq([e.class, e.unitCode, e.found, e.expected], ['runtime', 6, 2658, 100]);
  eq((await u.call('list', { n: 1000 }, { maxOutput: 2658 }).result).values.length, 1000);
  const v = await countdown({ maxOutput: 41 });
  await rejects(v.callEnvelope(1, v.encodeRequest('count', { n: 3 })).result, 'OUTPUT_LIMIT', '42 bytes');
  eq(await v.call('count', { n: 3 }, { maxOutput: 42 }).result, { sum: 6, polls: 1 });
});

await test('maxMemory: memory past the ceiling is MEMORY_LIMIT, code 6; the instance is discarded and the next call gets a fresh one', async () => {
  const u = await countdown({ maxMemory: 8 << 20 });
  eq(u.instances, 1);
  const other = u.call('count', { n: BILLION });
  const e = await rejects(u.call('list', { n: 5e6 }).result, 'MEMORY_LIMIT', 'countdown.list: runtime error 6 (CapabilityDenied): the unit\'s memory grew to',
    'over the maxMemory limit of 8388608 bytes; the instance was discarded');
  eq([e.class, e.unitCode, e.expected], ['runtime', 6, 8 << 20]);
  await rejects(other.result, 'UNIT_BROKEN', 'the instance running this task was discarded (its memory grew to');
  eq(await u.call('list', { n: 3 }).result, { values: [3, 2, 1] });
  eq(u.instances, 2);
  eq(await u.call('count', { n: 10 }).result, { sum: 55, polls: 1 });
});

await test('a 65th task in flight is CALL_FAILED, code 6 (CapabilityDenied); cancelling frees the table', async () => {
  const u = await countdown({ stepBudget: 100 });
  const tasks = Array.from({ length: 64 }, () => u.call('count', { n: BILLION }));
  const e = await rejects(u.call('count', { n: 1 }).result, 'CALL_FAILED', 'molt_call returned -6 (CapabilityDenied)', 'as many tasks as it can');
  eq([e.class, e.unitCode], ['runtime', 6]);
  for (const t of tasks) t.cancel();
  for (const t of tasks) await rejects(t.result, 'CANCELLED');
  eq(await u.call('count', { n: 2 }).result, { sum: 3, polls: 1 });
});

// Byte-level requests: each bad one still gets a structured error envelope.
const errorOf = (r) => {
  eq(r.status, 2, 'poll status');
  const e = molt.decodeEnvelope(r.envelope);
  eq([e.schemaId, e.schemaVersion], ['molt.error', 1]);
  const p = molt.decodeMsgpack(e.payload);
  return [p.class, p.code, p.message];
};
await test('malformed, truncated and mislabelled envelopes, unknown function ids: validation errors 1 and 2', async () => {
  const u = await countdown({ maxMemory: 16 << 20 });
  const good = u.encodeRequest('count', { n: 10 });
  const raw = async (id, b) => errorOf(await u.callEnvelope(id, b).result);
  eq(await raw(1, good.slice(0, good.length - 2)), ['validation', 2, `request is not one complete MsgPack value (${good.length - 2} bytes)`]);
  eq(await raw(1, new Uint8Array(0)), ['validation', 2, 'request is not one complete MsgPack value (0 bytes)']);
  eq(await raw(1, Uint8Array.from([...good, 0xc0])), ['validation', 2, `request is not one complete MsgPack value (${good.length + 1} bytes)`]);
  eq(await raw(1, Uint8Array.from([0xc0])), ['validation', 2, 'count: expected an envelope [schema_id, schema_version, payload], found nil']);
  eq(await raw(1, Uint8Array.from([0x93, 1, 1, 1])), ['validation', 2, 'count: envelope fields must be [string, uint, bin], found [int, int, int]']);
  eq(await raw(1, u.encodeRequest('list', { n: 3 })), ['validation', 1, 'count: expected schema countdown.count_request v1, found countdown.list_request v1']);
  eq(await raw(1, molt.encodeEnvelope('countdown.count_request', 2, molt.encodeMsgpack(new Map([['n', 3]])))),
    ['validation', 1, 'count: expected schema countdown.count_request v1, found countdown.count_request v2']);
  eq(await raw(1, molt.encodeEnvelope('countdown.count_request', 1, Uint8Array.from([0x81, 0xa1]))), ['validation', 2, 'count: payload is not one complete MsgPack value']);
  // Counts that claim more than the bytes hold are refused before anything is
  // allocated for them: an array32 of 2^26 items would ask for 1 GiB.
  eq(await raw(1, Uint8Array.from([0xdd, 4, 0, 0, 0])), ['validation', 2, 'request is not one complete MsgPack value (5 bytes)']);
  eq(await raw(1, molt.encodeEnvelope('countdown.count_request', 1, Uint8Array.from([0xdf, 4, 0, 0, 0]))), ['validation', 2, 'count: payload is not one complete MsgPack value']);
  eq(await raw(1, Uint8Array.from([0xc6, 0xff, 0xff, 0xff, 0xff])), ['validation', 2, 'request is not one complete MsgPack value (5 bytes)']);
  eq(await raw(99, good), ['validation', 1, "unknown function id 99; see the unit's manifest for its functions"]);
  eq(await raw(0xffffffff, good), ['validation', 1, "unknown function id 4294967295; see the unit's manifest for its functions"]);
  // Random bytes never crash the unit or the host.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let i = 0; i < 200; i++) {
    const b = Uint8Array.from({ length: rnd() % 64 }, rnd);
    const r = await u.callEnvelope(1 + (i % 3), b).result;
    assert(r.status === 2 || r.status === 1, `status ${r.status}`);
  }
  eq(await u.call('count', { n: 10 }).result, { sum: 55, polls: 1 });
  eq(u.instances, 1, 'no request made the unit grow past 16 MiB');
});

await test('a validation error from the unit: UNIT_VALIDATION with code 1 and path', async () => {
  const u = await countdown();
  const e = await rejects(u.call('count', { n: -1 }).result, 'UNIT_VALIDATION', 'countdown.count: validation error 1 (InvalidInput) at n: expected 0 to 1000000000, found -1');
  eq([e.class, e.unitCode, e.path], ['validation', 1, 'n']);
  await rejects(u.call('count', { n: 'x' }).result, 'INVALID_INPUT', 'at n');
  await rejects(u.call('count', {}).result, 'INVALID_INPUT', 'missing required field "n"');
  await rejects(u.call('countup', {}).result, 'UNKNOWN_FUNCTION', 'count, list');
});

await test('a result that breaks its output schema: INVALID_OUTPUT, class runtime, code 3 (EncodeError)', async () => {
  // The manifest claims count answers with a list_response.
  const m = JSON.parse(manifestText);
  m.functions[0].output = { id: 'countdown.list_response', version: 1 };
  const u = await molt.instantiateLocal({ bytes: wasm, manifest: m, schemas });
  const e = await rejects(u.call('count', { n: 3 }).result, 'INVALID_OUTPUT', 'returned schema countdown.count_response v1, expected countdown.list_response v1');
  eq([e.class, e.unitCode], ['runtime', 3]);
});

await test('bad limits are OPTIONS_INVALID', async () => {
  await rejects(countdown({ stepBudget: 0 }), 'OPTIONS_INVALID', 'stepBudget must be an integer from 1 to 2^32-1, found 0');
  await rejects(countdown({ stepBudget: 2 ** 32 }), 'OPTIONS_INVALID', 'stepBudget');
  await rejects(countdown({ maxMemory: 10 }), 'OPTIONS_INVALID', 'maxMemory');
  await rejects(countdown({ timeoutMs: -1 }), 'OPTIONS_INVALID', 'timeoutMs');
  await rejects(countdown({ maxMemory: 65536 }), 'MEMORY_LIMIT', 'its memory starts at 131072 bytes, over the maxMemory limit of 65536 bytes');
  const u = await countdown();
  await rejects(u.call('count', { n: 1 }, { maxOutput: 0 }).result, 'OPTIONS_INVALID', 'maxOutput must be a positive integer');
  await rejects(u.callEnvelope(1, new Uint8Array(1), { timeoutMs: NaN }).result, 'OPTIONS_INVALID', 'timeoutMs');
});

await test('loadUnit passes the limits on: countdown from the fixture registry', async () => {
  const registry = molt.openRegistry({ url: `file://${join(FIXTURE, 'registry')}/`, trustedKeys: [readFileSync(join(FIXTURE, 'dev.pub'), 'utf8')], fetch: fileFetch() });
  const u = await molt.loadUnit(registry, { name: 'countdown', version: '0.1.0', stepBudget: 10, timeoutMs: 5000, maxOutput: 1000 });
  eq(await u.call('count', { n: 1000 }).result, { sum: 500500, polls: 100 });
  await rejects(u.call('list', { n: 1000 }).result, 'OUTPUT_LIMIT', 'over the maxOutput limit of 1000 bytes');
  await rejects(u.call('count', { n: BILLION }, { timeoutMs: 10 }).result, 'TIMEOUT');
});

// ------------------------------------------------------------ the raw ABI

await test('raw ABI: -7 before molt_init; bad configs; -1 for unknown, finished and NULL; -6 for a 65th task', async () => {
  const { instance } = await WebAssembly.instantiate(wasm, {});
  const ex = instance.exports;
  ex._initialize?.();
  const put = (b) => { const p = ex.molt_alloc(b.length) >>> 0; new Uint8Array(ex.memory.buffer).set(b, p); return [p, b.length]; };
  const cfg = (m) => put(molt.encodeEnvelope('molt.runtime_config', 1, molt.encodeMsgpack(m)));
  const req = put(molt.encodeEnvelope('countdown.count_request', 1, molt.encodeMsgpack(new Map([['n', 3]]))));
  const big = put(molt.encodeEnvelope('countdown.count_request', 1, molt.encodeMsgpack(new Map([['n', BILLION]]))));
  const out = ex.molt_alloc(8) >>> 0;
  eq(ex.molt_call(1, ...req), -7n, 'molt_call before molt_init');
  eq(ex.molt_init(...put(Uint8Array.from([0xc0]))), -2, 'a nil config');
  eq(ex.molt_init(req[0], req[1]), -2, 'a config of the wrong schema');
  eq(ex.molt_init(...cfg(new Map([['step_budget', 0]]))), -1, 'step_budget 0');
  eq(ex.molt_init(...cfg(new Map([['stepbudget', 5]]))), -1, 'an unknown key');
  eq(ex.molt_init(...cfg(new Map())), 0);
  eq(ex.molt_init(...cfg(new Map([['step_budget', 5]]))), 0, 'again: idempotent, and the budget changes');
  eq(ex.molt_poll(12345n, out, out + 4), -1, 'an unknown task');
  eq(ex.molt_poll(0n, out, out + 4), -1, 'task 0');
  eq(ex.molt_cancel(12345n), -1, 'cancel of an unknown task');
  const t = ex.molt_call(1, ...req);
  assert(t > 0n, `task ${t}`);
  eq(ex.molt_poll(t, 0, out + 4), -1, 'a NULL out');
  eq(ex.molt_poll(t, out, out + 4), 1);
  eq(ex.molt_poll(t, out, out + 4), -1, 'a finished task');
  eq(ex.molt_cancel(t), -1, 'cancel of a finished task');
  const ids = Array.from({ length: 64 }, () => ex.molt_call(1, ...big));
  assert(ids.every((id) => id > t), 'ids are not reused');
  eq(ex.molt_call(1, ...big), -6n, 'a 65th task');
  eq(ex.molt_cancel(ids[0]), 0);
  eq(ex.molt_poll(ids[0], out, out + 4), 2, 'a cancelled task reports at its next poll');
  eq(ex.molt_poll(ids[1], out, out + 4), 0, 'pending: 5 of 10^9 numbers counted');
  assert(ex.molt_call(1, ...req) > 0n, 'the freed slot takes a task again');
});

// ------------------------------------------------------------ a unit that traps

// Freestanding C, no SDK: 1 traps (unreachable), 2 reads out of bounds, 3
// answers {ok: true}, 4 stays pending, 5 returns poll status 7, 6 returns a
// result pointer past its memory. A cancelled task answers a cancellation.
const TRAP_C = String.raw`
typedef unsigned int u32; typedef long long i64; typedef int i32; typedef unsigned char u8;
#define EXPORT(n) __attribute__((export_name(n)))
extern u8 __heap_base;
static u32 top;
static void *bump(u32 n) {
	if (!top) top = (u32)&__heap_base;
	top = (top + 7u) & ~7u;
	u32 p = top, end = p + n, have = (u32)__builtin_wasm_memory_size(0) * 65536u;
	if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535u) / 65536u) == (unsigned long)-1) return 0;
	top = end; return (void *)p;
}
static const u8 ok_env[] = { OK_ENV };
static const u8 cancel_env[] = { CANCEL_ENV };
static i64 ids[8]; static u32 fns[8]; static int cancelled[8]; static i64 next_id = 1; static int inited;
EXPORT("molt_abi_version") u32 molt_abi_version(void) { return 1; }
EXPORT("molt_alloc") void *molt_alloc(u32 n) { return bump(n ? n : 1); }
EXPORT("molt_free") void molt_free(void *p, u32 n) { (void)p; (void)n; }
EXPORT("molt_init") i32 molt_init(const u8 *c, u32 n) { (void)c; (void)n; inited = 1; return 0; }
EXPORT("molt_call") i64 molt_call(u32 fn, const u8 *e, u32 n) {
	(void)e; (void)n;
	if (!inited) return -7;
	for (int i = 0; i < 8; i++) if (!ids[i]) { ids[i] = next_id++; fns[i] = fn; cancelled[i] = 0; return ids[i]; }
	return -6;
}
EXPORT("molt_poll") i32 molt_poll(i64 id, const u8 **out, u32 *len) {
	int i;
	for (i = 0; i < 8 && ids[i] != id; i++);
	if (i == 8 || !id) return -1;
	if (cancelled[i]) { ids[i] = 0; *out = cancel_env; *len = sizeof cancel_env; return 2; }
	switch (fns[i]) {
	case 1: __builtin_trap();
	case 2: return (i32)*(volatile u32 *)0xfffffff0u;
	case 3: ids[i] = 0; *out = ok_env; *len = sizeof ok_env; return 1;
	case 4: return 0;
	case 5: return 7;
	case 6: ids[i] = 0; *out = (const u8 *)0xffff0000u; *len = 64; return 1;
	}
	return -1;
}
EXPORT("molt_cancel") i32 molt_cancel(i64 id) {
	for (int i = 0; i < 8; i++) if (id && ids[i] == id) { cancelled[i] = 1; return 0; }
	return -1;
}
`;

async function trapUnit(tmp) {
  const bytes = (b) => [...b].map((x) => `0x${x.toString(16)}`).join(',');
  const okEnv = molt.encodeEnvelope('trap.response', 1, molt.encodeMsgpack(new Map([['ok', true]])));
  const cancelEnv = molt.encodeEnvelope('molt.error', 1, molt.encodeMsgpack(new Map([['class', 'cancellation'], ['code', 4], ['message', 'cancelled']])));
  const c = join(tmp, 'trap.c'), out = join(tmp, 'trap.wasm');
  writeFileSync(c, TRAP_C.replace('OK_ENV', bytes(okEnv)).replace('CANCEL_ENV', bytes(cancelEnv)));
  const r = spawnSync('clang', ['--target=wasm32-wasi', '-O2', '-ffreestanding', '-nostdlib', '-mexec-model=reactor',
    '-Wl,--no-entry', '-Wl,--strip-all', '-o', out, c], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`clang cannot build the trap unit for wasm32: ${r.stderr}`);
  const w = readFileSync(out);
  const docs = [
    { id: 'trap.request', version: 1, codec: 'msgpack', doc: 'Nothing.', type: { record: [] } },
    { id: 'trap.response', version: 1, codec: 'msgpack', doc: 'It worked.', type: { record: [{ name: 'ok', type: 'bool' }] } },
  ];
  const names = ['trap', 'oob', 'ok', 'wait', 'bad_status', 'bad_pointer'];
  const m = {
    format: 1, name: 'trap', version: '0.1.0', kind: 'module', target: 'wasm32-wasi', abi_version: '0.1',
    artifact: { digest: await molt.sha256(w), size: w.length, media_type: 'application/wasm' },
    functions: names.map((name, i) => ({ id: i + 1, name, input: { id: 'trap.request', version: 1 }, output: { id: 'trap.response', version: 1 } })),
    schemas: await Promise.all(docs.map(async (d) => ({ id: d.id, version: d.version, digest: await molt.sha256(molt.canonicalJson(d)) }))),
    depends: [],
  };
  return molt.instantiateLocal({ bytes: w, manifest: m, schemas: docs });
}

const tmp = mkdtempSync(join(tmpdir(), 'molt-limits-'));
let traps = null;
await test('the trap unit builds (clang, wasm32)', async () => { traps = await trapUnit(tmp); });
if (traps) {
  const u = traps;
  await test('a trap (unreachable) is TRAP, class runtime, code 7; the host survives and the next call gets a fresh instance', async () => {
    eq(await u.call('ok', {}).result, { ok: true });
    const pending = u.call('wait', {});
    const e = await rejects(u.call('trap', {}).result, 'TRAP', 'trap@0.1.0 trapped during molt_poll', 'unreachable', 'the instance was discarded');
    eq([e.class, e.unitCode], ['runtime', 7]);
    await rejects(pending.result, 'UNIT_BROKEN', 'the instance running this task was discarded (a trap during molt_poll');
    eq(await u.call('ok', {}).result, { ok: true });
    eq(u.instances, 2);
  });
  await test('an out-of-bounds load is TRAP too', async () => {
    const e = await rejects(u.call('oob', {}).result, 'TRAP', 'out of bounds');
    eq(e.unitCode, 7);
    eq(await u.call('ok', {}).result, { ok: true });
    eq(u.instances, 3);
  });
  await test('a call started while the instance is discarded runs in the fresh one; cancel() before it starts still cancels', async () => {
    await rejects(u.call('trap', {}).result, 'TRAP');
    const a = u.call('ok', {}), b = u.call('wait', {});
    b.cancel();
    eq(await a.result, { ok: true });
    await rejects(b.result, 'CANCELLED', 'cancelled');
    eq(u.instances, 4);
  });
  await test('poll statuses and pointers outside the ABI are ABI_VIOLATION, code 7', async () => {
    const e = await rejects(u.call('bad_status', {}).result, 'ABI_VIOLATION', 'molt_poll returned 7; expected 0, 1 or 2');
    eq(e.unitCode, 7);
    await rejects(u.call('bad_pointer', {}).result, 'ABI_VIOLATION', 'beyond the unit\'s');
    await rejects(u.call('wait', {}, { timeoutMs: 10 }).result, 'TIMEOUT');
  });
  await test('a trapped instance is not reused by vectors-style reloads either: instantiateLocal again works', async () => {
    const v = await trapUnit(tmp);
    await rejects(v.call('trap', {}).result, 'TRAP');
    eq(await v.call('ok', {}).result, { ok: true });
  });
}

rmSync(tmp, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
