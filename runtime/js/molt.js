// molt.js — the JavaScript host for Molt units (browsers and Node 20).
//
// It fetches a unit from a static registry (docs/registry.md), checks every
// file against signed metadata before use (minisign "Ed" signatures and
// SHA-256 through WebCrypto), compiles and instantiates the wasm with no
// imports, and calls it through the Molt ABI v0.1 (docs/abi.md) with
// schema-checked MsgPack payloads (docs/schemas.md). instantiateLocal does
// the same from local build outputs, for authors' tests (docs/testing.md).
//
// Every failure is a MoltError with a stable `code` and a message that says
// what was expected, what was found, where, and what to do.

// A unit runs in a dedicated module Worker whose script is this very file
// (see "workers"): there it needs no MsgPack, since envelopes are built and
// read on the calling side, and import maps do not reach workers, so the
// library is imported only outside that Worker.
const WORKER_NAME = 'molt-unit';
const IN_UNIT_WORKER = typeof WorkerGlobalScope === 'function' && globalThis instanceof WorkerGlobalScope && globalThis.name === WORKER_NAME;
const { Encoder, Decoder } = IN_UNIT_WORKER ? { Encoder: class {}, Decoder: class {} } : await import('@msgpack/msgpack');

/** The ABI this host speaks: (major << 16) | minor. */
export const ABI_VERSION = 0x00000001;
const ABI_STRING = '0.1';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Caps for files whose size no signed metadata gives (endless-data defence). */
/** Largest accepted jump over the snapshot version seen before (fast-forward defence). */
export const MAX_VERSION_JUMP = 1000000;

export const LIMITS = {
  snapshot: 1 * MiB,
  index: 4 * MiB,
  signature: 16 * KiB,
  schema: 1 * MiB,
  manifest: 1 * MiB,
  artifact: 256 * MiB,
  /** a hinted schema pack (docs/registry.md, "Hints"); its size comes from the signed index */
  schemaPack: 16 * MiB,
};

// ---------------------------------------------------------------- errors

/** An error from the Molt host: `code` is stable, `message` is for people. */
export class MoltError extends Error {
  /**
   * @param {string} code e.g. 'DIGEST_MISMATCH'
   * @param {string} message what was expected, what was found, where, what to do
   * @param {object} [details] extra fields copied onto the error (url, expected, found, ...)
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'MoltError';
    this.code = code;
    Object.assign(this, details);
  }
}

const fail = (code, message, details) => { throw new MoltError(code, message, details); };

// ---------------------------------------------------------------- bytes

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

/** Lowercase hex of bytes. */
export function toHex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function fromBase64(text, what) {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0)
    fail('SIGNATURE_MALFORMED', `${what}: expected a base64 line, found ${JSON.stringify(text.slice(0, 40))}`);
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Base64 of bytes. */
export function toBase64(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (typeof data === 'string') return utf8.encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('expected bytes (Uint8Array, ArrayBuffer or string)');
}

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) fail('CRYPTO_UNAVAILABLE', 'WebCrypto (crypto.subtle) is not available: browsers expose it only in secure contexts (https:// or http://localhost / 127.0.0.1). Serve the page from one of those.');
  return s;
}

const now = () => (globalThis.performance ?? Date).now();

// ---------------------------------------------------------------- sha-256

/**
 * SHA-256 of `data`, written `sha256:<64 lowercase hex>`.
 * @param {Uint8Array|ArrayBuffer|string} data
 * @returns {Promise<string>}
 */
export async function sha256(data) {
  const d = await subtle().digest('SHA-256', asBytes(data));
  return 'sha256:' + toHex(new Uint8Array(d));
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

// ---------------------------------------------------------------- minisign

// minisign prints a key id as the little-endian u64 in uppercase hex.
// As minisign prints it: the little-endian u64, uppercase hex, no leading zeros.
const keyIdHex = (id) => toHex(Uint8Array.from(id).reverse()).toUpperCase().replace(/^0+(?=.)/, '');

function lines(text) {
  const ls = text.replace(/\r/g, '').split('\n');
  while (ls.length && ls[ls.length - 1] === '') ls.pop();
  return ls;
}

/**
 * Parses a minisign public key: the text of a `.pub` file or its bare base64 line.
 * @param {string} text
 * @returns {{keyId: Uint8Array, keyIdHex: string, publicKey: Uint8Array, text: string}}
 */
export function parsePublicKey(text) {
  if (typeof text !== 'string') fail('KEY_INVALID', 'a public key must be given as the text of a minisign .pub file');
  const ls = lines(text.trim());
  const b64 = ls.length === 1 ? ls[0] : ls[0]?.startsWith('untrusted comment:') && ls.length === 2 ? ls[1] : null;
  if (b64 === null)
    fail('KEY_INVALID', `expected a minisign public key ("untrusted comment: ..." then one base64 line), found ${ls.length} line(s) starting ${JSON.stringify(text.slice(0, 40))}; pass the .pub file made by minisign -G or mrecipe keygen`);
  let raw;
  try { raw = fromBase64(b64.trim(), 'public key'); } catch (e) { fail('KEY_INVALID', e.message + '; pass the .pub file made by minisign -G'); }
  if (raw.length !== 42 || raw[0] !== 0x45 || raw[1] !== 0x64)
    fail('KEY_INVALID', `expected a 42-byte "Ed" minisign public key, found ${raw.length} bytes starting ${JSON.stringify(String.fromCharCode(raw[0] ?? 0, raw[1] ?? 0))}`);
  const keyId = raw.slice(2, 10);
  return { keyId, keyIdHex: keyIdHex(keyId), publicKey: raw.slice(10), text };
}

/**
 * Parses a minisign signature file (.minisig).
 * @param {string|Uint8Array} sig
 * @returns {{algorithm: string, keyId: Uint8Array, keyIdHex: string, signature: Uint8Array, trustedComment: string, globalSignature: Uint8Array}}
 */
export function parseSignature(sig, where = 'signature') {
  let text;
  try { text = typeof sig === 'string' ? sig : utf8d.decode(sig); } catch {
    fail('SIGNATURE_MALFORMED', `${where}: expected minisign signature text, found bytes that are not UTF-8`);
  }
  const ls = lines(text);
  const tcPrefix = 'trusted comment: ';
  if (ls.length !== 4 || !ls[0].startsWith('untrusted comment:') || !ls[2].startsWith(tcPrefix))
    fail('SIGNATURE_MALFORMED', `${where}: expected a minisign signature (4 lines: untrusted comment, base64 signature, "trusted comment: ...", base64 global signature), found ${ls.length} line(s); re-create it with minisign -S -l or mrecipe publish`);
  const raw = fromBase64(ls[1], `${where} line 2`);
  const global = fromBase64(ls[3], `${where} line 4`);
  if (raw.length !== 74 || global.length !== 64)
    fail('SIGNATURE_MALFORMED', `${where}: expected a 74-byte signature and a 64-byte global signature, found ${raw.length} and ${global.length} bytes`);
  const keyId = raw.slice(2, 10);
  return {
    algorithm: String.fromCharCode(raw[0], raw[1]),
    keyId, keyIdHex: keyIdHex(keyId),
    signature: raw.slice(10),
    trustedComment: ls[2].slice(tcPrefix.length),
    globalSignature: global,
  };
}

async function ed25519Verify(publicKey, signature, data) {
  const s = subtle();
  let key;
  try {
    key = await s.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    fail('CRYPTO_UNAVAILABLE', `this runtime's WebCrypto cannot import an Ed25519 key (${e.message}); use Chrome ≥ 137, Firefox ≥ 129, Safari ≥ 17 or Node ≥ 20`);
  }
  return s.verify({ name: 'Ed25519' }, key, signature, data);
}

/**
 * Verifies a minisign signature over `data` against trusted keys, in minisign's
 * order: algorithm, key id, signature, then the trusted comment's global signature.
 * @param {Uint8Array|string} data the signed file's exact bytes
 * @param {string|Uint8Array} sigText the .minisig text
 * @param {Array<ReturnType<typeof parsePublicKey>>} trustedKeys
 * @param {string} [where] names the signature in messages (URL or digest)
 * @returns {Promise<{keyIdHex: string, trustedComment: string}>}
 */
export async function verifySignature(data, sigText, trustedKeys, where = 'signature') {
  const sig = parseSignature(sigText, where);
  if (sig.algorithm === 'ED')
    fail('UNSUPPORTED_ALGORITHM', `${where}: uses minisign's prehashed "ED" algorithm (Ed25519 over BLAKE2b-512), which browsers cannot check because WebCrypto has no BLAKE2b; expected the legacy "Ed" algorithm. Re-sign with \`minisign -S -l\` (mrecipe publish does this).`, { where });
  if (sig.algorithm !== 'Ed')
    fail('SIGNATURE_MALFORMED', `${where}: unknown signature algorithm ${JSON.stringify(sig.algorithm)}; expected "Ed"`, { where });
  const key = trustedKeys.find((k) => k.keyId.every((b, i) => b === sig.keyId[i]));
  if (!key)
    fail('UNTRUSTED_KEY', `${where}: signed by key ID ${sig.keyIdHex}, which is not a trusted key (trusted: ${trustedKeys.map((k) => k.keyIdHex).join(', ') || 'none'}). Add that publisher's public key to the trusted keys only if you trust it; otherwise fetch from a registry signed by a trusted key.`,
      { where, keyId: sig.keyIdHex, trusted: trustedKeys.map((k) => k.keyIdHex) });
  if (!(await ed25519Verify(key.publicKey, sig.signature, asBytes(data))))
    fail('SIGNATURE_INVALID', `${where}: the Ed25519 signature by key ID ${sig.keyIdHex} does not match the signed file: the file or its signature was altered. Do not use it; re-fetch from the publisher or republish.`, { where, keyId: sig.keyIdHex });
  const tc = utf8.encode(sig.trustedComment);
  const msg = new Uint8Array(64 + tc.length);
  msg.set(sig.signature);
  msg.set(tc, 64);
  if (!(await ed25519Verify(key.publicKey, sig.globalSignature, msg)))
    fail('SIGNATURE_INVALID', `${where}: the trusted comment ${JSON.stringify(sig.trustedComment)} is not signed by key ID ${sig.keyIdHex} (its global signature does not verify): the comment was altered. Do not use it.`, { where, keyId: sig.keyIdHex });
  return { keyIdHex: sig.keyIdHex, trustedComment: sig.trustedComment };
}

// ---------------------------------------------------------------- fetching

/**
 * Fetches a URL as bytes through a streaming reader, reporting progress and
 * refusing to read past the size signed metadata promised.
 * @param {string|URL} url
 * @param {object} [opts]
 * @param {number} [opts.expectedSize] exact size from signed metadata; also the progress total
 * @param {number} [opts.maxSize] cap when no size is known
 * @param {(p: {loaded: number, total: number|null, url: string}) => void} [opts.onProgress]
 * @param {typeof fetch} [opts.fetch]
 * @param {string} [opts.what] names the file in messages ("artifact of hello@0.1.0")
 * @returns {Promise<Uint8Array>}
 */
export async function fetchBytes(url, opts = {}) {
  const { expectedSize, maxSize, onProgress, what = 'file' } = opts;
  const doFetch = opts.fetch ?? globalThis.fetch;
  const href = String(url);
  let res;
  try {
    res = await doFetch(href);
  } catch (e) {
    fail('FETCH_FAILED', `fetching ${what} from ${href} failed: ${e.message}${e.cause ? ` (${e.cause.code ?? e.cause.message})` : ''}. Check the registry URL and that the server is running.`, { url: href });
  }
  if (!res.ok)
    fail('FETCH_FAILED', `fetching ${what} from ${href}: HTTP ${res.status}${res.status === 404 ? ' (not found): the registry is incomplete or the URL is wrong' : ''}. Check the registry URL; if it is right, the registry needs repair (molt verify).`, { url: href, status: res.status });
  const cap = expectedSize ?? maxSize ?? Infinity;
  // Content-Length counts compressed bytes under Content-Encoding: use it only as a hint.
  const cl = Number(res.headers?.get?.('content-length'));
  const plain = !res.headers?.get?.('content-encoding');
  // The total is the size signed metadata gives when there is one (the
  // artifact's, from its manifest): right whatever the encoding. A
  // Content-Length hint that turns out short is dropped, so no event ever
  // says loaded > total, and the last event always has loaded === total.
  let total = expectedSize ?? (plain && Number.isFinite(cl) && cl > 0 ? cl : null);
  const chunks = [];
  let loaded = 0;
  const report = () => {
    if (total !== null && loaded > total) total = null;
    onProgress?.({ loaded, total, url: href });
  };
  report();
  const tooMuch = () => expectedSize !== undefined
    ? fail('SIZE_MISMATCH', `${what} at ${href}: expected ${expectedSize} bytes (from signed metadata), but the server sent more (at least ${loaded}); stopped reading. The file was replaced or the server is hostile: do not use it.`, { url: href, expected: expectedSize, found: loaded })
    : fail('SIZE_MISMATCH', `${what} at ${href}: larger than the ${cap}-byte limit (read ${loaded} bytes); stopped reading. The file is not what this registry should serve.`, { url: href, expected: cap, found: loaded });
  if (res.body?.getReader) {
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        loaded += value.byteLength;
        if (loaded > cap) tooMuch();
        chunks.push(value);
        report();
      }
    } catch (e) {
      reader.cancel().catch(() => {});
      if (e instanceof MoltError) throw e;
      fail('FETCH_FAILED', `reading ${what} from ${href} failed after ${loaded} bytes: ${e.message}`, { url: href });
    }
  } else {
    const b = new Uint8Array(await res.arrayBuffer());
    loaded = b.byteLength;
    if (loaded > cap) tooMuch();
    chunks.push(b);
    report();
  }
  if (expectedSize !== undefined && loaded !== expectedSize)
    fail('SIZE_MISMATCH', `${what} at ${href}: expected ${expectedSize} bytes (from signed metadata), found ${loaded}. The file was truncated or replaced: do not use it; re-fetch, or repair the registry.`, { url: href, expected: expectedSize, found: loaded });
  if (total !== loaded) {
    total = loaded;
    onProgress?.({ loaded, total, url: href });
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.byteLength; }
  return out;
}

// ---------------------------------------------------------------- schemas

const PRIMS = new Set(['bool', 'int', 'float', 'string', 'bytes']);
const ID_RE = /^[a-z0-9_]+(\.[a-z0-9_]+)+$/;

