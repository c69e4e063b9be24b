#!/usr/bin/env node
// Benchmarks the ABI's fixed costs and the validators' throughput; prints a
// Markdown table (see BENCHMARKS.md, "ABI round trip and validation").
//
//   node bench/abi.mjs [--build DIR] [--fixture DIR] [--calls N] [--records N] [--samples K]
//
// Round trip: one empty call (countdown.count with n = 0: done at the first
// poll), call + poll, on the same unit built both ways: native in-process
// through libmolt (the raw exports, the job API, molt_unit_call_json) and
// wasm under Node through runtime/js/molt.js (the raw exports, callEnvelope,
// call). Timed call by call over --calls calls after a warm-up.
// Validation: a MsgPack payload of --records records through libmolt's
// validator (the pre-scan, msgpack_unpack and molt__schema_decode to cJSON)
// and through molt.js (decodeMsgpack + validate); JSON.parse of the same
// data as JSON text for reference. MB/s of the input, --samples runs.
//
// Needs `make build` (DIR defaults to build) and the fixture (scripts/fixture;
// DIR defaults to $FIXTURE, else build/test) for the countdown builds.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as molt from '../runtime/js/molt.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const BUILD = resolve(opt('build', join(ROOT, 'build')));
const FIXTURE = resolve(opt('fixture', process.env.FIXTURE ?? join(ROOT, 'build/test')));
const CALLS = Number(opt('calls', 20000));
const RECORDS = Number(opt('records', 100000));
const SAMPLES = Number(opt('samples', 15));

