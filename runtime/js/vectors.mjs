#!/usr/bin/env node
// vectors.mjs — the wasm half of `mrecipe test` (docs/testing.md).
//
//   node runtime/js/vectors.mjs --wasm FILE --manifest FILE --schemas DIR --requests FILE
//
// Instantiates a locally built unit through molt.js (instantiateLocal: the
// manifest's artifact and schema digests are checked, nothing is signed yet),
// then runs each request of the requests file, one JSON object a line:
//   {"function_id": 1, "request_hex": "93b3..."}
// exactly as given (mrecipe encodes them once for both targets), and prints
// one JSON line per request, in order:
//   {"case": 0, "status": 1, "envelope_hex": "93b4..."}   1 result, 2 error
//   {"case": 1, "error": "TRAP: ..."}                      the call itself failed
// A trap is reported for its case, and the unit is instantiated afresh for
// the next one. Exit codes (STYLE.md rule 7): 0 every request ran, 1 the unit
// was refused, 2 usage or a malformed requests file, 3 environment (a missing
// file, Node too old, npm packages not installed).

import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const USAGE = 'usage: vectors.mjs --wasm FILE --manifest FILE --schemas DIR --requests FILE';
const REQUESTS_MAX = 256 * 1024 * 1024;

class Exit extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') { o.help = true; continue; }
    const key = { '--wasm': 'wasm', '--manifest': 'manifest', '--schemas': 'schemas', '--requests': 'requests' }[a];
    if (!key) throw new Exit(2, `unknown argument ${JSON.stringify(a)}\n${USAGE}`);
    if (i + 1 >= argv.length) throw new Exit(2, `${a} needs a value\n${USAGE}`);
    o[key] = argv[++i];
  }
  if (!o.help)
    for (const k of ['wasm', 'manifest', 'schemas', 'requests'])
      if (!o[k]) throw new Exit(2, `--${k} is required\n${USAGE}`);
  return o;
}

async function read(path, what, encoding) {
  try { return await readFile(path, encoding); } catch (e) {
    throw new Exit(3, `cannot read ${what} ${path}: ${e.code ?? e.message}`);
  }
}

const fromHex = (s, where) => {
  if (typeof s !== 'string' || !/^([0-9a-f]{2})*$/.test(s)) throw new Exit(2, `${where}: request_hex must be lowercase hex with an even number of digits`);
  return Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
};

function parseRequests(text, path) {
  if (text.length > REQUESTS_MAX) throw new Exit(2, `${path}: over ${REQUESTS_MAX} bytes`);
  return text.split('\n').filter((l) => l.trim()).map((l, i) => {
    let r;
    try { r = JSON.parse(l); } catch (e) { throw new Exit(2, `${path}:${i + 1}: not JSON: ${e.message}`); }
    if (!Number.isInteger(r?.function_id) || r.function_id < 0 || r.function_id > 0xffffffff)
      throw new Exit(2, `${path}:${i + 1}: function_id must be a u32`);
    return { fn: r.function_id, bytes: fromHex(r.request_hex, `${path}:${i + 1}`) };
  });
}

/**
 * Runs the runner. Returns the exit status; writes to the given streams.
 * @param {string[]} argv arguments after the script name
 */
export async function main(argv, out = process.stdout, err = process.stderr) {
  let molt;
  try {
    const o = parseArgs(argv);
    if (o.help) { out.write(USAGE + '\n'); return 0; }
    const major = Number(process.versions.node.split('.')[0]);
    if (major < 20) throw new Exit(3, `Node ${process.versions.node} is too old; Node 20 or newer is needed (scripts/setup installs it)`);
    try { molt = await import('./molt.js'); } catch (e) {
      throw new Exit(3, `cannot load runtime/js/molt.js (${e.code ?? e.message}); run npm ci in the repository (scripts/setup does)`);
    }
    const [bytes, manifest, requestsText] = await Promise.all([
      read(o.wasm, 'artifact'), read(o.manifest, 'manifest'), read(o.requests, 'requests file', 'utf8')]);
    const requests = parseRequests(requestsText, o.requests);
    let listed;
    try { listed = JSON.parse(manifest.toString('utf8')).schemas; } catch { listed = null; }
    // The files the manifest lists; instantiateLocal names any that is missing.
    const schemas = [];
    for (const s of Array.isArray(listed) ? listed : []) {
      const file = join(o.schemas, `${s?.id}.v${s?.version}.json`);
      const b = await readFile(file).catch((e) => {
        if (e.code === 'ENOENT') return null;
        throw new Exit(3, `cannot read schema ${file}: ${e.code ?? e.message}`);
      });
      if (b) schemas.push(b);
    }
    const load = () => molt.instantiateLocal({ bytes, manifest: new Uint8Array(manifest), schemas, where: o.manifest });
    let unit = await load();
    for (const [i, r] of requests.entries()) {
      let line;
      try {
        const { status, envelope } = await unit.callEnvelope(r.fn, r.bytes).result;
        line = { case: i, status, envelope_hex: molt.toHex(envelope) };
      } catch (e) {
        if (!(e instanceof molt.MoltError)) throw e;
        line = { case: i, error: `${e.code}: ${e.message}` };
        if (e.code === 'TRAP' || e.code === 'UNIT_BROKEN') unit = await load();
      }
      out.write(JSON.stringify(line) + '\n');
    }
    return 0;
  } catch (e) {
    if (e instanceof Exit) {
      err.write(`vectors.mjs: ${e.message}\n`);
      return e.status;
    }
    if (molt && e instanceof molt.MoltError) {
      err.write(`vectors.mjs: ${e.code}: ${e.message}\n`);
      return e.code === 'NOT_FOUND' ? 2 : 1;
    }
    err.write(`vectors.mjs: internal error: ${e.stack ?? e}\n`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href)
  process.exitCode = await main(process.argv.slice(2));