/**
 * Checks a schema document (docs/schemas.md) and returns it.
 * @param {any} doc parsed JSON
 * @param {string} [where]
 */
export function checkSchema(doc, where = 'schema') {
  const bad = (msg) => fail('SCHEMA_INVALID', `${where}: ${msg}`, { where });
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) bad('expected a JSON object');
  for (const k of Object.keys(doc))
    if (!['id', 'version', 'codec', 'doc', 'type'].includes(k)) bad(`unknown key ${JSON.stringify(k)} (expected id, version, codec, doc, type)`);
  if (typeof doc.id !== 'string' || !ID_RE.test(doc.id)) bad(`"id" must be dotted lowercase words, found ${JSON.stringify(doc.id)}`);
  if (!Number.isInteger(doc.version) || doc.version < 1 || doc.version > 0x7fffffff) bad(`"version" must be an integer from 1 to 2^31-1, found ${JSON.stringify(doc.version)}`);
  const codec = doc.codec ?? 'msgpack';
  if (codec !== 'msgpack' && codec !== 'arrow') bad(`"codec" must be "msgpack" or "arrow", found ${JSON.stringify(doc.codec)}`);
  if (doc.doc !== undefined && typeof doc.doc !== 'string') bad('"doc" must be a string');
  if (doc.type === undefined) bad('missing "type"');
  if (codec === 'msgpack') checkType(doc.type, 'type', bad);
  else checkColumns(doc.type, bad);
  return doc;
}

const FIELD_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const COLUMNS = new Set(['bool', 'int', 'float', 'string']);

// An arrow schema's type is a column list: a record whose fields are always
// present, each bool, int, float, string, or {nullable: one of those}.
function checkColumns(t, bad) {
  if (!t || typeof t !== 'object' || Object.keys(t).length !== 1 || !Array.isArray(t.record))
    bad('type: an Arrow schema\'s type is a column list {"record": [{"name": ..., "type": ...}, ...]}');
  checkType(t, 'type', bad);
  t.record.forEach((f, i) => {
    if (!COLUMNS.has(f.type?.nullable ?? f.type)) bad(`type.record[${i}].type: expected an Arrow column type: bool, int, float, string, or {"nullable": one of them}`);
    if (f.optional === true) bad(`type.record[${i}].optional: an Arrow column is always present; write {"nullable": T} for missing values`);
  });
}

function checkType(t, at, bad, depth = 0) {
  if (typeof t === 'string') {
    if (!PRIMS.has(t)) bad(`${at}: unknown type ${JSON.stringify(t)} (expected bool, int, float, string, bytes, or {list|map|record|enum|nullable: ...})`);
    return;
  }
  if (!t || typeof t !== 'object' || Array.isArray(t) || Object.keys(t).length !== 1)
    bad(`${at}: expected a type name or an object with exactly one of list, map, record, enum, nullable`);
  const [k, v] = Object.entries(t)[0];
  if (depth >= 32 && k !== 'enum') bad(`${at}.${k}: the type nests more than 32 levels (each list, map, record and nullable counts one)`);
  if (k === 'list' || k === 'map' || k === 'nullable') return checkType(v, `${at}.${k}`, bad, depth + 1);
  if (k === 'enum') {
    if (!Array.isArray(v) || !v.length || v.some((s) => typeof s !== 'string' || !s) || new Set(v).size !== v.length)
      bad(`${at}.enum: expected a non-empty list of distinct non-empty strings`);
    return;
  }
  if (k === 'record') {
    if (!Array.isArray(v)) bad(`${at}.record: expected a list of fields`);
    const seen = new Set();
    v.forEach((f, i) => {
      const fat = `${at}.record[${i}]`;
      if (!f || typeof f !== 'object' || typeof f.name !== 'string' || !FIELD_RE.test(f.name) || f.name === '__proto__')
        bad(`${fat}: expected {"name": ..., "type": ...}, the name a letter or _ then at most 63 letters, digits or _ (not __proto__)`);
      for (const fk of Object.keys(f)) if (!['name', 'type', 'optional'].includes(fk)) bad(`${fat}: unknown key ${JSON.stringify(fk)}`);
      if (seen.has(f.name)) bad(`${fat}: field ${JSON.stringify(f.name)} appears twice`);
      seen.add(f.name);
      if (f.optional !== undefined && typeof f.optional !== 'boolean') bad(`${fat}.optional: expected true or false`);
      checkType(f.type, `${fat}.type`, bad, depth + 1);
    });
    return;
  }
  bad(`${at}: unknown type constructor ${JSON.stringify(k)} (expected list, map, record, enum, nullable)`);
}