const NATIVE_C = String.raw`
#include "internal.h"
#include "molt/molt.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void print(const char *name, double *t, int n)
{
	printf("%s", name);
	for (int i = 0; i < n; i++)
		printf(" %.4f", t[i]);
	printf("\n");
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b;
	if (!f) { perror(path); exit(3); }
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	rewind(f);
	b = malloc(*n ? *n : 1);
	if (fread(b, 1, *n, f) != *n) exit(3);
	fclose(f);
	return b;
}

/* calls SO MANIFEST SCHEMAS N */
static int calls(char **argv)
{
	static const unsigned char req[] = { 0x93, 0xb7, 'c', 'o', 'u', 'n', 't', 'd', 'o', 'w', 'n',
		'.', 'c', 'o', 'u', 'n', 't', '_', 'r', 'e', 'q', 'u', 'e', 's', 't', 0x01, 0xc4,
		0x04, 0x81, 0xa1, 'n', 0x00 };
	int n = (int)strtol(argv[5], NULL, 10), i, warm = n / 10;
	double *t = malloc(sizeof(double) * n);
	molt_unit *u;
	molt_job *j;
	char *json;

	if (molt_unit_load_local(&u, argv[2], argv[3], argv[4])) {
		fprintf(stderr, "%s\n", molt_error_last());
		return 1;
	}
	{
		void *dl = dlopen(argv[2], RTLD_NOW | RTLD_NOLOAD);
		int64_t (*call)(uint32_t, const void *, uint32_t) = (int64_t (*)(uint32_t, const void *, uint32_t))dlsym(dl, "molt_call");
		int32_t (*poll)(int64_t, const void **, uint32_t *) = (int32_t (*)(int64_t, const void **, uint32_t *))dlsym(dl, "molt_poll");
		void *(*alloc)(uint32_t) = (void *(*)(uint32_t))dlsym(dl, "molt_alloc");
		void (*ufree)(void *, uint32_t) = (void (*)(void *, uint32_t))dlsym(dl, "molt_free");
		const void *out;
		uint32_t len;
		for (i = -warm; i < n; i++) {
			double t0 = now_us();
			void *in = alloc(sizeof(req));
			memcpy(in, req, sizeof(req));
			int64_t task = call(1, in, sizeof(req));
			ufree(in, sizeof(req));
			if (poll(task, &out, &len) != 1) return 1;
			if (i >= 0) t[i] = now_us() - t0;
		}
		print("native_raw", t, n);
		dlclose(dl);
	}
	for (i = -warm; i < n; i++) {
		const unsigned char *e;
		size_t len;
		double t0 = now_us();
		if (molt_unit_start_envelope(&j, u, 1, req, sizeof(req)) || molt_job_poll(j, NULL) != 1 ||
		    molt_job_envelope(j, &e, &len) != 1)
			return 1;
		molt_job_free(j);
		if (i >= 0) t[i] = now_us() - t0;
	}
	print("native_job", t, n);
	for (i = -warm; i < n; i++) {
		double t0 = now_us();
		if (molt_unit_call_json(u, "count", "{\"n\":0}", &json)) return 1;
		free(json);
		if (i >= 0) t[i] = now_us() - t0;
	}
	print("native_json", t, n);
	molt_unit_free(u);
	free(t);
	return 0;
}

/* slices SO MANIFEST SCHEMAS K: count to 10^9 at three step budgets, in ms */
static int slices(char **argv)
{
	static const uint32_t budgets[] = { UINT32_MAX, 65536, 4096 };
	static const char *const names[] = { "native_slices_1", "native_slices_65536",
					     "native_slices_4096" };
	int k = (int)strtol(argv[5], NULL, 10), i, b;
	double *t = malloc(sizeof(double) * k);
	molt_unit *u;
	char *json;

	if (molt_unit_load_local(&u, argv[2], argv[3], argv[4]))
		return 1;
	for (b = 0; b < 3; b++) {
		molt_unit_options o = MOLT_UNIT_OPTIONS_INIT;
		o.step_budget = budgets[b];
		if (molt_unit_set_options(u, &o))
			return 1;
		for (i = -1; i < k; i++) {
			double t0 = now_us();
			if (molt_unit_call_json(u, "count", "{\"n\":1000000000}", &json))
				return 1;
			free(json);
			if (i >= 0)
				t[i] = (now_us() - t0) / 1000;
		}
		print(names[b], t, k);
	}
	molt_unit_free(u);
	free(t);
	return 0;
}

/* validate TYPEJSON PAYLOAD SAMPLES */
static int validate(char **argv)
{
	size_t n, off;
	unsigned char *p = slurp(argv[3], &n);
	cJSON *type = cJSON_Parse(argv[2]);
	int k = (int)strtol(argv[4], NULL, 10), i;
	double *scan = malloc(sizeof(double) * k), *unpack = malloc(sizeof(double) * k),
	       *all = malloc(sizeof(double) * k);

	for (i = -1; i < k; i++) {
		msgpack_zone zone;
		msgpack_object o;
		cJSON *out = NULL;
		char path[256] = "";
		double t0 = now_us(), t1, t2;
		if (molt__msgpack_size(p, n) != n) return 1;
		t1 = now_us();
		msgpack_zone_init(&zone, 1 << 16);
		off = 0;
		if (msgpack_unpack((const char *)p, n, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS) return 1;
		t2 = now_us();
		if (molt__schema_decode(type, &o, &out, path, sizeof(path))) {
			fprintf(stderr, "%s\n", molt_error_last());
			return 1;
		}
		if (i >= 0) {
			scan[i] = n / (t1 - t0);
			unpack[i] = n / (t2 - t1);
			all[i] = n / (now_us() - t0);
		}
		cJSON_Delete(out);
		msgpack_zone_destroy(&zone);
	}
	print("c_prescan", scan, k);
	print("c_unpack", unpack, k);
	print("c_validate", all, k);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "calls"))
		return calls(argv);
	if (argc == 6 && !strcmp(argv[1], "slices"))
		return slices(argv);
	if (argc == 5 && !strcmp(argv[1], "validate"))
		return validate(argv);
	fprintf(stderr, "usage: abi_native calls SO MANIFEST SCHEMAS N | validate TYPE FILE K\n");
	return 2;
}
`;

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const p95 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.round(0.95 * (s.length - 1)))]; };
const fmt = (x) => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
const rows = [];
// For a rate, "P95" is the slow end too: the rate of the P95 time.
const p5 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.max(0, Math.round(0.05 * (s.length - 1)))]; };
const row = (workload, how, xs, unit) => rows.push({ workload, how, med: median(xs), p95: unit === 'MB/s' ? p5(xs) : p95(xs), n: xs.length, unit });
const now = () => performance.now();

