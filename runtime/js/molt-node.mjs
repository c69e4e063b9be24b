#!/usr/bin/env node
// molt-node.mjs — call a Molt unit from Node through runtime/js/molt.js.
//
//   node runtime/js/molt-node.mjs call --registry URL_OR_DIR --key PUBFILE \
//        NAME@VERSION FUNCTION JSON [--envelope-hex] [--target TRIPLE]
//
// Prints the result as JSON (bytes as base64 strings, ints beyond 2^53 as
// exact digits), or with --envelope-hex the unit's result envelope in
// lowercase hex. Exit codes (STYLE.md rule 7): 0 ok, 1 verification failure
// (or a runtime error reported by the unit), 2 usage or input error
// (including a validation error from the unit), 3 environment (network,
// missing file).

import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openRegistry, loadUnit, MoltError, toHex, toBase64, decodeEnvelope, decodeMsgpack } from './molt.js';

const USAGE = 'usage: molt-node.mjs call --registry URL_OR_DIR (--key PUBFILE [--key PUBFILE ...] | --policy FILE) [--allow-yanked] [--target TRIPLE] [--envelope-hex] NAME@VERSION FUNCTION JSON';

/** Exit status for a MoltError code. */
export function exitCode(code) {
  if (['USAGE', 'INVALID_INPUT', 'UNKNOWN_FUNCTION', 'NOT_FOUND', 'YANKED', 'UNIT_VALIDATION', 'KEY_INVALID', 'POLICY_INVALID', 'UNSUPPORTED_CODEC', 'OPTIONS_INVALID'].includes(code)) return 2;
  if (['FETCH_FAILED', 'CRYPTO_UNAVAILABLE', 'WORKER_FAILED'].includes(code)) return 3;
  return 1;
}

/**
 * A fetch that also reads file:// URLs (Node's fetch has none): a missing
 * file answers 404, as a static server would.
 * @returns {typeof fetch}
 */
export function fileFetch() {
  return async (url) => {
    const u = new URL(url);
    if (u.protocol !== 'file:') return fetch(url);
    try {
      const b = await readFile(fileURLToPath(u));
      return new Response(b, { status: 200, headers: { 'content-length': String(b.length) } });
    } catch (e) {
      if (e.code === 'ENOENT' || e.code === 'EISDIR' || e.code === 'ENOTDIR') return new Response(null, { status: 404 });
      throw e;
    }
  };
}

/**
 * Reads a trust policy file (keys/policy.json format) and the .pub files it
 * names (relative to it), for openRegistry({policy}).
 * @param {string} path
 */
export async function loadPolicy(path) {
  let p;
  try { p = JSON.parse(await readFile(path, 'utf8')); } catch (e) {
    throw new MoltError('POLICY_INVALID', `trust policy ${path}: ${e.code ?? e.message}`);
  }
  for (const k of Array.isArray(p?.keys) ? p.keys : []) {
    const f = resolve(dirname(path), String(k.pub));
    try { k.publicKey = await readFile(f, 'utf8'); } catch (e) {
      throw new MoltError('POLICY_INVALID', `trust policy ${path}: key ${k.id}: cannot read ${f}: ${e.code ?? e.message}`);
    }
  }
  return p;
}

function toJson(v) {
  const s = JSON.stringify(v, (k, x) =>
    typeof x === 'bigint' ? `\u0000big:${x}` : x instanceof Uint8Array ? toBase64(x) : x, 2);
  return s.replace(/"\\u0000big:(-?\d+)"/g, '$1');
}

function parseArgs(argv) {
  const o = { keys: [], rest: [], target: 'wasm32-wasi', hex: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new MoltError('USAGE', `${a} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (a === '--registry') o.registry = val();
    else if (a === '--key') o.keys.push(val());
    else if (a === '--policy') o.policy = val();
    else if (a === '--allow-yanked') o.allowYanked = true;
    else if (a === '--target') o.target = val();
    else if (a === '--envelope-hex') o.hex = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else if (a.startsWith('--')) throw new MoltError('USAGE', `unknown option ${a}\n${USAGE}`);
    else o.rest.push(a);
  }
  return o;
}

/**
 * Runs the CLI. Returns the exit status; writes to the given streams.
 * @param {string[]} argv arguments after the script name
 */
export async function main(argv, out = process.stdout, err = process.stderr) {
  try {
    const o = parseArgs(argv);
    if (o.help) { out.write(USAGE + '\n'); return 0; }
    if (o.rest[0] !== 'call' || o.rest.length !== 4)
      throw new MoltError('USAGE', `expected: call NAME@VERSION FUNCTION JSON, found ${o.rest.length ? o.rest.map((x) => JSON.stringify(x)).join(' ') : 'nothing'}\n${USAGE}`);
    if (!o.registry) throw new MoltError('USAGE', `--registry is required\n${USAGE}`);
    if (!o.keys.length && !o.policy) throw new MoltError('USAGE', `at least one --key PUBFILE (or --policy FILE) is required\n${USAGE}`);
    const [, spec, fn, json] = o.rest;
    const at = spec.lastIndexOf('@');
    if (at <= 0 || at === spec.length - 1) throw new MoltError('USAGE', `expected NAME@VERSION, found ${JSON.stringify(spec)}`);
    const name = spec.slice(0, at), version = spec.slice(at + 1);
    let value;
    try { value = JSON.parse(json); } catch (e) {
      throw new MoltError('USAGE', `the request is not JSON (${e.message}): ${JSON.stringify(json.slice(0, 80))}`);
    }
    const keys = [];
    for (const k of o.keys) {
      try { keys.push(await readFile(k, 'utf8')); } catch (e) {
        throw new MoltError('FETCH_FAILED', `cannot read public key file ${k}: ${e.code ?? e.message}`);
      }
    }
    let url = o.registry;
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
      const dir = resolve(url);
      const st = await stat(dir).catch(() => null);
      if (!st?.isDirectory()) throw new MoltError('FETCH_FAILED', `registry directory ${dir} does not exist`);
      url = pathToFileURL(dir).href + '/';
    }
    const policy = o.policy ? await loadPolicy(o.policy) : undefined;
    const registry = openRegistry({ url, trustedKeys: keys, policy, fetch: fileFetch() });
    const unit = await loadUnit(registry, { name, version, target: o.target, allowYanked: o.allowYanked });
    if (!o.hex) {
      out.write(toJson(await unit.call(fn, value).result) + '\n');
      return 0;
    }
    const f = unit.functions.get(fn);
    const env = unit.encodeRequest(fn, value);
    const r = await unit.callEnvelope(f.id, env).result;
    out.write(toHex(r.envelope) + '\n');
    if (r.status === 1) return 0;
    const e = decodeMsgpack(decodeEnvelope(r.envelope).payload);
    err.write(`molt-node: ${name}.${fn} reported a ${e?.class} error ${e?.code}: ${e?.message}\n`);
    return e?.class === 'validation' ? 2 : 1;
  } catch (e) {
    if (!(e instanceof MoltError)) {
      err.write(`molt-node: internal error: ${e.stack ?? e}\n`);
      return 1;
    }
    err.write(`molt-node: ${e.code}: ${e.message}\n`);
    return exitCode(e.code);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href)
  process.exitCode = await main(process.argv.slice(2));