// Strings and numbers exactly as the C core writes them (registry/src/json.c),
// so both compute the same digest: control characters as \u00xx, integers
// within ±2^53 in plain digits, other numbers as C's "%.17g".
const canonicalString = (s) => '"' + s.replace(/["\\\u0000-\u001f]/g, (c) =>
  c === '"' || c === '\\' ? '\\' + c : '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) + '"';

function canonicalNumber(x) {
  if (!Number.isFinite(x)) return 'null';
  if (Number.isSafeInteger(x)) return Object.is(x, -0) ? '-0' : String(x);
  const [mant, e] = x.toExponential(16).split('e');
  const exp = Number(e);
  const strip = (t) => t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t;
  if (exp < -4 || exp >= 17) return `${strip(mant)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return strip(x.toFixed(16 - exp));
}

/**
 * Canonical JSON (docs/schemas.md): keys sorted by byte value, no whitespace,
 * byte for byte what the C core writes.
 * @param {any} v
 * @returns {string}
 */
export function canonicalJson(v) {
  if (Array.isArray(v)) return '[' + v.map(canonicalJson).join(',') + ']';
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).sort((a, b) => {
      const x = utf8.encode(a), y = utf8.encode(b);
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    });
    return '{' + keys.map((k) => canonicalString(k) + ':' + canonicalJson(v[k])).join(',') + '}';
  }
  if (typeof v === 'string') return canonicalString(v);
  if (typeof v === 'number') return canonicalNumber(v);
  return JSON.stringify(v);
}

// The two schemas every host knows (schemas/molt.*.v1.json, verbatim).
const BUILTIN_SCHEMAS = [
  { id: 'molt.error', version: 1, codec: 'msgpack', doc: 'A structured error from a unit (docs/abi.md).',
    type: { record: [
      { name: 'class', type: { enum: ['validation', 'runtime', 'cancellation'] } },
      { name: 'code', type: 'int' },
      { name: 'message', type: 'string' },
      { name: 'path', type: 'string', optional: true },
    ] } },
  { id: 'molt.runtime_config', version: 1, codec: 'msgpack', doc: 'What a host tells a unit at molt_init (docs/abi.md).',
    type: { record: [{ name: 'step_budget', type: 'int', optional: true }] } },
];
const schemaKey = (id, version) => `${id}@v${version}`;

/** A float on the wire: the validator wraps floats so ints and floats stay apart. */
export class Float {
  constructor(value) { this.value = value; }
}

const INT64_MIN = -(2n ** 63n), UINT64_MAX = 2n ** 64n - 1n;

function describe(v) {
  if (v === null) return 'nil';
  if (v instanceof NotUtf8) return 'a string that is not UTF-8';
  if (v === undefined) return 'nothing';
  if (v instanceof Float) return `float ${v.value}`;
  if (typeof v === 'boolean') return `bool ${v}`;
  if (typeof v === 'bigint') return `int ${v}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `int ${v}` : `float ${v}`;
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (v instanceof Uint8Array) return `bytes (${v.length})`;
  if (Array.isArray(v)) return `list (${v.length} items)`;
  if (v instanceof Map) return `map (${v.size} keys)`;
  if (typeof v === 'object') return `map (${Object.keys(v).length} keys)`;
  return typeof v;
}

const typeName = (t) => typeof t === 'string' ? t : Object.keys(t)[0] === 'enum' ? `one of ${t.enum.map((s) => JSON.stringify(s)).join(', ')}` : Object.keys(t)[0];
const sub = (path, key) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`;
const isPlain = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Float) &&
  [Object.prototype, null].includes(Object.getPrototypeOf(v));

/**
 * Validates a value against a schema type and converts it for its direction.
 * 'encode': a JS value from the caller → wire form (records as Maps in schema
 * field order, floats as Float, bigints in safe range as numbers).
 * 'decode': a value decoded from the wire → plain JS (records/maps as objects,
 * Float as number, ints as numbers, or bigint beyond 2^53).
 * Throws MoltError(code) with `path`, `expected`, `found`.
 * @param {any} type a schema type
 * @param {any} value
 * @param {{direction?: 'encode'|'decode', code?: string, where?: string}} [opts]
 */
export function validate(type, value, opts = {}) {
  const dir = opts.direction ?? 'encode';
  const code = opts.code ?? (dir === 'encode' ? 'INVALID_INPUT' : 'INVALID_OUTPUT');
  const where = opts.where ? `${opts.where}: ` : '';
  const err = (path, expected, v, extra = '') =>
    fail(code, `${where}at ${path || 'the payload root'}: expected ${expected}, found ${describe(v)}${extra}`, { path, expected, found: describe(v) });

  const walk = (t, v, path) => {
    if (typeof t === 'string') switch (t) {
      case 'bool':
        if (typeof v !== 'boolean') err(path, 'bool', v);
        return v;
      case 'int': {
        if (typeof v === 'number' && Number.isInteger(v)) {
          if (!Number.isSafeInteger(v)) err(path, 'an int within ±2^53 (pass larger ints as BigInt)', v);
          return v;
        }
        if (typeof v === 'bigint') {
          if (v < INT64_MIN || v > UINT64_MAX) err(path, 'a 64-bit int', v);
          return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
        }
        return err(path, 'int', v);
      }
      case 'float':
        if (v instanceof Float) return dir === 'encode' ? v : v.value;
        if (dir === 'encode' && typeof v === 'number') return new Float(v);
        return err(path, 'float', v);
      case 'string':
        if (typeof v !== 'string') err(path, v instanceof NotUtf8 ? 'UTF-8 text' : 'string', v);
        if (v.includes('\0')) err(path, 'a string without NUL', v);
        return v;
      case 'bytes':
        if (!(v instanceof Uint8Array)) err(path, 'bytes (Uint8Array)', v);
        return v;
    }
    const [k, inner] = Object.entries(t)[0];
    if (k === 'nullable') return v === null || v === undefined ? null : walk(inner, v, path);
    if (k === 'enum') {
      if (typeof v === 'string' && v.includes('\0')) err(path, 'a string without NUL', v);
      if (typeof v !== 'string' || !inner.includes(v)) err(path, v instanceof NotUtf8 ? 'UTF-8 text' : typeName(t), v);
      return v;
    }
    if (k === 'list') {
      if (!Array.isArray(v)) err(path, `list of ${typeName(inner)}`, v);
      return v.map((x, i) => walk(inner, x, `${path}[${i}]`));
    }
    const entries = v instanceof Map && dir === 'encode' ? [...v.entries()] : isPlain(v) ? Object.entries(v) : null;
    const badKey = entries && dir === 'decode' ? Object.getOwnPropertySymbols(v)[0] : undefined;
    if (badKey) err(path, badKey.description, v);
    if (k === 'map') {
      if (!entries) err(path, `map of ${typeName(inner)}`, v);
      const out = dir === 'encode' ? new Map() : {};
      for (const [key, x] of entries) {
        if (typeof key !== 'string') err(path, 'map keys that are strings', key);
        const y = walk(inner, x, sub(path, key));
        dir === 'encode' ? out.set(key, y) : (out[key] = y);
      }
      return out;
    }
    // record
    if (!entries) err(path, `a record {${inner.map((f) => f.name).join(', ')}}`, v);
    const got = new Map(entries.filter(([, x]) => !(dir === 'encode' && x === undefined)));
    for (const key of got.keys())
      if (!inner.some((f) => f.name === key))
        fail(code, `${where}at ${sub(path, key)}: unknown field ${JSON.stringify(key)}; the record has ${inner.map((f) => f.name).join(', ') || 'no fields'}`, { path: sub(path, key), expected: 'no such field', found: describe(got.get(key)) });
    const out = dir === 'encode' ? new Map() : {};
    for (const f of inner) {
      if (!got.has(f.name)) {
        if (f.optional) continue;
        fail(code, `${where}at ${sub(path, f.name)}: missing required field ${JSON.stringify(f.name)} (${typeName(f.type)})`, { path: sub(path, f.name), expected: typeName(f.type), found: 'nothing' });
      }
      const y = walk(f.type, got.get(f.name), sub(path, f.name));
      dir === 'encode' ? out.set(f.name, y) : (out[f.name] = y);
    }
    return out;
  };
  return walk(type, value, '');
}

// ---------------------------------------------------------------- msgpack

// The library's encoder, taught two things it lacks: a Map is written in its
// insertion order (records go out in schema field order), and a Float is
// always a float64 even when its value is integral.
class WireEncoder extends Encoder {
  doEncode(v, depth) {
    if (v instanceof Float) return this.encodeNumberAsFloat(v.value);
    if (typeof v === 'bigint') return this.encodeBigInt64(v);
    if (v instanceof Map) {
      const n = v.size;
      if (n < 16) this.writeU8(0x80 + n);
      else if (n < 0x10000) { this.writeU8(0xde); this.writeU16(n); }
      else { this.writeU8(0xdf); this.writeU32(n); }
      for (const [k, x] of v) { this.encodeString(k); this.doEncode(x, depth + 1); }
      return;
    }
    return super.doEncode(v, depth);
  }
}

/** A MsgPack str whose bytes are not UTF-8, as decodeMsgpack returns it; validate refuses it. */
export class NotUtf8 {
  constructor(bytes) { this.bytes = bytes; }
}

const wireText = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const PROTO_KEY = Object.freeze({ key: '__proto__' });
const MAX_NESTING = 32;

// And its decoder, keeping floats tagged so a validator can tell 2.0 from 2,
// and keeping what docs/schemas.md refuses visible to validate, which reports
// it with a path: a str that is not UTF-8 becomes a NotUtf8 (the library
// would turn it into other characters, and drop a leading U+FEFF), and a map
// key that is not a string, is "__proto__", holds NUL or repeats an earlier
// key becomes a symbol key whose description says what a key must be. More
// than 32 nested arrays and maps are refused, as msgpack-c refuses them.
// These override library methods; tests/vectors/schemas catches an upgrade
// that changes them.
class WireDecoder extends Decoder {
  #maps = []; // per open map: [keys still to come, keys seen]
  constructor(opts) {
    super(opts);
    this.mapKeyConverter = (k) => this.#key(k);
  }
  readF32() { return new Float(super.readF32()); }
  readF64() { return new Float(super.readF64()); }
  readHeadByte() {
    const b = super.readHeadByte();
    if (this.stack.length >= MAX_NESTING && ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf)))
      throw new RangeError(`arrays and maps nest more than ${MAX_NESTING} deep`);
    return b;
  }
  decodeUtf8String(n, headerOffset) {
    const at = this.pos + headerOffset, key = this.stateIsMapKey();
    let s = super.decodeUtf8String(n, headerOffset);
    const raw = this.bytes.subarray(at, at + n);
    for (const b of raw) {
      if (b < 0x80) continue;
      try { s = wireText.decode(raw); } catch { return new NotUtf8(raw.slice()); }
      break;
    }
    return key && s === '__proto__' ? PROTO_KEY : s;
  }
  pushMapState(size) {
    super.pushMapState(size);
    this.#maps.push([size, new Set()]);
  }
  #key(k) {
    const top = this.#maps[this.#maps.length - 1];
    if (--top[0] === 0) this.#maps.pop();
    const fault = k instanceof NotUtf8 ? 'map keys in UTF-8 text'
      : typeof k !== 'string' ? 'map keys that are strings, other than "__proto__"'
        : k.includes('\0') ? 'map keys without NUL'
          : top[1].has(k) ? 'map keys that do not repeat' : null;
    if (fault) return Symbol(fault);
    top[1].add(k);
    return k;
  }
}

/** MsgPack-encodes a wire-form value (see validate). */
export const encodeMsgpack = (v) => new WireEncoder().encode(v);

/**
 * MsgPack-decodes bytes, tagging floats as Float; throws if the bytes are not
 * exactly one value nested at most 32 deep. What validate must refuse (bad
 * text, bad map keys) is kept for it to report with a path (see WireDecoder).
 */
export function decodeMsgpack(bytes) {
  return new WireDecoder({ useBigInt64: true }).decode(bytes);
}

/**
 * Builds an envelope `[schema_id, schema_version, payload_bin]`.
 * @returns {Uint8Array}
 */
export function encodeEnvelope(schemaId, schemaVersion, payload) {
  return encodeMsgpack([schemaId, schemaVersion, payload]);
}

/**
 * Decodes an envelope; throws MoltError('ENVELOPE_INVALID') on a malformed one.
 * @returns {{schemaId: string, schemaVersion: number, payload: Uint8Array}}
 */
export function decodeEnvelope(bytes, where = 'envelope') {
  let e;
  try { e = decodeMsgpack(bytes); } catch (err) {
    fail('ENVELOPE_INVALID', `${where}: not MsgPack (${err.message})`);
  }
  if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || !Number.isInteger(e[1]) || !(e[2] instanceof Uint8Array))
    fail('ENVELOPE_INVALID', `${where}: expected [schema_id: str, schema_version: uint, payload: bin], found ${describe(e)}`);
  return { schemaId: e[0], schemaVersion: e[1], payload: e[2] };
}

// ---------------------------------------------------------------- arrow

// Arrow IPC streams (docs/arrow.md), read only as far as a cheap check needs:
// the framing of every message, the Schema message's fields (name, type,
// nullable) and each RecordBatch's length and per-column null counts. Values
// are not read: a unit checks its input fully, and the columns of a result
// are the caller's to read (apache-arrow or any Arrow reader).

const ARROW_TYPES = ['NONE', 'Null', 'Int', 'FloatingPoint', 'Binary', 'Utf8', 'Bool', 'Decimal', 'Date', 'Time', 'Timestamp',
  'Interval', 'List', 'Struct', 'Union', 'FixedSizeBinary', 'FixedSizeList', 'Map', 'Duration', 'LargeBinary', 'LargeUtf8',
  'LargeList', 'RunEndEncoded', 'BinaryView', 'Utf8View', 'ListView', 'LargeListView'];
const FLOAT_PRECISION = ['HALF', 'SINGLE', 'DOUBLE'];

// A bounds-checked FlatBuffers table reader over one message's metadata.
class FlatBuf {
  constructor(bytes, where) {
    this.b = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.where = where;
  }

  bad(what) { throw new RangeError(`${this.where}: ${what}`); }
  u32(at) { if (at < 0 || at + 4 > this.b.length) this.bad(`offset ${at} is outside the ${this.b.length}-byte metadata`); return this.dv.getUint32(at, true); }
  i32(at) { this.u32(at); return this.dv.getInt32(at, true); }
  u16(at) { if (at < 0 || at + 2 > this.b.length) this.bad(`offset ${at} is outside the ${this.b.length}-byte metadata`); return this.dv.getUint16(at, true); }
  root() { return this.table(this.u32(0)); }

  // The table at `t`: field(i) gives the position of field i, or 0 when absent.
  table(t) {
    const vt = t - this.i32(t);
    const vsize = this.u16(vt);
    if (vsize < 4 || vsize & 1) this.bad(`vtable at ${vt} has size ${vsize}`);
    this.u16(vt + vsize - 2);
    const tsize = this.u16(vt + 2);
    if (t + tsize > this.b.length) this.bad(`table at ${t} runs past the metadata`);
    return {
      field: (i) => {
        if (4 + 2 * i >= vsize) return 0;
        const o = this.u16(vt + 4 + 2 * i);
        if (o && o >= tsize) this.bad(`field ${i} of the table at ${t} is outside it`);
        return o ? t + o : 0;
      },
    };
  }

  ref(at) { return at + this.u32(at); }
  scalar(tbl, i, size, dflt) {
    const at = tbl.field(i);
    if (!at) return dflt;
    if (at + size > this.b.length) this.bad(`a field at ${at} runs past the metadata`);
    return size === 1 ? this.b[at] : size === 2 ? this.dv.getInt16(at, true) : size === 4 ? this.dv.getInt32(at, true) : this.dv.getBigInt64(at, true);
  }

  // [position of the first element, count] of the vector field i, elements `size` bytes each.
  vector(tbl, i, size) {
    const at = tbl.field(i);
    if (!at) return [0, 0];
    const v = this.ref(at), n = this.u32(v);
    if (v + 4 + n * size > this.b.length) this.bad(`a vector of ${n} elements at ${v} runs past the metadata`);
    return [v + 4, n];
  }

  string(tbl, i) {
    const at = tbl.field(i);
    if (!at) return null;
    const v = this.ref(at), n = this.u32(v);
    if (v + 4 + n > this.b.length) this.bad(`a string of ${n} bytes at ${v} runs past the metadata`);
    return utf8d.decode(this.b.subarray(v + 4, v + 4 + n));
  }
}

// The type of a Field table: a name for people, and what schema column type it matches.
function arrowFieldType(fb, field) {
  const tt = fb.scalar(field, 2, 1, 0);
  const name = ARROW_TYPES[tt] ?? `type #${tt}`;
  const at = field.field(3);
  const t = at ? fb.table(fb.ref(at)) : null;
  if (tt === 2 && t) {
    const bits = fb.scalar(t, 0, 4, 0), signed = fb.scalar(t, 1, 1, 0) !== 0;
    return { text: `Int(${bits}, ${signed ? 'signed' : 'unsigned'})`, column: signed && (bits === 32 || bits === 64) ? 'int' : null };
  }
  if (tt === 3 && t) {
    const p = fb.scalar(t, 0, 2, 0);
    return { text: `FloatingPoint(${FLOAT_PRECISION[p] ?? p})`, column: p === 2 ? 'float' : null };
  }
  if (tt === 5) return { text: 'Utf8', column: 'string' };
  if (tt === 6) return { text: 'Bool', column: 'bool' };
  return { text: name, column: null };
}

const ARROW_WANT = { int: 'int (Arrow Int(32 or 64, signed))', float: 'float (Arrow FloatingPoint(DOUBLE))', bool: 'bool (Arrow Bool)', string: 'string (Arrow Utf8)' };

/**
 * Checks that `bytes` are an Arrow IPC stream carrying the columns of an
 * arrow-codec schema (docs/schemas.md, docs/arrow.md): complete framing with
 * the end-of-stream marker, one Schema message first with the schema's column
 * names and types in order, record batches with one node per column and no
 * nulls in a column the schema does not make nullable. A stream's own
 * nullable flags are not compared (writers differ; values are). Throws
 * MoltError(code) naming the column, what was expected and what was found.
 * @param {Uint8Array} bytes
 * @param {object} schema a schema document of codec arrow
 * @param {string} [where] names the payload in messages
 * @param {string} [code] the MoltError code (INVALID_INPUT or INVALID_OUTPUT)
 * @returns {{columns: Array<{name: string, type: string, nullable: boolean}>, batches: number, rows: number}}
 */
export function checkArrowStream(bytes, schema, where = 'Arrow stream', code = 'INVALID_OUTPUT') {
  const cols = schema.type.record.map((f) => ({ name: f.name, type: f.type?.nullable ?? f.type, nullable: f.type?.nullable !== undefined }));
  const bad = (msg, extra = {}) => fail(code, `${where}: ${msg}`, extra);
  bytes = asBytes(bytes);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0, batches = 0, rows = 0, sawSchema = false;
  for (let msg = 0; ; msg++) {
    if (pos + 8 > bytes.length)
      bad(`message ${msg}, byte ${pos}: the stream ends without the end-of-stream marker (0xFFFFFFFF 0x00000000); expected a complete Arrow IPC stream`);
    if (dv.getUint32(pos, true) !== 0xffffffff)
      bad(`message ${msg}, byte ${pos}: expected the continuation marker 0xFFFFFFFF, found 0x${dv.getUint32(pos, true).toString(16).padStart(8, '0')} (not an Arrow IPC stream, or the pre-1.0 format)`);
    const len = dv.getInt32(pos + 4, true);
    if (len === 0) {
      if (!sawSchema) bad('the stream has no schema message; expected one first');
      if (pos + 8 !== bytes.length) bad(`byte ${pos + 8}: ${bytes.length - pos - 8} bytes follow the end-of-stream marker; expected none`);
      return { columns: cols, batches, rows };
    }
    if (len < 0 || pos + 8 + len > bytes.length)
      bad(`message ${msg}, byte ${pos + 4}: metadata length ${len} runs past the end of the stream (${bytes.length - pos - 8} bytes left)`);
    const fb = new FlatBuf(bytes.subarray(pos + 8, pos + 8 + len), `message ${msg}, byte ${pos + 8}`);
    let body;
    try {
      const m = fb.root();
      const version = fb.scalar(m, 0, 2, 0), ht = fb.scalar(m, 1, 1, 0), hat = m.field(2);
      body = fb.scalar(m, 3, 8, 0n);
      if (version < 3) bad(`message ${msg}: metadata version V${version + 1} is not supported; expected V4 or V5`);
      if (!hat) bad(`message ${msg}: the message has no header`);
      const h = fb.table(fb.ref(hat));
      if (!sawSchema) {
        if (ht !== 1) bad(`message ${msg}: expected the Schema message first, found header type ${ht}`);
        if (fb.scalar(h, 0, 2, 0) !== 0) bad('the stream is big-endian; expected little-endian');
        const [v, n] = fb.vector(h, 1, 4);
        if (n !== cols.length)
          bad(`the stream has ${n} column(s) (${Array.from({ length: n }, (_, i) => JSON.stringify(fb.string(fb.table(fb.ref(v + 4 * i)), 0))).join(', ')}), expected ${cols.length}: ${cols.map((c) => JSON.stringify(c.name)).join(', ')} (schema ${schema.id} v${schema.version})`,
            { expected: cols.length, found: n });
        for (let i = 0; i < n; i++) {
          const f = fb.table(fb.ref(v + 4 * i)), c = cols[i];
          const name = fb.string(f, 0) ?? '';
          const t = arrowFieldType(fb, f);
          if (name !== c.name)
            bad(`column ${i}: expected the name ${JSON.stringify(c.name)}, found ${JSON.stringify(name)} (columns match by position; schema ${schema.id} v${schema.version})`, { path: c.name, expected: c.name, found: name });
          if (t.column !== c.type)
            bad(`column ${i} ${JSON.stringify(c.name)}: expected ${ARROW_WANT[c.type]}, found ${t.text}`, { path: c.name, expected: ARROW_WANT[c.type], found: t.text });
          if (f.field(4)) bad(`column ${i} ${JSON.stringify(c.name)}: dictionary encoding is not supported; expected plain ${t.text}`, { path: c.name });
        }
        sawSchema = true;
      } else if (ht === 3) {
        const length = fb.scalar(h, 0, 8, 0n);
        const [v, n] = fb.vector(h, 1, 16);
        if (n !== cols.length) bad(`message ${msg} (record batch ${batches}): ${n} field nodes, expected one per column (${cols.length})`);
        if (h.field(3)) bad(`message ${msg} (record batch ${batches}): body compression is not supported`);
        for (let i = 0; i < n; i++) {
          const nodeLen = fb.dv.getBigInt64(v + 16 * i, true), nulls = fb.dv.getBigInt64(v + 16 * i + 8, true);
          if (nodeLen !== length) bad(`message ${msg} (record batch ${batches}), column ${i} ${JSON.stringify(cols[i].name)}: ${nodeLen} values, expected the batch's ${length}`);
          if (nulls < 0n || nulls > length) bad(`message ${msg} (record batch ${batches}), column ${i} ${JSON.stringify(cols[i].name)}: null count ${nulls} for ${length} rows`);
          if (nulls > 0n && !cols[i].nullable)
            bad(`message ${msg} (record batch ${batches}), column ${i} ${JSON.stringify(cols[i].name)}: expected no nulls (the column is not nullable in ${schema.id} v${schema.version}), found ${nulls}`,
              { path: cols[i].name, expected: 'no nulls', found: `${nulls} nulls` });
        }
        batches++;
        rows += Number(length);
      } else if (ht === 1) {
        bad(`message ${msg}: a second Schema message; expected exactly one, first`);
      } else {
        bad(`message ${msg}: header type ${ht === 2 ? 'DictionaryBatch (dictionary encoding)' : ht} is not supported; expected RecordBatch`);
      }
    } catch (e) {
      if (e instanceof MoltError) throw e;
      bad(e instanceof RangeError ? e.message : `message ${msg}: ${e.message}`);
    }
    if (body < 0n || BigInt(pos + 8 + len) + body > BigInt(bytes.length))
      bad(`message ${msg}: body length ${body} runs past the end of the stream (${bytes.length - pos - 8 - len} bytes left)`);
    pos += 8 + len + Number(body);
  }
}

// ---------------------------------------------------------------- cache

// Verified artifacts by digest. Bytes go to a cache object (Cache Storage,
// IndexedDB, memory or a directory) and are hashed again when read back;
// compiled modules stay in this realm's memory, keyed by the digest of the
// bytes they were compiled from (verified before compiling).
const modules = new Map();
const CACHE_NAME = 'molt-units-v1';
const cacheKey = (digest) => `https://molt-cache.invalid/${digest.replace(':', '/')}`;

/**
 * A byte cache in memory (a Map), for Node and pages without storage.
 * @returns {{kind: string, get(digest: string): Promise<Uint8Array|undefined>, put(digest: string, bytes: Uint8Array): Promise<void>, delete(digest: string): Promise<void>}}
 */
export function memoryCache() {
  const m = new Map();
  return {
    kind: 'memory',
    async get(d) { return m.get(d); },
    async put(d, b) { m.set(d, b.slice()); },
    async delete(d) { m.delete(d); },
  };
}

/**
 * A byte cache in the browser's Cache Storage (secure contexts only), keyed
 * by a synthetic URL per digest, shared by every registry of the origin.
 * @param {string} [name] the cache's name
 */
export function cacheStorageCache(name = CACHE_NAME) {
  let early = null;
  const open = () => { const c = early; early = null; return c ?? globalThis.caches.open(name); };
  return {
    kind: 'cache-storage',
    // Opening the cache costs a few ms in a fresh page: loadUnit starts it
    // with the first fetches, so the artifact's lookup does not wait for it.
    prepare() { early ??= globalThis.caches.open(name); early.catch(() => {}); },
    async get(d) {
      const r = await (await open()).match(cacheKey(d));
      return r ? new Uint8Array(await r.arrayBuffer()) : undefined;
    },
    async put(d, b) {
      await (await open()).put(cacheKey(d), new Response(b, { headers: { 'content-type': 'application/wasm', 'content-length': String(b.byteLength) } }));
    },
    async delete(d) { await (await open()).delete(cacheKey(d)); },
  };
}

/**
 * A byte cache in IndexedDB (database `name`, store "blobs", key the digest).
 * @param {string} [name]
 */
export function indexedDbCache(name = CACHE_NAME) {
  let db;
  const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const store = async (mode) => {
    db ??= new Promise((res, rej) => {
      const r = globalThis.indexedDB.open(name, 1);
      r.onupgradeneeded = () => r.result.createObjectStore('blobs');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    return (await db).transaction('blobs', mode).objectStore('blobs');
  };
  return {
    kind: 'indexeddb',
    async get(d) { const v = await req((await store('readonly')).get(d)); return v ? new Uint8Array(v) : undefined; },
    async put(d, b) { await req((await store('readwrite')).put(b.slice().buffer, d)); },
    async delete(d) { await req((await store('readwrite')).delete(d)); },
  };
}

/**
 * A byte cache in a directory (Node): DIR/sha256/<hex>, written to a
 * temporary name then renamed, so a reader never sees half a file.
 * @param {string} dir
 */
export function directoryCache(dir) {
  const fs = import('node:fs/promises');
  const path = (d) => `${dir}/sha256/${d.slice(7)}`;
  return {
    kind: 'directory',
    async get(d) {
      try { return new Uint8Array(await (await fs).readFile(path(d))); } catch (e) {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      }
    },
    async put(d, b) {
      const f = await fs, p = path(d), tmp = `${p}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`;
      await f.mkdir(`${dir}/sha256`, { recursive: true });
      await f.writeFile(tmp, b);
      await f.rename(tmp, p);
    },
    async delete(d) { await (await fs).rm(path(d), { force: true }); },
  };
}

let defaultCache;
// Cache Storage where the page may use it, else IndexedDB, else memory.
function pickDefaultCache() {
  if (defaultCache) return defaultCache;
  if (globalThis.caches && globalThis.isSecureContext !== false) defaultCache = cacheStorageCache();
  else if (globalThis.indexedDB) defaultCache = indexedDbCache();
  else defaultCache = memoryCache();
  return defaultCache;
}

/** The byte cache for a load: false, the given object, a directory, or the default. */
function bytesCache(cache, cacheDir) {
  if (cache === false) return null;
  if (cache && typeof cache === 'object') {
    want(typeof cache.get === 'function' && typeof cache.put === 'function', 'OPTIONS_INVALID', 'cache must be false or an object with get(digest) and put(digest, bytes) (and optionally delete(digest))');
    return cache;
  }
  want(cache === undefined || cache === true, 'OPTIONS_INVALID', `cache must be false, true or a cache object, found ${JSON.stringify(cache)}`);
  if (cacheDir !== undefined) {
    want(typeof cacheDir === 'string' && cacheDir !== '', 'OPTIONS_INVALID', `cacheDir must be a directory path, found ${JSON.stringify(cacheDir)}`);
    return directoryCache(cacheDir);
  }
  return pickDefaultCache();
}

/** Forgets every compiled module kept in memory (the next load of each unit compiles again). */
export function clearModuleCache() { modules.clear(); }

// ---------------------------------------------------------------- registry

/**
 * Opens a registry: records where it is and which keys to trust. Nothing is
 * fetched until loadUnit.
 * @param {object} opts
 * @param {string|URL} opts.url base URL of the registry (a folder of static files)
 * @param {string[]} [opts.trustedKeys] texts of minisign .pub files (each may sign anything; threshold 1)
 * @param {object} [opts.policy] a trust policy (keys/policy.json format, docs/security.md) whose
 *   keys carry `publicKey`: the .pub text (molt-node.mjs loadPolicy fills it); replaces trustedKeys
 * @param {Array<string|URL>} [opts.mirrors] other base URLs of the same registry, tried in order; verified alike
 * @param {{get(url: string): any, set(url: string, v: any): void}} [opts.store] remembers the highest
 *   snapshot version seen per registry URL (rollback defence); default: in memory
 * @param {typeof fetch} [opts.fetch] fetch to use (e.g. one that reads files)
 * @param {false|object} [opts.cache] default cache for loadUnit (see there)
 * @param {string} [opts.cacheDir] default cache directory for loadUnit (Node)
 */
export function openRegistry({ url, trustedKeys, policy, mirrors = [], store, fetch, cache, cacheDir }) {
  if (!policy && (!Array.isArray(trustedKeys) || trustedKeys.length === 0))
    fail('KEY_INVALID', 'openRegistry: no trusted keys given; pass the text of at least one minisign .pub file, or a trust policy');
  const baseOf = (u) => { const b = new URL(String(u), globalThis.location?.href); if (!b.pathname.endsWith('/')) b.pathname += '/'; return b.href; };
  const base = baseOf(url);
  const pol = policy ? checkPolicy(policy) : {
    keys: trustedKeys.map((t) => ({ ...parsePublicKey(t), names: ['*'], snapshot: true })),
    thresholds: {}, snapshotThreshold: 1 };
  if (!store) { const mem = new Map(); store = { get: (k) => mem.get(k), set: (k, v) => { mem.set(k, v); } }; }
  bytesCache(cache, cacheDir); // checks the options now
  return { url: base, sources: [base, ...mirrors.map(baseOf)], keys: pol.keys, policy: pol, store, fetch, cache, cacheDir, snapshotVersion: 0 };
}

const globMatch = (pat, s) => new RegExp('^' + pat.replace(/[.+^${}()|[\]\\-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$').test(s);
const UTC_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/** Checks a trust policy object and returns it in the form loadUnit uses. */
export function checkPolicy(p) {
  const bad = (m) => fail('POLICY_INVALID', `trust policy: ${m}`);
  if (p?.format !== 1) bad(`expected "format": 1, found ${JSON.stringify(p?.format)}`);
  if (!Array.isArray(p.keys) || !p.keys.length) bad('"keys" must be a non-empty list');
  const keys = p.keys.map((k, i) => {
    const pk = parsePublicKey(k.publicKey ?? '');
    if (pk.keyIdHex !== k.id) bad(`keys[${i}]: id is ${JSON.stringify(k.id)}, but its public key is ${pk.keyIdHex}`);
    if (k.expires !== undefined && !(typeof k.expires === 'string' && UTC_RE.test(k.expires))) bad(`keys[${i}]: "expires" must be a UTC time like 2027-01-31T00:00:00Z`);
    return { ...pk, names: k.names ?? [], expires: k.expires, expiresAt: k.expires ? Date.parse(k.expires) : Infinity,
      revoked: k.revoked === true, snapshot: (p.snapshot?.keys ?? []).includes(k.id) };
  });
  for (const id of p.snapshot?.keys ?? []) if (!keys.some((k) => k.keyIdHex === id)) bad(`snapshot key ${id} is not listed under "keys"`);
  if (!keys.some((k) => k.snapshot)) bad('"snapshot": {"keys": [...]} must name the keys that sign the snapshot');
  const thresholds = p.thresholds ?? {};
  for (const [pat, t] of Object.entries(thresholds)) if (!Number.isInteger(t) || t < 1 || t > keys.length) bad(`threshold for ${JSON.stringify(pat)} must be an integer from 1 to ${keys.length}`);
  const st = p.snapshot.threshold ?? 1;
  if (!Number.isInteger(st) || st < 1) bad('"snapshot"."threshold" must be an integer ≥ 1');
  return { keys, thresholds, snapshotThreshold: st };
}

/**
 * Counts the signatures over `data` by distinct policy keys allowed for `name`
 * (null: the snapshot), not revoked, not expired at `at`, with `comment`;
 * fails with THRESHOLD unless the threshold is met. Each KEY counts once.
 */
async function policyVerify(pol, name, data, sigs, comment, at) {
  const need = name === null ? pol.snapshotThreshold
    : Math.max(1, ...Object.entries(pol.thresholds).filter(([p]) => globMatch(p, name)).map(([, t]) => t));
  const counted = new Set(), why = [];
  let first;
  for (const { bytes, url } of sigs) {
    let r;
    try { r = await verifySignature(data, bytes, pol.keys, url); } catch (e) { first ??= e; why.push(e.message); continue; }
    const k = pol.keys.find((x) => x.keyIdHex === r.keyIdHex);
    if (r.trustedComment !== comment) { first ??= new MoltError('TRUSTED_COMMENT_MISMATCH', `${url}: trusted comment is ${JSON.stringify(r.trustedComment)}, expected ${JSON.stringify(comment)}: the signed file is not the one asked for (wrong, substituted or mixed-up metadata). Do not use it.`); why.push(first.message); }
    else if (k.revoked) why.push(`${url}: key ${k.keyIdHex} is revoked by the trust policy`);
    else if (k.expiresAt <= at) why.push(`${url}: key ${k.keyIdHex} expired at ${k.expires} (trust policy)`);
    else if (name === null ? !k.snapshot : !k.names.some((p) => globMatch(p, name))) why.push(`${url}: key ${k.keyIdHex} may not sign ${name ?? 'the snapshot'} under the trust policy`);
    else if (counted.has(k.keyIdHex)) why.push(`${url}: another signature by key ${k.keyIdHex}, already counted (each key counts once)`);
    else counted.add(k.keyIdHex);
  }
  if (counted.size >= need) return [...counted];
  if (need === 1 && sigs.length === 1 && first) throw first;
  fail('THRESHOLD', `${name ?? 'the snapshot'} needs signatures by ${need} distinct trusted key(s); found ${counted.size} (${[...counted].join(', ') || 'none'}) among ${sigs.length} signature(s)${why.map((w) => '; ' + w).join('')}`,
    { expected: need, found: counted.size });
}

function parseJson(bytes, where) {
  try { return JSON.parse(utf8d.decode(bytes)); } catch (e) {
    fail('METADATA_INVALID', `${where}: expected JSON, ${e.message}. The registry is damaged: run molt verify on it.`);
  }
}

const want = (ok, code, msg, details) => { if (!ok) fail(code, msg, details); };
const sizeOk = (n, cap, what) => want(Number.isSafeInteger(n) && n >= 0 && n <= cap, 'METADATA_INVALID',
  `${what}: expected a size between 0 and ${cap} bytes, found ${JSON.stringify(n)}`);

/**
 * Step 5 of docs/registry.md, shared by loadUnit and instantiateLocal: the
 * manifest is the unit asked for, in a format and ABI this host reads.
 */
function checkManifest(manifest, { name, version, target }, where, lim, unitName, signed) {
  want(manifest?.format === 1, 'FORMAT_UNSUPPORTED', `${where}: expected manifest format 1, found ${JSON.stringify(manifest?.format)}`);
  for (const [k, v] of [['name', name], ['version', version], ['target', target]])
    want(manifest[k] === v, 'WRONG_UNIT', `${where}: manifest ${k} is ${JSON.stringify(manifest[k])}, expected ${JSON.stringify(v)}: ${signed ? 'validly signed, but not the unit asked for. Do not use it.' : `pass the manifest of the ${target} build.`}`);
  want(manifest.abi_version === ABI_STRING, 'ABI_MISMATCH', `${where}: ${unitName} needs ABI ${JSON.stringify(manifest.abi_version)}; this host speaks ABI "${ABI_STRING}". Use a unit built for ABI ${ABI_STRING} or a newer host.`);
  const art = manifest.artifact ?? {};
  want(target !== 'wasm32-wasi' || art.media_type === 'application/wasm', 'METADATA_INVALID', `${where}: artifact media_type is ${JSON.stringify(art.media_type)}, expected "application/wasm"`);
  sizeOk(art.size, lim.artifact, `${where}: artifact.size`);
  want(Array.isArray(manifest.functions) && Array.isArray(manifest.schemas), 'METADATA_INVALID', `${where}: "functions" and "schemas" must be lists`);
}

/**
 * Checks the schema documents a manifest lists, once their digests are
 * checked, and maps each function to its input and output documents.
 * @param {Array<{doc: any, url: string}>} docs one per manifest.schemas entry, in its order
 * @returns {Promise<Map<string, {id: number, name: string, input: object, output: object}>>}
 */
async function unitFunctions(manifest, docs, where) {
  const schemas = new Map();
  for (const b of BUILTIN_SCHEMAS) schemas.set(schemaKey(b.id, b.version), b);
  for (const [i, s] of manifest.schemas.entries()) {
    const key = schemaKey(s.id, s.version);
    const doc = checkSchema(docs[i].doc, docs[i].url);
    want(doc.id === s.id && doc.version === s.version, 'SCHEMA_INVALID', `${docs[i].url}: manifest lists it as ${key}, but it is ${schemaKey(doc.id, doc.version)}`);
    const builtin = BUILTIN_SCHEMAS.find((b) => b.id === s.id && b.version === s.version);
    if (builtin) {
      const d = await sha256(canonicalJson(builtin));
      want(d === s.digest, 'SCHEMA_MISMATCH', `${where}: ${key} has digest ${s.digest}; this host knows ${key} as ${d}. Host and unit disagree on a core schema: rebuild the unit against this host's schemas/.`);
    }
    schemas.set(key, doc);
  }
  const functions = new Map();
  for (const f of manifest.functions) {
    want(f && typeof f.name === 'string' && Number.isInteger(f.id) && f.id >= 0 && f.id <= 0xffffffff, 'METADATA_INVALID', `${where}: each function needs a "name" and a u32 "id", found ${JSON.stringify(f)}`);
    for (const dir of ['input', 'output']) {
      const key = schemaKey(f[dir]?.id, f[dir]?.version);
      want(schemas.has(key), 'METADATA_INVALID', `${where}: function ${f.name} names ${dir} schema ${key}, which the manifest does not list under "schemas"`);
    }
    functions.set(f.name, { id: f.id, name: f.name, input: schemas.get(schemaKey(f.input.id, f.input.version)), output: schemas.get(schemaKey(f.output.id, f.output.version)) });
  }
  return functions;
}

/**
 * What every load does once the unit's files are checked, shared by loadUnit
 * and instantiateLocal: compile (unless `module` is given: compiled before
 * from the same verified bytes), check it imports nothing, then instantiate
 * and initialise it, in `engine` (a Worker started early) or on this thread.
 * Fills m.compileMs and m.initMs.
 */
async function startUnit(bytes, { module, engine, name, version, target, manifest, manifestDigest, signedBy, functions, run, metrics: m, progress, unitName }) {
  progress({ stage: 'compile' });
  let t = now();
  if (!module) {
    try { module = await WebAssembly.compile(bytes); } catch (e) {
      fail('COMPILE_FAILED', `artifact ${manifest.artifact.digest} of ${unitName} is ${signedBy ? 'signed' : 'listed in its manifest'} but is not valid wasm: ${e.message}. ${signedBy ? 'Report it to the publisher.' : 'Rebuild it.'}`);
    }
  }
  const imports = WebAssembly.Module.imports(module);
  want(imports.length === 0, 'IMPORTS_REFUSED', `${unitName} imports ${imports.map((i) => `${i.module}.${i.name}`).join(', ')}; this host provides no imports. Rebuild the unit without them (mrecipe refuses such units).`);
  m.compileMs = now() - t;
  progress({ stage: 'init' });
  t = now();
  const budget = run.stepBudget;
  const opts = {
    run, unitName, short: `${name}@${version}`,
    config: encodeEnvelope('molt.runtime_config', 1, encodeMsgpack(validate(BUILTIN_SCHEMAS[1].type, budget === undefined ? {} : { step_budget: budget }))),
  };
  if (engine) await engine.init(module, opts);
  else {
    engine = new Engine(module, opts);
    await engine.init();
  }
  m.initMs = now() - t;
  return { module, unit: new Unit({ name, version, target, manifest, manifestDigest, signedBy, functions, run, metrics: m, engine, worker: engine instanceof WorkerEngine }) };
}

// The Worker for instantiateLocal, started before the checks (so its script
// loads meanwhile), or null to run on this thread.
function earlyWorker(worker, workerUrl) {
  return useWorker(worker) ? new WorkerEngine(workerUrl ?? import.meta.url) : null;
}

// Whether a load runs its unit in a Worker (checks the option).
function useWorker(worker) {
  want(worker === undefined || typeof worker === 'boolean', 'OPTIONS_INVALID', `worker must be true or false, found ${JSON.stringify(worker)}`);
  if (!(worker ?? workerByDefault())) return false;
  want(typeof Worker === 'function', 'OPTIONS_INVALID', 'worker: true, but this runtime has no Worker (Node runs units on the calling thread); pass worker: false');
  return true;
}

/**
 * Fetches, verifies, compiles and initialises one unit, following the client
 * check order of docs/registry.md. Throws MoltError on the first failed check.
 * @param {ReturnType<typeof openRegistry>} registry
 * @param {object} req
 * @param {string} req.name
 * @param {string} req.version exact version
 * @param {string} [req.target] 'wasm32-wasi'
 * @param {(p: {stage: string, loaded?: number, total?: number|null, url?: string}) => void} [req.onProgress]
 *   stages: snapshot, index, signature, manifest, depends (one per dependency the manifest names,
 *   which is never fetched), schemas, artifact (with bytes), then compile, init, ready
 * @param {number} [req.stepBudget] step_budget for molt.runtime_config (work units per poll)
 * @param {number} [req.timeoutMs] default wall-clock limit of a call (RUN_LIMITS)
 * @param {number} [req.maxOutput] default largest result envelope, bytes (RUN_LIMITS)
 * @param {number} [req.maxMemory] ceiling on the unit's wasm memory, bytes (RUN_LIMITS)
 * @param {Partial<typeof LIMITS>} [req.limits] download caps
 * @param {boolean} [req.allowYanked] accept a yanked entry (e.g. pinned by a lockfile)
 * @param {boolean} [req.worker] run the unit in its own dedicated module Worker (default: true in
 *   browser pages, false in Node and inside workers)
 * @param {string|URL} [req.workerUrl] the Worker's module script (default: this file, molt.js)
 * @param {false|object} [req.cache] false: no cache; or a byte cache {get, put, delete?, prepare?} by digest (prepare(), when given, is called as the first files are requested, e.g. to open the store)
 *   (default: the registry's, else Cache Storage, IndexedDB or memory, whichever the runtime has).
 *   Compiled modules are also kept in memory by digest unless cache is false.
 * @param {string} [req.cacheDir] (Node) keep verified bytes in this directory
 * @returns {Promise<Unit>}
 */
export async function loadUnit(registry, req) {
  // The Worker is started by load() right after the first files are
  // requested, so its script loads while they come; options checked now.
  const worker = useWorker(req?.worker);
  let engine = null;
  const startEngine = () => (engine ??= worker ? new WorkerEngine(req?.workerUrl ?? import.meta.url) : null);
  try {
    return await load(registry, req, startEngine, worker);
  } catch (e) {
    engine?.close('the load failed');
    throw e;
  }
}

async function load(registry, { name, version, target = 'wasm32-wasi', onProgress, stepBudget, timeoutMs, maxOutput, maxMemory, limits = {}, allowYanked = false,
  cache = registry.cache, cacheDir = registry.cacheDir }, startEngine, worker) {
  const run = runOptions({ stepBudget, timeoutMs, maxOutput, maxMemory });
  const store = bytesCache(cache, cacheDir);
  const lim = { ...LIMITS, ...limits };
  const t0 = now();
  const startedAt = Date.now(); // expiry is judged against one time fixed at the start
  const m = { bytesFetched: 0, fetchMs: 0, verifyMs: 0, compileMs: 0, initMs: 0, totalMs: 0, artifactBytes: 0, cached: false, cacheRefused: null, worker };
  const unitName = `${name}@${version} (${target})`;
  const progress = (p) => onProgress?.(p);

  let inFlight = 0, since = 0; // fetchMs is wall time with at least one fetch running
  const sources = registry.sources ?? [registry.url];
  // o.sink receives the progress events (default: onProgress).
  const getFrom = async (src, rel, stage, what, { sink = progress, ...o } = {}) => {
    const url = new URL(rel, src).href;
    if (inFlight++ === 0) since = now();
    try {
      const bytes = await fetchBytes(url, { ...o, what, fetch: registry.fetch,
        onProgress: (p) => sink({ stage, ...p }) });
      m.bytesFetched += bytes.byteLength;
      return { url, bytes };
    } finally {
      if (--inFlight === 0) m.fetchMs += now() - since;
    }
  };
  // Each source in turn until one gives bytes that pass `check`: a mirror's
  // bytes are verified exactly as the registry's are.
  const anySource = async (f) => {
    const errs = [];
    for (const src of sources) {
      try { return await f(src); } catch (e) { if (!(e instanceof MoltError) || sources.length === 1) throw e; errs.push(e); }
    }
    const v = errs.find((e) => e.code !== 'FETCH_FAILED') ?? errs[0];
    fail(v.code, `every source failed: ${errs.map((e) => e.message).join('; ')}`, { url: v.url, expected: v.expected, found: v.found });
  };
  const get = (rel, stage, what, o = {}, check) => anySource(async (src) => {
    const r = await getFrom(src, rel, stage, what, o);
    if (check) await check(r);
    return r;
  });
  const timed = async (f) => { const t = now(); try { return await f(); } finally { m.verifyMs += now() - t; } };
  const checkDigest = (bytes, expected, what, url, from) => timed(async () => {
    const found = await sha256(bytes);
    want(found === expected, 'DIGEST_MISMATCH', `${what} at ${url}: expected digest ${expected} (from ${from}), found ${found}. The file was altered or corrupted: do not use it; re-fetch it, or repair the registry (molt verify).`, { url, expected, found });
  });
  const blobPath = (digest, what) => {
    want(typeof digest === 'string' && DIGEST_RE.test(digest), 'METADATA_INVALID', `${what}: expected a digest "sha256:<64 lowercase hex>", found ${JSON.stringify(digest)}`);
    return `blobs/sha256/${digest.slice(7)}`;
  };

  // 1. snapshot.json, signed by the policy's snapshot keys (threshold), known
  // format, not expired, no rollback or fast-forward past what was seen.
  progress({ stage: 'snapshot' });
  const seenRec = await registry.store.get(registry.url);
  const snapKeys = registry.policy.keys.filter((k) => k.snapshot).map((k) => k.keyIdHex).sort().join(',');
  // A change of snapshot keys (rotation after a compromise) resets the memory, as TUF does.
  const seen = Math.max(registry.snapshotVersion, seenRec?.snapshotKeys === snapKeys ? seenRec.version : 0);
  const snapP = anySource(async (src) => {
    const [snap, snapSig] = await Promise.all([
      getFrom(src, 'snapshot.json', 'snapshot', 'snapshot.json', { maxSize: lim.snapshot }),
      getFrom(src, 'snapshot.json.minisig', 'snapshot', 'snapshot signature', { maxSize: lim.signature })]);
    const snapshot = parseJson(snap.bytes, snap.url);
    want(snapshot?.format === 1, 'FORMAT_UNSUPPORTED', `${snap.url}: expected format 1, found ${JSON.stringify(snapshot?.format)}; update this host to read newer registries.`);
    want(Number.isSafeInteger(snapshot.version) && snapshot.version >= 1, 'METADATA_INVALID', `${snap.url}: "version" must be an integer ≥ 1, found ${JSON.stringify(snapshot.version)}`);
    const sigs = [snapSig];
    // "signers" is unsigned: it only says which other signature files to try.
    if (registry.policy.snapshotThreshold > 1 && Array.isArray(snapshot.signers))
      for (const id of snapshot.signers.slice(0, 16)) {
        want(typeof id === 'string' && /^[0-9A-F]{1,16}$/.test(id), 'METADATA_INVALID', `${snap.url}: a signer is not a key id: ${JSON.stringify(id)}`);
        try { sigs.push(await getFrom(src, `snapshot.json.${id}.minisig`, 'snapshot', 'snapshot signature', { maxSize: lim.signature })); } catch (e) { if (e.status !== 404) throw e; }
      }
    const snapDigest = await sha256(snap.bytes);
    await timed(() => policyVerify(registry.policy, null, snap.bytes, sigs, `molt snapshot ${snapshot.version} ${snapDigest}`, startedAt));
    want(snapshot.version >= seen, 'ROLLBACK', `${snap.url}: rollback: snapshot version ${snapshot.version} is older than version ${seen} seen before: a rollback attack or a stale mirror. Use an up-to-date mirror.`, { expected: seen, found: snapshot.version });
    want(!seen || snapshot.version <= seen + MAX_VERSION_JUMP, 'FAST_FORWARD', `${snap.url}: fast-forward: snapshot version ${snapshot.version} is more than ${MAX_VERSION_JUMP} ahead of version ${seen} seen before; refusing it (a leaked snapshot key could otherwise lock this client out). If the publisher confirms, clear the remembered version.`, { expected: seen, found: snapshot.version });
    const expires = typeof snapshot.expires === 'string' ? Date.parse(snapshot.expires) : NaN;
    want(Number.isFinite(expires), 'METADATA_INVALID', `${snap.url}: "expires" must be a UTC time like 2027-11-22T00:00:00Z, found ${JSON.stringify(snapshot.expires)}`);
    want(expires > startedAt, 'EXPIRED', `${snap.url}: snapshot version ${snapshot.version} expired at ${snapshot.expires} (now ${new Date(startedAt).toISOString()}): stale metadata (freeze attack or an unmaintained mirror). Ask the publisher to re-sign the snapshot, or check this machine's clock.`, { expires: snapshot.expires });
    return { snap, snapshot };
  });
  // The first files are requested: now the Worker boots and the cache opens meanwhile.
  startEngine();
  try { store?.prepare?.(); } catch { /* an unusable cache is a miss, found out at the lookup */ }
  const { snap, snapshot } = await snapP;
  registry.snapshotVersion = snapshot.version;
  if (snapshot.version > seen || seenRec?.snapshotKeys !== snapKeys)
    await registry.store.set(registry.url, { version: snapshot.version, snapshotKeys: snapKeys });
  const entry = snapshot.indexes?.[name];
  want(entry && Object.hasOwn(snapshot.indexes, name), 'NOT_FOUND', `${snap.url}: no unit named ${JSON.stringify(name)} in snapshot version ${snapshot.version} (it lists: ${Object.keys(snapshot.indexes ?? {}).join(', ') || 'nothing'}). Check the name.`);
  sizeOk(entry.size, lim.index, `${snap.url}: indexes.${name}.size`);

  // 2. index/<name>.json: size and digest from the snapshot.
  progress({ stage: 'index' });
  // Not requested before: only files that verified metadata names are fetched.
  const ix = await get(`index/${encodeURIComponent(name)}.json`, 'index', `index of ${name}`, { expectedSize: entry.size },
    (r) => checkDigest(r.bytes, entry.digest, `index of ${name}`, r.url, `snapshot version ${snapshot.version}`));
  const index = parseJson(ix.bytes, ix.url);
  want(index?.format === 1 && index.name === name, 'METADATA_INVALID', `${ix.url}: expected format 1 and name ${JSON.stringify(name)}, found format ${JSON.stringify(index?.format)} and name ${JSON.stringify(index?.name)}`);

  // 3. version and target exist and are not yanked.
  const vers = index.versions ?? {};
  want(Object.hasOwn(vers, version), 'NOT_FOUND', `${ix.url}: ${name} has no version ${JSON.stringify(version)} (published: ${Object.keys(vers).join(', ') || 'none'})`);
  const ent = vers[version];
  want(ent && Object.hasOwn(ent, target), 'NOT_FOUND', `${ix.url}: ${name}@${version} has no build for target ${JSON.stringify(target)} (targets: ${Object.keys(ent ?? {}).join(', ') || 'none'})`);
  const te = ent[target];
  want(te && typeof te === 'object', 'METADATA_INVALID', `${ix.url}: ${version}.${target} must be an object`);
  want(te.yanked !== true || allowYanked, 'YANKED', `${ix.url}: ${unitName} was yanked by its publisher; pick another version (published: ${Object.keys(vers).join(', ')}), or pass allowYanked when a lockfile pins it.`);
  sizeOk(te.size, lim.manifest, `${ix.url}: ${version}.${target}.size`);

  // 4. signature blob (digest), then the manifest (size, digest, signature, trusted comment).
  // Hints (docs/registry.md, "Hints"): the entry may name the artifact and a
  // pack of the unit's schemas. The signed index names them, so they are
  // fetched in this round with the manifest; nothing in them is used until the
  // signed manifest verifies and names exactly the same bytes.
  const hint = (k, cap) => {
    const h = te[k];
    if (h === undefined) return null;
    want(h !== null && typeof h === 'object' && typeof h.digest === 'string' && DIGEST_RE.test(h.digest), 'METADATA_INVALID',
      `${ix.url}: ${version}.${target}.${k}: expected a hint {"digest": "sha256:<64 hex>", "size": N}, found ${JSON.stringify(h)}. The registry is damaged: run molt verify on it.`);
    sizeOk(h.size, cap, `${ix.url}: ${version}.${target}.${k}.size`);
    return h;
  };
  const artHint = hint('artifact', lim.artifact), packHint = hint('schemas_pack', lim.schemaPack);
  // Progress of a file fetched ahead waits until the manifest naming it
  // verifies (the first and the latest event of each stage are kept), so
  // stages keep their order.
  const gates = new Map();
  const gated = (stage) => {
    const g = { open: false, held: new Map() };
    gates.set(stage, g);
    return (p) => { if (g.open) return progress(p); const h = g.held.get(p.stage); if (h) h[1] = p; else g.held.set(p.stage, [p, null]); };
  };
  const release = (stage) => {
    const g = gates.get(stage);
    if (!g || g.open) return;
    g.open = true;
    for (const [first, last] of g.held.values()) { progress(first); if (last) progress(last); }
  };
  progress({ stage: 'signature' });
  const sigDigests = te.signatures === undefined ? [te.signature] : te.signatures;
  want(Array.isArray(sigDigests) && sigDigests.length > 0, 'METADATA_INVALID', `${ix.url}: ${version}.${target}.signatures must be a non-empty list of digests`);
  // Fetched together (the index names all of them), each checked before use.
  const sgsP = Promise.all(sigDigests.slice(0, 16).map((d) =>
    get(blobPath(d, ix.url), 'signature', `manifest signature of ${unitName}`, { maxSize: lim.signature },
      (r) => checkDigest(r.bytes, d, `manifest signature of ${unitName}`, r.url, ix.url))));
  sgsP.catch(() => {}); // reported below, after the manifest's own fetch settles
  progress({ stage: 'manifest' });
  const mfP = get(blobPath(te.manifest, ix.url), 'manifest', `manifest of ${unitName}`, { expectedSize: te.size },
    (r) => checkDigest(r.bytes, te.manifest, `manifest of ${unitName}`, r.url, ix.url));
  mfP.catch(() => {});

  // The artifact: a module compiled from it before (memory), else its bytes
  // from the cache, hashed again, else downloaded (size cap while
  // downloading, then digest). `a` is the hint (before the manifest is
  // verified) or the signed manifest's artifact; the caller makes sure the
  // manifest names `a` before using what this returns.
  const obtainArtifactBytes = async (a, from, sink, asked) => {
    const artPath = blobPath(a.digest, from);
    let bytes = null, module = store ? modules.get(a.digest) : undefined, stored = null;
    const fromCache = (how) => {
      m.cached = how;
      m.artifactBytes = a.size;
      sink({ stage: 'artifact', loaded: a.size, total: a.size, url: new URL(artPath, sources[0]).href, cached: how });
    };
    if (module) fromCache('module');
    else if (store) {
      let b;
      try { b = await store.get(a.digest); } catch { b = undefined; } // an unreadable cache is a miss
      if (b) {
        asked(); // nothing to request unless these bytes are refused below
        b = asBytes(b);
        const found = await timed(async () => b.byteLength === a.size ? sha256(b) : `${b.byteLength} bytes`);
        if (found === a.digest) { bytes = b; fromCache('bytes'); } else {
          m.cacheRefused = `the cached artifact of ${unitName} is ${found.startsWith('sha256:') ? `${a.size} bytes with digest ${found}` : found}, expected ${a.size} bytes with digest ${a.digest}: the cache entry was altered or damaged; it was deleted and the artifact fetched again`;
          sink({ stage: 'cache', refused: m.cacheRefused });
          try { await store.delete?.(a.digest); } catch { /* fetched again below; the put replaces it */ }
        }
      }
    }
    if (!module && !bytes) {
      const afP = get(artPath, 'artifact', `artifact of ${unitName}`, { expectedSize: a.size, sink },
        (r) => checkDigest(r.bytes, a.digest, `artifact of ${unitName}`, r.url, `the signed manifest ${te.manifest}${a === artHint ? ', hinted by the index' : ''}`));
      asked(); // get() has called fetch by now
      const af = await afP;
      bytes = af.bytes;
      m.artifactBytes = bytes.byteLength;
      // Stored while the module compiles; a full or unavailable cache is no error.
      if (store) stored = Promise.resolve().then(() => store.put(a.digest, bytes)).catch(() => {});
    }
    return { bytes, module, stored };
  };
  // Resolves once the artifact's request is out (or none is needed): the
  // schemas are requested after it, so on HTTP/1.1 (six connections per host)
  // the largest file is not queued behind a unit's many small schemas.
  let artifactAsked;
  const asked = new Promise((res) => { artifactAsked = res; });
  const obtainArtifact = async (a, from, sink) => {
    try { return await obtainArtifactBytes(a, from, sink, artifactAsked); } finally { artifactAsked(); }
  };
  let artifactP = null, packP = null;
  if (artHint) {
    artifactP = obtainArtifact(artHint, `${ix.url}: ${version}.${target}.artifact`, gated('artifact'));
    artifactP.catch(() => {}); // awaited once the manifest names the same artifact
  }
  if (packHint) {
    packP = get(blobPath(packHint.digest, ix.url), 'schemas', `schema pack of ${unitName}`, { expectedSize: packHint.size, sink: gated('schemas') },
      (r) => checkDigest(r.bytes, packHint.digest, `schema pack of ${unitName}`, r.url, ix.url));
    packP.catch(() => {});
  }
  const sgs = await sgsP;
  const mf = await mfP;
  const tcWant = `molt unit ${name}@${version} ${target} ${te.manifest}`;
  const signers = await timed(() => policyVerify(registry.policy, name, mf.bytes, sgs, tcWant, startedAt));
  const mfSig = { keyIdHex: signers[0] };

  // 5. manifest fields equal the request.
  const manifest = parseJson(mf.bytes, mf.url);
  checkManifest(manifest, { name, version, target }, mf.url, lim, unitName, true);
  const art = manifest.artifact;
  // Extraneous dependencies: reported (onProgress stage 'depends'), never fetched.
  want(manifest.depends === undefined || Array.isArray(manifest.depends), 'METADATA_INVALID', `${mf.url}: "depends" must be a list`);
  for (const d of manifest.depends ?? [])
    progress({ stage: 'depends', dependency: typeof d === 'string' ? d : `${d?.name}@${d?.version}`, fetched: false });
  const inconsistent = `The registry is inconsistent (its index disagrees with a signed manifest): do not use it; its publisher must run mrecipe registry verify, and mrecipe registry refresh --resign to rewrite the hints.`;
  if (artHint)
    want(artHint.digest === art.digest && artHint.size === art.size, 'METADATA_INVALID',
      `${ix.url}: ${version}.${target}.artifact hints ${artHint.digest} (${artHint.size} bytes), but the signed manifest ${te.manifest} names ${art.digest} (${art.size} bytes) as the artifact of ${unitName}. ${inconsistent}`,
      { url: ix.url, expected: art.digest, found: artHint.digest });

  // 6. Schema blobs named in the manifest: digest, well-formed, the id/version
  // listed; from the hinted pack when there is one. The artifact is fetched
  // meanwhile: its size and digest come from the signed manifest, and it is
  // used only once the schemas are checked.
  progress({ stage: 'schemas' });
  if (!artifactP) {
    artifactP = obtainArtifact(art, `${mf.url}: artifact`, progress);
    artifactP.catch(() => {}); // awaited below, after the schemas
    await asked;
  }
  const docs = [];
  if (packP) {
    release('schemas');
    const pk = await packP;
    let list = null;
    try { list = JSON.parse(utf8d.decode(pk.bytes)); } catch { /* refused below */ }
    want(Array.isArray(list) && list.every((x) => typeof x === 'string'), 'METADATA_INVALID',
      `${pk.url}: schema pack of ${unitName}: expected a JSON array of strings (docs/registry.md, "Hints"), found ${list === null ? 'no JSON' : `a JSON ${Array.isArray(list) ? 'array holding a non-string' : typeof list}`}. ${inconsistent}`);
    const entries = await timed(() => Promise.all(list.map(async (text) => { const b = utf8.encode(text); return { b, d: await sha256(b) }; })));
    const ms = manifest.schemas, why = [];
    if (entries.length === ms.length) {
      for (const [i, s] of ms.entries())
        if (entries[i].d !== s?.digest) why.push(`entry ${i} hashes to ${entries[i].d}, but the manifest lists ${schemaKey(s?.id, s?.version)} as ${s?.digest}`);
    } else {
      why.push(`it holds ${entries.length} document(s), the manifest lists ${ms.length} schema(s)`);
      for (const s of ms) if (!entries.some((e) => e.d === s?.digest)) why.push(`it lacks ${schemaKey(s?.id, s?.version)} (${s?.digest})`);
      for (const [i, e] of entries.entries()) if (!ms.some((s) => s?.digest === e.d)) why.push(`entry ${i} (${e.d}) is not a schema the manifest lists`);
    }
    want(!why.length, 'METADATA_INVALID', `${pk.url}: the schema pack of ${unitName} (hinted by ${ix.url}) does not hold exactly the schemas of the signed manifest ${te.manifest}: ${why.join('; ')}. ${inconsistent}`,
      { url: pk.url });
    for (const [i, s] of ms.entries()) {
      const url = `${pk.url}#${i}`;
      sizeOk(entries[i].b.byteLength, lim.schema, `${url}: schema ${schemaKey(s.id, s.version)}`);
      docs.push({ doc: parseJson(entries[i].b, url), url });
    }
  } else {
    // Fetched together, checked one by one in manifest order.
    const fetched = await Promise.all(manifest.schemas.map((s) =>
      get(blobPath(s?.digest, `${mf.url}: schema ${schemaKey(s?.id, s?.version)}`), 'schemas', `schema ${schemaKey(s?.id, s?.version)}`, { maxSize: lim.schema },
        (r) => checkDigest(r.bytes, s.digest, `schema ${schemaKey(s.id, s.version)}`, r.url, mf.url))));
    for (const [i, s] of manifest.schemas.entries()) {
      const sb = fetched[i];
      await checkDigest(sb.bytes, s.digest, `schema ${schemaKey(s.id, s.version)}`, sb.url, mf.url);
      docs.push({ doc: parseJson(sb.bytes, sb.url), url: sb.url });
    }
  }
  const functions = await unitFunctions(manifest, docs, mf.url);

  release('artifact');
  const { bytes, module, stored } = await artifactP;

  const started = await startUnit(bytes, { module, engine: startEngine(), name, version, target, manifest, manifestDigest: te.manifest, signedBy: mfSig.keyIdHex,
    functions, run, metrics: m, progress, unitName });
  if (store) modules.set(art.digest, started.module);
  await stored;
  const unit = started.unit;
  m.totalMs = now() - t0;
  progress({ stage: 'ready' });
  return unit;
}

/**
 * Instantiates a wasm unit from local files, without a registry: for authors
 * testing their own builds before anything is signed (mrecipe test runs
 * runtime/js/vectors.mjs, which calls this). Checks what the manifest claims:
 * format, target wasm32-wasi, ABI, the artifact's size and digest, and each
 * schema's canonical digest (docs/schemas.md); then compiles and initialises
 * exactly as loadUnit does. No signature is checked: only use files you built.
 * @param {object} o
 * @param {Uint8Array|ArrayBuffer} o.bytes the .wasm artifact
 * @param {string|Uint8Array|object} o.manifest the unsigned manifest.json (text, bytes or parsed)
 * @param {Array<string|Uint8Array|object>} o.schemas the schema files the manifest lists (text, bytes or parsed), in any order
 * @param {number} [o.stepBudget] step_budget for molt.runtime_config (work units per poll)
 * @param {number} [o.timeoutMs] default wall-clock limit of a call (RUN_LIMITS)
 * @param {number} [o.maxOutput] default largest result envelope, bytes (RUN_LIMITS)
 * @param {number} [o.maxMemory] ceiling on the unit's wasm memory, bytes (RUN_LIMITS)
 * @param {string} [o.where] names the manifest in messages (e.g. its path)
 * @param {boolean} [o.worker] run in a Worker (as loadUnit; default true in browser pages)
 * @param {string|URL} [o.workerUrl] the Worker's module script (default: molt.js)
 * @returns {Promise<Unit>} with signedBy null, and manifestDigest null when the manifest was given parsed
 */
export async function instantiateLocal(o) {
  const engine = earlyWorker(o?.worker, o?.workerUrl);
  try {
    return await local(o, engine);
  } catch (e) {
    engine?.close('the load failed');
    throw e;
  }
}

async function local({ bytes, manifest, schemas = [], stepBudget, timeoutMs, maxOutput, maxMemory, where = 'manifest.json' }, engine) {
  const run = runOptions({ stepBudget, timeoutMs, maxOutput, maxMemory });
  const t0 = now();
  const m = { bytesFetched: 0, fetchMs: 0, verifyMs: 0, compileMs: 0, initMs: 0, totalMs: 0, artifactBytes: 0, cached: false, cacheRefused: null, worker: !!engine };
  const parse = (x, at) => (typeof x === 'string' || x instanceof Uint8Array || x instanceof ArrayBuffer ? parseJson(asBytes(x), at) : x);
  const mf = parse(manifest, where);
  const name = mf?.name, version = mf?.version, target = 'wasm32-wasi';
  const unitName = `${name}@${version} (${target})`;
  checkManifest(mf, { name, version, target }, where, LIMITS, unitName, false);
  const art = mf.artifact;
  const wasm = asBytes(bytes);
  const t = now();
  want(wasm.byteLength === art.size, 'SIZE_MISMATCH', `${where}: the artifact is ${wasm.byteLength} bytes, the manifest says ${art.size}: it changed after the build, or the manifest is another build's. Rebuild (mrecipe build ${name}).`, { expected: art.size, found: wasm.byteLength });
  const found = await sha256(wasm);
  want(found === art.digest, 'DIGEST_MISMATCH', `${where}: the artifact hashes to ${found}, the manifest says ${art.digest}: it changed after the build, or the manifest is another build's. Refusing it; rebuild (mrecipe build ${name}).`, { expected: art.digest, found });
  const byKey = new Map();
  for (const [i, x] of schemas.entries()) {
    const doc = parse(x, `schemas[${i}]`);
    byKey.set(schemaKey(doc?.id, doc?.version), doc);
  }
  const docs = [];
  for (const s of mf.schemas) {
    const key = schemaKey(s?.id, s?.version);
    const doc = byKey.get(key);
    want(doc !== undefined, 'NOT_FOUND', `${where}: lists schema ${key}, which was not given (expected the file ${s?.id}.v${s?.version}.json)`);
    const d = await sha256(canonicalJson(doc));
    want(d === s.digest, 'DIGEST_MISMATCH', `${where}: schema ${key} hashes to ${d} (canonical JSON), the manifest says ${s.digest}: the schema changed after the build. Refusing the unit; rebuild (mrecipe build ${name}).`, { expected: s.digest, found: d });
    docs.push({ doc, url: `schema ${key}` });
  }
  m.verifyMs = now() - t;
  const functions = await unitFunctions(mf, docs, where);
  m.artifactBytes = wasm.byteLength;
  const manifestDigest = typeof manifest === 'object' && !(manifest instanceof Uint8Array) && !(manifest instanceof ArrayBuffer) ? null : await sha256(manifest);
  const { unit } = await startUnit(wasm, { engine, name, version, target, manifest: mf, manifestDigest, signedBy: null,
    functions, run, metrics: m, progress: () => {}, unitName });
  m.totalMs = now() - t0;
  return unit;
}

// ---------------------------------------------------------------- units

const STATUS = { 1: 'InvalidInput', 2: 'DecodeError', 3: 'EncodeError', 4: 'Cancelled', 5: 'Timeout', 6: 'CapabilityDenied', 7: 'InternalError' };
const ERROR_SCHEMA = BUILTIN_SCHEMAS[0];

/**
 * Defaults for the limits a host puts on running a unit (docs/abi.md,
 * "Limits"); loadUnit and instantiateLocal take each as an option, call()
 * and callEnvelope() take timeoutMs and maxOutput per call.
 * timeoutMs: wall clock from a call's start to its result, checked at every
 * poll (0: none); past it the host cancels the task: MoltError TIMEOUT, code 5.
 * maxOutput: the largest result or error envelope taken from the unit, bytes:
 * OUTPUT_LIMIT, code 6. maxMemory: the unit's wasm memory after any poll,
 * bytes: MEMORY_LIMIT, code 6, and the instance is discarded.
 */
export const RUN_LIMITS = { timeoutMs: 0, maxOutput: 64 * MiB, maxMemory: 256 * MiB };

// Checks the run options a unit is loaded with; fills in the defaults.
function runOptions({ stepBudget, timeoutMs, maxOutput, maxMemory }) {
  const check = (ok, name, v, range) => want(ok, 'OPTIONS_INVALID', `${name} must be ${range}, found ${JSON.stringify(v)}`);
  check(stepBudget === undefined || (Number.isInteger(stepBudget) && stepBudget >= 1 && stepBudget <= 0xffffffff), 'stepBudget', stepBudget, 'an integer from 1 to 2^32-1');
  const o = callOptions({ timeoutMs, maxOutput }, RUN_LIMITS);
  const mem = maxMemory ?? RUN_LIMITS.maxMemory;
  check(Number.isSafeInteger(mem) && mem >= 65536, 'maxMemory', maxMemory, 'an integer of at least 65536 (one wasm page)');
  return { stepBudget, ...o, maxMemory: mem };
}

// The per-call limits: given ones over the defaults `d`.
function callOptions({ timeoutMs, maxOutput } = {}, d) {
  const check = (ok, name, v, range) => want(ok, 'OPTIONS_INVALID', `${name} must be ${range}, found ${JSON.stringify(v)}`);
  const t = timeoutMs ?? d.timeoutMs, n = maxOutput ?? d.maxOutput;
  check(typeof t === 'number' && t >= 0 && !Number.isNaN(t), 'timeoutMs', timeoutMs, 'a number of milliseconds ≥ 0 (0: no limit)');
  check(Number.isSafeInteger(n) && n >= 1, 'maxOutput', maxOutput, 'a positive integer of bytes');
  return { timeoutMs: t, maxOutput: n };
}

// Yield to the event loop without setTimeout's 4 ms clamp.
const yieldNow = typeof setImmediate === 'function'
  ? () => new Promise((r) => setImmediate(r))
  : typeof MessageChannel === 'function'
    ? (() => {
      const ch = new MessageChannel(), q = [];
      ch.port1.onmessage = () => q.shift()?.();
      return () => new Promise((r) => { q.push(r); ch.port2.postMessage(0); });
    })()
    : () => new Promise((r) => setTimeout(r, 0));

/**
 * How long a task's poll loop may run between two yields to the event loop,
 * ms: a cancel (a message, in a Worker) is seen within it, a long task does
 * not pay a yield for every poll, and a short one pays none.
 */
export const YIELD_MS = 4;

// The wasm side of a unit: its verified module, the live instance, the poll
// loop and the limits checked there. It needs no MsgPack (the runtime_config
// envelope comes built), so it runs the same on the calling thread and in
// the unit's Worker.
class Engine {
  #module; #o; #ex = null; #out = 0; #instances = 0; #discarded = ''; #reviving = null; #closed = false;

  /**
   * @param {WebAssembly.Module} module compiled from verified bytes, with no imports
   * @param {{run: object, config: Uint8Array, unitName: string, short: string}} o
   */
  constructor(module, o) {
    this.#module = module;
    this.#o = o;
  }

  get instances() { return this.#instances; }

  stats() {
    return { memoryBytes: this.#ex ? this.#ex.memory.buffer.byteLength : 0, instances: this.#instances };
  }

  close() {
    this.#closed = true;
    this.#discard('the unit was closed');
  }

  // Instantiates with no imports, checks the exports and molt_abi_version(),
  // initialises with the runtime_config envelope.
  async init() {
    const { unitName, run, config } = this.#o;
    let instance;
    try { instance = await WebAssembly.instantiate(this.#module, {}); } catch (e) {
      fail('INSTANTIATE_FAILED', `instantiating ${unitName} failed: ${e.message}`);
    }
    const ex = instance.exports;
    const missing = ['memory', 'molt_abi_version', 'molt_alloc', 'molt_free', 'molt_init', 'molt_call', 'molt_poll', 'molt_cancel'].filter((n) => !(n in ex));
    want(missing.length === 0, 'ABI_MISMATCH', `${unitName} does not export ${missing.join(', ')}; every Molt unit must export the seven ABI functions and its memory (docs/abi.md).`);
    const trap = (e, during) => fail('TRAP', `${unitName} trapped during ${during}: ${e.message}`, { class: 'runtime', unitCode: 7 });
    try { ex._initialize?.(); } catch (e) { trap(e, '_initialize'); }
    const abi = ex.molt_abi_version() >>> 0;
    want(abi === ABI_VERSION, 'ABI_MISMATCH', `${unitName}: molt_abi_version() returned ${abi >>> 16}.${abi & 0xffff} (0x${abi.toString(16).padStart(8, '0')}); this host needs 0.1. Use a unit built for ABI 0.1.`);
    let st;
    try { st = this.#withBytes(ex, config, (p, n) => ex.molt_init(p, n)); } catch (e) { if (e instanceof MoltError) throw e; trap(e, 'molt_init'); }
    want(st === 0, 'INIT_FAILED', `${unitName}: molt_init returned ${st} (${STATUS[-st] ?? 'unknown status'}) for a molt.runtime_config v1 envelope`);
    const bytes = ex.memory.buffer.byteLength;
    want(bytes <= run.maxMemory, 'MEMORY_LIMIT', `${unitName}: its memory starts at ${bytes} bytes, over the maxMemory limit of ${run.maxMemory} bytes; raise maxMemory to load it.`,
      { class: 'runtime', unitCode: 6 });
    this.#ex = ex;
    this.#out = 0;
    this.#instances++;
  }

  // A fresh instance after a discard; concurrent calls share one.
  #revive() {
    this.#reviving ??= this.init().finally(() => { this.#reviving = null; });
    return this.#reviving;
  }

  #discard(why) {
    this.#ex = null;
    this.#discarded = why;
  }

  // Runs f against the instance; a trap discards it.
  #enter(f, during) {
    try { return f(); } catch (e) {
      if (e instanceof MoltError) throw e;
      this.#discard(`a trap during ${during}: ${e.message}`);
      fail('TRAP', `${this.#o.short} trapped during ${during}: ${e.message}; the instance was discarded, and the next call starts a fresh one`,
        { class: 'runtime', unitCode: 7 });
    }
  }

  // The memory ceiling, checked after every poll.
  #checkMemory(ex, label) {
    const bytes = ex.memory.buffer.byteLength, max = this.#o.run.maxMemory;
    if (bytes <= max) return;
    this.#discard(`its memory grew to ${bytes} bytes, over the maxMemory limit`);
    fail('MEMORY_LIMIT', `${label}: runtime error 6 (CapabilityDenied): the unit's memory grew to ${formatBytes(bytes)} (${bytes} bytes), over the maxMemory limit of ${max} bytes; the instance was discarded, and the next call starts a fresh one`,
      { class: 'runtime', unitCode: 6, found: bytes, expected: max });
  }

  // Copies `bytes` into unit memory, runs f(ptr, len), frees the copy.
  #withBytes(ex, bytes, f) {
    const p = ex.molt_alloc(bytes.length) >>> 0;
    if (!p) fail('ALLOC_FAILED', `${this.#o.short}: molt_alloc(${bytes.length}) returned 0 (out of memory)`, { class: 'runtime', unitCode: 7 });
    new Uint8Array(ex.memory.buffer).set(bytes, p);
    try { return f(p, bytes.length); } finally { ex.molt_free(p, bytes.length); }
  }

  /**
   * Starts a task and polls it to the end. `lim` is checked already.
   * @returns {{result: Promise<{status: 1|2, envelope: Uint8Array}>, cancel: () => void}}
   */
  start(functionId, bytes, lim, label) {
    const job = { ex: null, task: 0n, done: false, cancelled: false };
    const t0 = now();
    const late = () => lim.timeoutMs > 0 && now() - t0 >= lim.timeoutMs;
    // Runs synchronously up to the first await, so a live instance starts
    // tasks in call order.
    const result = (async () => {
      try {
        if (this.#closed) fail('UNIT_CLOSED', `${label}: the unit was closed (unit.close()); load it again to call it`);
        if (!this.#ex) await this.#revive();
        const ex = job.ex = this.#ex;
        if (!this.#out) this.#out = this.#enter(() => ex.molt_alloc(8) >>> 0, 'molt_alloc');
        if (!this.#out) fail('ALLOC_FAILED', `${label}: molt_alloc(8) returned 0`, { class: 'runtime', unitCode: 7 });
        const out = this.#out;
        const task = this.#enter(() => this.#withBytes(ex, bytes, (p, n) => ex.molt_call(functionId >>> 0, p, n)), 'molt_call');
        if (task <= 0n) fail('CALL_FAILED', `${label}: molt_call returned ${task} (${STATUS[-Number(task)] ?? 'unknown status'}); no task was started${task === -6n ? ': the unit holds as many tasks as it can; let some finish or cancel them' : ''}`,
          { class: 'runtime', unitCode: STATUS[-Number(task)] ? -Number(task) : 7 });
        job.task = task;
        if (job.cancelled) this.#enter(() => ex.molt_cancel(task), 'molt_cancel');
        this.#checkMemory(ex, label);
        let ranSince = now();
        for (let polls = 1; ; polls++) {
          if (this.#ex !== ex)
            fail(this.#closed ? 'UNIT_CLOSED' : 'UNIT_BROKEN', this.#closed ? `${label}: the unit was closed (unit.close()) while this task ran; the task is lost`
              : `${label}: the instance running this task was discarded (${this.#discarded}); the task is lost. Call again: the next call starts a fresh instance.`, { class: 'runtime', unitCode: 7 });
          if (polls > 1 && late()) this.#timeout(ex, task, t0, polls - 1, lim, label);
          const st = this.#enter(() => ex.molt_poll(task, out, out + 4), 'molt_poll');
          this.#checkMemory(ex, label);
          if (st === 0) {
            if (late()) this.#timeout(ex, task, t0, polls, lim, label);
            // Every YIELD_MS of this task's polling: a cancel is a message
            // (Worker) or a callback (this thread) that must get in, and
            // other tasks take their turn. A task shorter than that never
            // pays for a yield.
            if (now() - ranSince >= YIELD_MS) {
              await yieldNow();
              ranSince = now();
            }
            continue;
          }
          if (st !== 1 && st !== 2) fail('ABI_VIOLATION', `${label}: molt_poll returned ${st}; expected 0, 1 or 2 for a live task`, { class: 'runtime', unitCode: 7 });
          const size = ex.memory.buffer.byteLength, dv = new DataView(ex.memory.buffer);
          const p = dv.getUint32(out, true), n = dv.getUint32(out + 4, true);
          if (p + n > size) fail('ABI_VIOLATION', `${label}: molt_poll returned out=${p}, len=${n}, beyond the unit's ${size}-byte memory`, { class: 'runtime', unitCode: 7 });
          if (n > lim.maxOutput)
            fail('OUTPUT_LIMIT', `${label}: runtime error 6 (CapabilityDenied): the ${st === 1 ? 'result' : 'error'} envelope is ${n} bytes, over the maxOutput limit of ${lim.maxOutput} bytes; it was dropped`,
              { class: 'runtime', unitCode: 6, found: n, expected: lim.maxOutput });
          return { status: st, envelope: new Uint8Array(ex.memory.buffer, p, n).slice() };
        }
      } finally { job.done = true; }
    })();
    return {
      result,
      cancel: () => {
        if (job.done || job.cancelled) return;
        job.cancelled = true;
        // Before molt_call (a fresh instance on its way): cancelled as soon as it starts.
        if (!job.task || job.ex !== this.#ex) return;
        const st = this.#enter(() => job.ex.molt_cancel(job.task), 'molt_cancel');
        if (st < 0) fail('ABI_VIOLATION', `${label}: molt_cancel returned ${st}`, { class: 'runtime', unitCode: 7 });
      },
    };
  }

  // The wall clock ran out: cancel the task in the unit, reap it (one more
  // poll frees its slot), and reject.
  #timeout(ex, task, t0, polls, lim, label) {
    this.#enter(() => { if (ex.molt_cancel(task) === 0) ex.molt_poll(task, this.#out, this.#out + 4); }, 'molt_cancel');
    fail('TIMEOUT', `${label}: runtime error 5 (Timeout): no result after ${Math.round(now() - t0)} ms (timeoutMs ${lim.timeoutMs}, ${polls} polls); the host cancelled the task`,
      { class: 'runtime', unitCode: 5, polls });
  }
}

// ---------------------------------------------------------------- workers

// An error as it crosses postMessage, and back: a MoltError keeps its code,
// message and every detail field (class, unitCode, path, expected, found...).
function errorData(e) {
  if (e instanceof MoltError) {
    const { name, message, stack, ...details } = e;
    return { molt: true, message: e.message, details };
  }
  return { molt: false, message: String(e?.message ?? e), name: e?.name ?? 'Error' };
}

function errorFrom(d) {
  if (d.molt) return new MoltError(d.details.code, d.message, d.details);
  const e = new Error(d.message);
  e.name = d.name;
  return e;
}

// Inside the unit's Worker: one Engine, driven by messages from Unit.
function serveWorker(scope) {
  let engine = null;
  const jobs = new Map();
  const reply = (id, m, transfer = []) => scope.postMessage({ id, instances: engine?.instances ?? 0, ...m }, transfer);
  scope.onmessage = async ({ data: m }) => {
    try {
      if (m.op === 'init') {
        engine = new Engine(m.module, m.opts);
        await engine.init();
        reply(m.id, { value: null });
      } else if (m.op === 'call') {
        const job = engine.start(m.fid, m.bytes, m.lim, m.label);
        jobs.set(m.id, job);
        job.result.then((r) => reply(m.id, { value: r }, [r.envelope.buffer]), (e) => reply(m.id, { error: errorData(e) }))
          .finally(() => jobs.delete(m.id));
      } else if (m.op === 'cancel') {
        jobs.get(m.id)?.cancel();
      } else if (m.op === 'stats') {
        reply(m.id, { value: engine.stats() });
      }
    } catch (e) {
      reply(m.id, { error: errorData(e) });
    }
  };
}

if (IN_UNIT_WORKER) serveWorker(globalThis);

// The calling side of a unit in a Worker: the Engine's interface over
// postMessage. loadUnit starts the Worker as soon as it has requested its
// first files, so the Worker boots while the unit's files are fetched and checked.
class WorkerEngine {
  #w; #url; #seq = 0; #pending = new Map(); #instances = 0; #dead = null;

  constructor(url) {
    this.#url = String(url);
    this.#w = new Worker(this.#url, { type: 'module', name: WORKER_NAME });
    this.#w.onmessage = ({ data: m }) => {
      const p = this.#pending.get(m.id);
      this.#instances = m.instances;
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.error) p.reject(errorFrom(m.error)); else p.resolve(m.value);
    };
    this.#w.onerror = (ev) => {
      ev.preventDefault?.();
      this.#die(new MoltError('WORKER_FAILED', `the unit's Worker (module script ${this.#url}) failed: ${ev.message || 'its script did not load or threw'}. The Worker loads molt.js itself with no import map, so serve @msgpack/msgpack where the page's import map says, or pass workerUrl (a bundle of molt.js), or worker: false.`));
    };
    this.#w.onmessageerror = () => this.#die(new MoltError('WORKER_FAILED', `a message from the unit's Worker (${this.#url}) could not be read`));
  }

  get instances() { return this.#instances; }

  #die(e) {
    this.#dead ??= e;
    this.#w.terminate();
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  #ask(m, transfer) {
    const id = m.id ?? ++this.#seq;
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#w.postMessage({ ...m, id }, transfer);
    });
  }

  init(module, opts) { return this.#ask({ op: 'init', module, opts }); }

  start(fid, bytes, lim, label) {
    const id = ++this.#seq;
    const result = this.#ask({ op: 'call', id, fid, bytes, lim, label });
    return {
      result,
      cancel: () => { if (this.#pending.has(id)) this.#w.postMessage({ op: 'cancel', id }); },
    };
  }

  stats() { return this.#ask({ op: 'stats' }); }

  close(why) { this.#die(new MoltError('UNIT_CLOSED', why)); }
}

// In browsers a unit runs in a Worker unless told otherwise; in Node (no
// global Worker) and inside a Worker it runs on the calling thread.
const workerByDefault = () => typeof Worker === 'function' && typeof document !== 'undefined';

/**
 * A loaded, initialised unit, made by loadUnit (or instantiateLocal).
 * Fields: name, version, target; manifest (the parsed signed manifest) and
 * manifestDigest; signedBy (the key id that signed it; null for a local
 * unit); functions (Map name → {id, name, input, output schema documents});
 * limits {stepBudget, timeoutMs, maxOutput, maxMemory} (RUN_LIMITS);
 * worker (true when it runs in its own Worker); metrics {bytesFetched,
 * fetchMs, verifyMs, compileMs, initMs, totalMs, artifactBytes, cached,
 * cacheRefused, worker}.
 *
 * A trap (unreachable, an out-of-bounds access, ...) or a memory ceiling
 * breach discards the wasm instance: the failing call rejects (TRAP, code 7;
 * MEMORY_LIMIT, code 6), other calls in flight in that instance reject with
 * UNIT_BROKEN, and the next call runs in a fresh instance of the same
 * verified module (`instances` counts them).
 */
export class Unit {
  #engine; #run; #closed = false;
  constructor({ name, version, target, manifest, manifestDigest, signedBy, functions, run, metrics, engine, worker }) {
    Object.assign(this, { name, version, target, manifest, manifestDigest, signedBy, functions, metrics });
    this.limits = { ...run };
    this.worker = worker;
    this.#run = run;
    this.#engine = engine;
  }

  /** How many wasm instances this unit has had: 1 once loaded, one more after each discard. */
  get instances() { return this.#engine.instances; }

  /**
   * The unit's memory now (its wasm memory size, bytes; 0 between a discard
   * and the next call) and how many instances it has had.
   * @returns {Promise<{memoryBytes: number, instances: number}>}
   */
  async stats() {
    if (this.#closed) return { memoryBytes: 0, instances: this.#engine.instances };
    return this.#engine.stats();
  }

  /**
   * Ends the unit: terminates its Worker (or drops its instance). Calls in
   * flight and later calls reject with UNIT_CLOSED. Idempotent.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#engine.close(`${this.name}@${this.version} was closed (unit.close()); load it again to call it`);
  }

  /**
   * Validates `value` against the function's input schema and builds the
   * request envelope (the bytes call() sends). For an input schema of codec
   * arrow, `value` is the Arrow IPC stream (Uint8Array), checked against the
   * schema's columns.
   * @param {string} functionName
   * @param {any} value
   * @returns {Uint8Array}
   */
  encodeRequest(functionName, value) {
    const f = this.#fn(functionName);
    const where = `${this.name}.${f.name} input (${f.input.id} v${f.input.version})`;
    if (f.input.codec === 'arrow') {
      if (!(value instanceof Uint8Array))
        fail('INVALID_INPUT', `${where}: expected an Arrow IPC stream (Uint8Array), found ${describe(value)}; the schema has codec "arrow" (docs/arrow.md)`, { path: '', expected: 'Arrow IPC stream', found: describe(value) });
      checkArrowStream(value, f.input, where, 'INVALID_INPUT');
      return encodeEnvelope(f.input.id, f.input.version, value);
    }
    const wire = validate(f.input.type, value, { direction: 'encode', where });
    return encodeEnvelope(f.input.id, f.input.version, encodeMsgpack(wire));
  }

  #fn(name) {
    const f = this.functions.get(name);
    if (!f) fail('UNKNOWN_FUNCTION', `${this.name}@${this.version} has no function ${JSON.stringify(name)} (it has: ${[...this.functions.keys()].join(', ')})`);
    return f;
  }

  /**
   * Calls a function by name with a JS value; validates both ways. cancel()
   * takes effect at the task's next poll: result rejects with CANCELLED
   * (class cancellation, code 4), and the unit stays usable. A function
   * whose output schema has codec arrow resolves to the Arrow IPC stream
   * (Uint8Array), its columns checked against the schema.
   * @param {string} functionName
   * @param {any} value
   * @param {{timeoutMs?: number, maxOutput?: number}} [opts] this call's limits (default: the unit's)
   * @returns {{result: Promise<any>, cancel: () => void}}
   */
  call(functionName, value, opts) {
    let f, env;
    try {
      f = this.#fn(functionName);
      env = this.encodeRequest(functionName, value);
    } catch (e) {
      return { result: Promise.reject(e), cancel() {} };
    }
    const where = `${this.name}.${f.name}`;
    const task = this.#start(f.id, env, opts, where);
    const result = task.result.then(({ status, envelope }) => {
      if (status === 2) throw this.#unitError(envelope, where);
      try {
        const e = decodeEnvelope(envelope, `${where} result`);
        want(e.schemaId === f.output.id && e.schemaVersion === f.output.version, 'INVALID_OUTPUT',
          `${where} returned schema ${e.schemaId} v${e.schemaVersion}, expected ${f.output.id} v${f.output.version} (from the signed manifest)`);
        const at = `${where} output (${f.output.id} v${f.output.version})`;
        if (f.output.codec === 'arrow') {
          checkArrowStream(e.payload, f.output, at, 'INVALID_OUTPUT');
          return e.payload.slice();
        }
        let payload;
        try { payload = decodeMsgpack(e.payload); } catch (err) {
          fail('INVALID_OUTPUT', `${where} result payload is not MsgPack: ${err.message}`);
        }
        return validate(f.output.type, payload, { direction: 'decode', where: at });
      } catch (err) {
        // A result that breaks its schema is the unit's encoding error.
        if (err instanceof MoltError) Object.assign(err, { class: 'runtime', unitCode: 3 });
        throw err;
      }
    });
    return { result, cancel: task.cancel };
  }

  #unitError(envelope, where) {
    const e = decodeEnvelope(envelope, `${where} error`);
    want(e.schemaId === 'molt.error' && e.schemaVersion === 1, 'INVALID_OUTPUT', `${where} reported an error with schema ${e.schemaId} v${e.schemaVersion}, expected molt.error v1`);
    let payload;
    try { payload = decodeMsgpack(e.payload); } catch (err) { fail('INVALID_OUTPUT', `${where} error payload is not MsgPack: ${err.message}`); }
    const u = validate(ERROR_SCHEMA.type, payload, { direction: 'decode', where: `${where} error (molt.error v1)` });
    const code = u.class === 'cancellation' ? 'CANCELLED' : u.class === 'validation' ? 'UNIT_VALIDATION' : 'UNIT_RUNTIME';
    return new MoltError(code, `${where}: ${u.class} error ${u.code} (${STATUS[u.code] ?? 'unknown code'})${u.path ? ` at ${u.path}` : ''}: ${u.message}`,
      { class: u.class, unitCode: u.code, unitMessage: u.message, path: u.path, unit: u });
  }

  /**
   * Starts a raw call: no validation, for byte-level tests. The result is the
   * unit's envelope, exactly as it wrote it. The host's limits still apply:
   * TIMEOUT (code 5, the task cancelled in the unit), OUTPUT_LIMIT and
   * MEMORY_LIMIT (code 6), TRAP (code 7) reject the result; each MoltError
   * has class 'runtime' and unitCode.
   * @param {number} functionId
   * @param {Uint8Array} envelope request envelope bytes
   * @param {{timeoutMs?: number, maxOutput?: number}} [opts] this call's limits (default: the unit's)
   * @returns {{result: Promise<{status: 1|2, envelope: Uint8Array}>, cancel: () => void}}
   */
  callEnvelope(functionId, envelope, opts) {
    return this.#start(functionId, envelope, opts, `${this.name}@${this.version} function ${functionId}`);
  }

  // callEnvelope, with `label` naming the call in messages.
  #start(functionId, envelope, opts, label) {
    let lim, bytes;
    try {
      lim = callOptions(opts, this.#run);
      bytes = asBytes(envelope);
      want(Number.isInteger(functionId) && functionId >= 0 && functionId <= 0xffffffff, 'OPTIONS_INVALID', `${label}: a function id is an integer from 0 to 2^32-1, found ${JSON.stringify(functionId)}`);
      if (this.#closed) fail('UNIT_CLOSED', `${label}: ${this.name}@${this.version} was closed (unit.close()); load it again to call it`);
    } catch (e) {
      return { result: Promise.reject(e), cancel() {} };
    }
    return this.#engine.start(functionId, bytes, lim, label);
  }
}

/** Formats bytes for people: 1536 → "1.5 KiB". */
export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