const tmp = mkdtempSync(join(tmpdir(), 'molt-bench-'));
try {
  // --- the native helper, linked with libmolt's static archive
  const exe = join(tmp, 'abi_native');
  writeFileSync(join(tmp, 'abi_native.c'), NATIVE_C);
  const cc = spawnSync('cc', ['-O2', '-std=gnu11', '-o', exe, join(tmp, 'abi_native.c'),
    `-I${ROOT}/runtime/include`, `-I${ROOT}/runtime/src`, `-I${ROOT}/registry/include`, '-I/usr/include/cjson',
    `${BUILD}/runtime/libmolt_static.a`, `${BUILD}/registry/libmrcore.a`,
    '-lcurl', '-lsodium', '-lcjson', '-lmsgpackc', '-lcrypto', '-lm', '-ldl'], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`compiling the native helper against ${BUILD} failed (make build first):\n${cc.stderr}`);
  const native = (...a) => {
    const r = spawnSync(exe, a, { encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.status !== 0) throw new Error(`abi_native ${a[0]}: ${r.stderr}`);
    return Object.fromEntries(r.stdout.trim().split('\n').map((l) => { const [k, ...v] = l.split(' '); return [k, v.map(Number)]; }));
  };

  // --- round trips
  const nd = join(FIXTURE, 'out/native/countdown-0.1.0'), wd = join(FIXTURE, 'out/wasm32/countdown-0.1.0');
  const n = native('calls', join(nd, 'libcountdown.so'), join(nd, 'manifest.json'), join(ROOT, 'schemas'), String(CALLS));
  row('empty call (count n=0), call + poll', 'native: raw exports (dlsym)', n.native_raw, 'µs');
  row('empty call (count n=0), call + poll', 'native: libmolt job API, envelope', n.native_job, 'µs');
  row('empty call (count n=0), call + poll', 'native: molt_unit_call_json (JSON, both ways validated)', n.native_json, 'µs');

  const mf = readFileSync(join(wd, 'manifest.json'));
  const schemas = JSON.parse(mf).schemas.map((s) => readFileSync(join(ROOT, 'schemas', `${s.id}.v${s.version}.json`)));
  const wasm = readFileSync(join(wd, 'countdown.wasm'));
  const u = await molt.instantiateLocal({ bytes: wasm, manifest: mf, schemas });
  const req = u.encodeRequest('count', { n: 0 });
  const warm = Math.floor(CALLS / 10);
  {
    const { instance } = await WebAssembly.instantiate(wasm, {});
    const ex = instance.exports;
    ex._initialize?.();
    const put = (b) => { const p = ex.molt_alloc(b.length) >>> 0; new Uint8Array(ex.memory.buffer).set(b, p); return p; };
    const cfg = molt.encodeEnvelope('molt.runtime_config', 1, molt.encodeMsgpack(new Map()));
    ex.molt_init(put(cfg), cfg.length);
    const out = ex.molt_alloc(8);
    const t = [];
    for (let i = -warm; i < CALLS; i++) {
      const t0 = now();
      const p = put(req);
      const task = ex.molt_call(1, p, req.length);
      ex.molt_free(p, req.length);
      if (ex.molt_poll(task, out, out + 4) !== 1) throw new Error('poll');
      const dv = new DataView(ex.memory.buffer);
      new Uint8Array(ex.memory.buffer, dv.getUint32(out, true), dv.getUint32(out + 4, true)).slice();
      if (i >= 0) t.push((now() - t0) * 1000);
    }
    row('empty call (count n=0), call + poll', 'wasm (Node): raw exports', t, 'µs');
  }
  for (const [how, f] of [
    ['wasm (Node): molt.js callEnvelope', () => u.callEnvelope(1, req).result],
    ['wasm (Node): molt.js call (JS values, both ways validated)', () => u.call('count', { n: 0 }).result],
  ]) {
    const t = [];
    for (let i = -warm; i < CALLS; i++) {
      const t0 = now();
      await f();
      if (i >= 0) t.push((now() - t0) * 1000);
    }
    row('empty call (count n=0), call + poll', how, t, 'µs');
  }

  // --- slicing: a count to 10^9 in one slice and in many
  const SLICE_RUNS = 5;
  const sl = native('slices', join(nd, 'libcountdown.so'), join(nd, 'manifest.json'), join(ROOT, 'schemas'), String(SLICE_RUNS));
  for (const [b, name] of [[0xffffffff, '1 slice'], [65536, 'budget 65536 (15,259 slices)'], [4096, 'budget 4096 (244,141 slices)']]) {
    row('count to 10^9', `native: ${name}`, sl[`native_slices_${b === 0xffffffff ? 1 : b}`], 'ms');
    const v = await molt.instantiateLocal({ bytes: wasm, manifest: mf, schemas, stepBudget: b });
    const t = [];
    for (let i = -1; i < SLICE_RUNS; i++) {
      const t0 = now();
      await v.call('count', { n: 1e9 }).result;
      if (i >= 0) t.push(now() - t0);
    }
    row('count to 10^9', `wasm (Node): ${name}`, t, 'ms');
  }

  // --- validation throughput
  const type = { list: { record: [
    { name: 'id', type: 'int' }, { name: 'name', type: 'string' }, { name: 'score', type: 'float' },
    { name: 'active', type: 'bool' }, { name: 'tags', type: { list: 'string' } },
  ] } };
  const data = Array.from({ length: RECORDS }, (_, i) => ({
    id: i * 7919, name: `record ${i}`, score: i / 3, active: i % 2 === 0, tags: ['a', `t${i % 10}`],
  }));
  const bytes = molt.encodeMsgpack(molt.validate(type, data, { direction: 'encode' }));
  const file = join(tmp, 'payload.msgpack');
  writeFileSync(file, bytes);
  const mb = bytes.length / 1e6;
  const label = `${RECORDS.toLocaleString('en')} records, MsgPack (${mb.toFixed(1)} MB)`;
  const c = native('validate', JSON.stringify(type), file, String(SAMPLES));
  row(label, 'C: pre-scan (molt__msgpack_size)', c.c_prescan, 'MB/s');
  row(label, 'C: msgpack_unpack', c.c_unpack, 'MB/s');
  row(label, 'C: pre-scan + unpack + molt__schema_decode (to cJSON)', c.c_validate, 'MB/s');
  const js = [];
  for (let i = -1; i < SAMPLES; i++) {
    const t0 = now();
    molt.validate(type, molt.decodeMsgpack(bytes), { direction: 'decode' });
    if (i >= 0) js.push(bytes.length / ((now() - t0) * 1000));
  }
  row(label, 'JS: molt.js decodeMsgpack + validate', js, 'MB/s');
  const text = JSON.stringify(data);
  const jp = [];
  for (let i = -1; i < SAMPLES; i++) {
    const t0 = now();
    JSON.parse(text);
    if (i >= 0) jp.push(text.length / ((now() - t0) * 1000));
  }
  row(`the same records as JSON text (${(text.length / 1e6).toFixed(1)} MB)`, 'JS: JSON.parse (reference)', jp, 'MB/s');
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

console.log(`Node ${process.versions.node}; ${CALLS} calls after ${Math.floor(CALLS / 10)} warm-up; ${SAMPLES} validation samples\n`);
console.log('| workload | how | median | P95 | unit | samples |');
console.log('|---|---|---:|---:|---|---:|');
for (const r of rows)
  console.log(`| ${r.workload} | ${r.how} | ${fmt(r.med)} | ${fmt(r.p95)} | ${r.unit} | ${r.n} |`);
