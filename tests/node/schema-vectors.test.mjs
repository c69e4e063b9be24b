// The shared schema vectors (tests/vectors/schemas, docs/schemas.md) through
// the JS side: values through decodeMsgpack + validate (decode direction),
// schema documents through checkSchema. tests/unit/schema_vectors_test.c
// runs the same files through the C side; both must agree with each file.
//
//   node tests/node/schema-vectors.test.mjs [-v]     (-v: one line per case)

import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as molt from '../../runtime/js/molt.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = join(ROOT, 'tests/vectors/schemas');
const CODES = ['type', 'missing', 'unknown', 'enum', 'nul', 'utf8', 'key', 'duplicate', 'malformed'];
const verbose = process.argv.includes('-v');
let passed = 0, failed = 0;

const ok = (what) => { passed++; if (verbose) console.log(`ok - ${what}`); };
const notOk = (what, why) => { failed++; console.log(`not ok - ${what}: ${why}`); };

const fromHex = (hex) => {
  const h = hex.replace(/ /g, '');
  if (!/^([0-9a-f]{2})*$/.test(h)) throw new Error(`"msgpack" is not hex: ${hex}`);
  return Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
};

// What a validate() error is about, in the vectors' words (from its
// `expected` and `found` details; see validate in molt.js).
function classify(e) {
  if (e.found === 'nothing') return 'missing';
  if (e.expected === 'no such field') return 'unknown';
  if (/UTF-8/.test(e.expected)) return 'utf8';
  if (/NUL/.test(e.expected)) return 'nul';
  if (/repeat/.test(e.expected)) return 'duplicate';
  if (/map keys/.test(e.expected)) return 'key';
  if (/^one of /.test(e.expected) && /^string /.test(e.found)) return 'enum';
  return 'type';
}

// The JSON form: integral numbers become ints, others float64 (molt.js's
// encoder does exactly that), objects maps in key order.
function bytesOf(c) {
  if ((c.msgpack === undefined) === (c.json === undefined)) throw new Error('a case needs either "msgpack" (hex) or "json"');
  return c.msgpack !== undefined ? fromHex(c.msgpack) : molt.encodeMsgpack(c.json);
}

function expectation(c, needCode) {
  if ((c.valid === true) === (c.error !== undefined)) throw new Error('a case needs either "valid": true or an "error"');
  if (c.valid) return null;
  if (typeof c.error.path !== 'string') throw new Error('"error" needs a "path"');
  if (needCode && !CODES.includes(c.error.code)) throw new Error(`unknown error code ${JSON.stringify(c.error.code)}`);
  return c.error;
}

function runValue(file, type, c) {
  const what = `${file}: ${c.name}`;
  let want, bytes, got = null, v;
  try { want = expectation(c, true); bytes = bytesOf(c); } catch (e) { return notOk(what, e.message); }
  try { v = molt.decodeMsgpack(bytes); } catch (e) { got = { code: 'malformed', path: '', message: e.message }; }
  if (!got) {
    try { molt.validate(type, v, { direction: 'decode' }); } catch (e) {
      if (!(e instanceof molt.MoltError)) return notOk(what, `validate threw a ${e.constructor.name}, not a MoltError: ${e.message}`);
      got = { code: classify(e), path: e.path, message: e.message };
    }
  }
  if (!want && got) return notOk(what, `expected valid; the JS validator says ${got.code} at '${got.path}': ${got.message}`);
  if (want && !got) return notOk(what, `expected ${want.code} at '${want.path}'; the JS validator accepts it`);
  if (want && (want.code !== got.code || want.path !== got.path))
    return notOk(what, `expected ${want.code} at '${want.path}'; the JS validator says ${got.code} at '${got.path}': ${got.message}`);
  ok(what);
}

function runDocument(file, c) {
  const what = `${file}: ${c.name}`;
  let want, err = null;
  try { want = expectation(c, false); } catch (e) { return notOk(what, e.message); }
  try { molt.checkSchema(c.schema, 'doc.json'); } catch (e) {
    if (!(e instanceof molt.MoltError) || e.code !== 'SCHEMA_INVALID') return notOk(what, `checkSchema threw ${e.code ?? e.constructor.name}: ${e.message}`);
    err = e;
  }
  // checkSchema's messages name the place in prose, so only the verdict is
  // compared here; the C side checks the path too.
  if (!want && err) return notOk(what, `expected valid; checkSchema says: ${err.message}`);
  if (want && !err) return notOk(what, `expected a problem at '${want.path}'; checkSchema accepts it`);
  ok(what);
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();
const seen = new Set();
for (const file of files) {
  let v;
  try { v = JSON.parse(readFileSync(join(DIR, file), 'utf8')); } catch (e) { notOk(file, e.message); continue; }
  const extra = Object.keys(v).filter((k) => !['about', 'type', 'cases', 'documents'].includes(k));
  if (typeof v.about !== 'string' || extra.length) { notOk(file, `needs "about" and no other keys than type, cases, documents (found ${extra.join(', ')})`); continue; }
  if (v.documents) {
    for (const c of v.documents) runDocument(file, c);
    continue;
  }
  try { molt.checkSchema({ id: 'vectors.type', version: 1, type: v.type }, `${file} "type"`); } catch (e) {
    notOk(`${file}: type`, `the vector's type is not a valid schema type: ${e.message}`);
    continue;
  }
  for (const c of v.cases) {
    runValue(file, v.type, c);
    if (c.error) seen.add(c.error.code);
  }
}
const missing = CODES.filter((c) => !seen.has(c));
if (files.length < 10) notOk('vector files', `found ${files.length} in ${DIR}`);
else if (missing.length) notOk('every error code is exercised', `no vector expects ${missing.join(', ')}`);
else ok('every error code is exercised');

// What the decoder gives back must be the text that was sent (molt.js once
// decoded bad UTF-8 into other characters and dropped a leading U+FEFF).
const roundTrips = [
  ['a leading U+FEFF is kept', '\ufeffa'],
  ['a long string with a leading U+FEFF is kept', '\ufeff' + 'é'.repeat(150)],
  ['a long non-ASCII string', '€😀'.repeat(60)],
];
for (const [what, s] of roundTrips) {
  const got = molt.decodeMsgpack(molt.encodeMsgpack(s));
  got === s ? ok(`decoder: ${what}`) : notOk(`decoder: ${what}`, `got ${JSON.stringify(got.slice?.(0, 20) ?? got)}`);
}

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
