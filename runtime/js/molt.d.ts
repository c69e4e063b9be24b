// molt.d.ts — TypeScript declarations for runtime/js/molt.js, the JS host for
// Molt units (docs/js.md). Every export of molt.js is declared here;
// tests/node/types.test.mjs compiles a program against it with tsc --strict.

/** The ABI this host speaks: (major << 16) | minor. */
export const ABI_VERSION: number;
/** Largest accepted jump over the snapshot version seen before (fast-forward defence). */
export const MAX_VERSION_JUMP: number;
/** Caps for files whose size no signed metadata gives, bytes. */
export const LIMITS: Readonly<Limits>;
/** Defaults of the limits on running a unit (docs/abi.md, "Limits"). */
export const RUN_LIMITS: Readonly<{ timeoutMs: number; maxOutput: number; maxMemory: number }>;
/** How long a poll loop runs between two yields to the event loop, ms. */
export const YIELD_MS: number;

export interface Limits {
  snapshot: number;
  index: number;
  signature: number;
  schema: number;
  manifest: number;
  artifact: number;
  /** The largest hinted schema pack, bytes (docs/registry.md, "Hints"). */
  schemaPack: number;
}

/** Stable codes of MoltError (docs/js.md lists what each means). */
export type MoltErrorCode =
  | 'ABI_MISMATCH' | 'ABI_VIOLATION' | 'ALLOC_FAILED' | 'CALL_FAILED' | 'CANCELLED' | 'COMPILE_FAILED'
  | 'CRYPTO_UNAVAILABLE' | 'DIGEST_MISMATCH' | 'ENVELOPE_INVALID' | 'EXPIRED' | 'FAST_FORWARD' | 'FETCH_FAILED'
  | 'FORMAT_UNSUPPORTED' | 'IMPORTS_REFUSED' | 'INIT_FAILED' | 'INSTANTIATE_FAILED' | 'INVALID_INPUT'
  | 'INVALID_OUTPUT' | 'KEY_INVALID' | 'MEMORY_LIMIT' | 'METADATA_INVALID' | 'NOT_FOUND' | 'OPTIONS_INVALID'
  | 'OUTPUT_LIMIT' | 'POLICY_INVALID' | 'ROLLBACK' | 'SCHEMA_INVALID' | 'SCHEMA_MISMATCH' | 'SIGNATURE_INVALID'
  | 'SIGNATURE_MALFORMED' | 'SIZE_MISMATCH' | 'THRESHOLD' | 'TIMEOUT' | 'TRAP' | 'TRUSTED_COMMENT_MISMATCH'
  | 'UNIT_BROKEN' | 'UNIT_CLOSED' | 'UNIT_RUNTIME' | 'UNIT_VALIDATION' | 'UNKNOWN_FUNCTION' | 'UNSUPPORTED_ALGORITHM'
  | 'UNSUPPORTED_CODEC' | 'UNTRUSTED_KEY' | 'WORKER_FAILED' | 'WRONG_UNIT' | 'YANKED';

/** An error from the Molt host: `code` is stable, `message` is for people. */
export class MoltError extends Error {
  constructor(code: string, message: string, details?: Record<string, unknown>);
  name: 'MoltError';
  code: MoltErrorCode | string;
  /** For errors from running a unit: the class of docs/abi.md. */
  class?: 'validation' | 'runtime' | 'cancellation';
  /** For errors from running a unit: the status code 1-7 of docs/abi.md. */
  unitCode?: number;
  /** The field that failed, dotted (validation errors). */
  path?: string;
  expected?: unknown;
  found?: unknown;
  url?: string;
  status?: number;
  polls?: number;
  unitMessage?: string;
  unit?: { class: string; code: number; message: string; path?: string };
  [detail: string]: unknown;
}

/** A float on the wire: the validator wraps floats so ints and floats stay apart. */
export class Float {
  constructor(value: number);
  value: number;
}

/** A MsgPack str whose bytes are not UTF-8, as decodeMsgpack returns it. */
export class NotUtf8 {
  constructor(bytes: Uint8Array);
  bytes: Uint8Array;
}

export type Bytes = Uint8Array | ArrayBuffer | string;

export function toHex(bytes: Uint8Array): string;
export function toBase64(bytes: Uint8Array): string;
export function formatBytes(n: number): string;
/** SHA-256 of `data`, written `sha256:<64 lowercase hex>`. */
export function sha256(data: Bytes): Promise<string>;

export interface PublicKey { keyId: Uint8Array; keyIdHex: string; publicKey: Uint8Array; text: string }
export function parsePublicKey(text: string): PublicKey;
export interface Signature {
  algorithm: string; keyId: Uint8Array; keyIdHex: string; signature: Uint8Array;
  trustedComment: string; globalSignature: Uint8Array;
}
export function parseSignature(sig: string | Uint8Array, where?: string): Signature;
export function verifySignature(data: Uint8Array | string, sigText: string | Uint8Array, trustedKeys: PublicKey[], where?: string):
  Promise<{ keyIdHex: string; trustedComment: string }>;

export interface FetchProgress { loaded: number; total: number | null; url: string }
export function fetchBytes(url: string | URL, opts?: {
  expectedSize?: number; maxSize?: number; onProgress?: (p: FetchProgress) => void;
  fetch?: typeof fetch; what?: string;
}): Promise<Uint8Array>;

/** A schema type (docs/schemas.md). */
export type SchemaType =
  | 'bool' | 'int' | 'float' | 'string' | 'bytes'
  | { list: SchemaType } | { map: SchemaType } | { nullable: SchemaType } | { enum: string[] }
  | { record: Array<{ name: string; type: SchemaType; optional?: boolean }> };
/** A schema document (docs/schemas.md). */
export interface Schema { id: string; version: number; codec?: 'msgpack' | 'arrow'; doc?: string; type: SchemaType }
export function checkSchema(doc: unknown, where?: string): Schema;
export function canonicalJson(v: unknown): string;
export function validate(type: SchemaType, value: unknown, opts?: { direction?: 'encode' | 'decode'; code?: string; where?: string }): any;

export function encodeMsgpack(v: unknown): Uint8Array;
export function decodeMsgpack(bytes: Uint8Array): unknown;
export function encodeEnvelope(schemaId: string, schemaVersion: number, payload: Uint8Array): Uint8Array;
export function decodeEnvelope(bytes: Uint8Array, where?: string): { schemaId: string; schemaVersion: number; payload: Uint8Array };

/** Checks an Arrow IPC stream against an arrow-codec schema's columns (docs/arrow.md). */
export function checkArrowStream(bytes: Uint8Array, schema: Schema, where?: string, code?: 'INVALID_INPUT' | 'INVALID_OUTPUT' | string): {
  columns: Array<{ name: string; type: 'bool' | 'int' | 'float' | 'string'; nullable: boolean }>;
  batches: number;
  rows: number;
};

// ---------------------------------------------------------------- cache

/** Verified artifact bytes by digest ("sha256:<hex>"); re-verified by the host on every read. */
export interface ByteCache {
  kind?: string;
  get(digest: string): Promise<Uint8Array | ArrayBuffer | undefined> | Uint8Array | ArrayBuffer | undefined;
  put(digest: string, bytes: Uint8Array): Promise<void> | void;
  delete?(digest: string): Promise<void> | void;
}
export function memoryCache(): ByteCache;
export function cacheStorageCache(name?: string): ByteCache;
export function indexedDbCache(name?: string): ByteCache;
export function directoryCache(dir: string): ByteCache;
/** Forgets every compiled module kept in memory. */
export function clearModuleCache(): void;

// ---------------------------------------------------------------- registry

export interface TrustPolicy {
  format: 1;
  keys: Array<{ id: string; publicKey?: string; pub?: string; names?: string[]; expires?: string; revoked?: boolean }>;
  thresholds?: Record<string, number>;
  snapshot: { keys: string[]; threshold?: number };
}
export function checkPolicy(p: TrustPolicy): unknown;

/** Remembers the highest snapshot version seen per registry URL (rollback defence). */
export interface VersionStore {
  get(url: string): any;
  set(url: string, v: any): void | Promise<void>;
}

export interface RegistryOptions {
  url: string | URL;
  trustedKeys?: string[];
  policy?: TrustPolicy;
  mirrors?: Array<string | URL>;
  store?: VersionStore;
  fetch?: typeof fetch;
  cache?: boolean | ByteCache;
  cacheDir?: string;
}
export interface Registry {
  readonly url: string;
  readonly sources: string[];
  snapshotVersion: number;
  [internal: string]: unknown;
}
export function openRegistry(opts: RegistryOptions): Registry;

export type LoadStage = 'snapshot' | 'index' | 'signature' | 'manifest' | 'depends' | 'schemas' | 'artifact' | 'cache' | 'compile' | 'init' | 'ready';
export interface LoadProgress {
  stage: LoadStage;
  loaded?: number;
  total?: number | null;
  url?: string;
  /** On the artifact stage when it came from a cache. */
  cached?: 'module' | 'bytes';
  /** On the cache stage: why a cached entry was refused. */
  refused?: string;
  dependency?: string;
  fetched?: boolean;
}

export interface RunOptions {
  stepBudget?: number;
  timeoutMs?: number;
  maxOutput?: number;
  maxMemory?: number;
}
export interface LoadOptions extends RunOptions {
  name: string;
  version: string;
  target?: 'wasm32-wasi' | string;
  onProgress?: (p: LoadProgress) => void;
  limits?: Partial<Limits>;
  allowYanked?: boolean;
  /** Run the unit in its own module Worker (default: true in browser pages, false in Node). */
  worker?: boolean;
  /** The Worker's module script (default: molt.js itself). */
  workerUrl?: string | URL;
  cache?: boolean | ByteCache;
  cacheDir?: string;
}
export function loadUnit(registry: Registry, req: LoadOptions): Promise<Unit>;

export interface LocalOptions extends RunOptions {
  bytes: Uint8Array | ArrayBuffer;
  manifest: string | Uint8Array | object;
  schemas?: Array<string | Uint8Array | object>;
  where?: string;
  worker?: boolean;
  workerUrl?: string | URL;
}
export function instantiateLocal(o: LocalOptions): Promise<Unit>;

// ---------------------------------------------------------------- units

export interface UnitMetrics {
  bytesFetched: number;
  fetchMs: number;
  verifyMs: number;
  compileMs: number;
  initMs: number;
  totalMs: number;
  artifactBytes: number;
  /** Where the artifact came from: a compiled module in memory, bytes from the cache, or the network. */
  cached: 'module' | 'bytes' | false;
  /** Why a cached entry was refused (and fetched again), or null. */
  cacheRefused: string | null;
  worker: boolean;
}
export interface UnitFunction { id: number; name: string; input: Schema; output: Schema }
export interface CallOptions { timeoutMs?: number; maxOutput?: number }
export interface Task<T> { result: Promise<T>; cancel(): void }

export class Unit {
  /** Units are made by loadUnit and instantiateLocal. */
  private constructor();
  readonly name: string;
  readonly version: string;
  readonly target: string;
  readonly manifest: any;
  readonly manifestDigest: string | null;
  readonly signedBy: string | null;
  readonly functions: Map<string, UnitFunction>;
  readonly limits: { stepBudget: number | undefined; timeoutMs: number; maxOutput: number; maxMemory: number };
  readonly metrics: UnitMetrics;
  /** True when the unit runs in its own Worker. */
  readonly worker: boolean;
  readonly instances: number;
  /** Its wasm memory size now (bytes) and how many instances it has had. */
  stats(): Promise<{ memoryBytes: number; instances: number }>;
  /** Terminates the Worker (or drops the instance); later calls reject with UNIT_CLOSED. */
  close(): void;
  encodeRequest(functionName: string, value: unknown): Uint8Array;
  /** Resolves to the decoded output, or the Arrow IPC stream (Uint8Array) for an arrow-codec output. */
  call<T = any>(functionName: string, value: unknown, opts?: CallOptions): Task<T>;
  callEnvelope(functionId: number, envelope: Uint8Array | ArrayBuffer, opts?: CallOptions): Task<{ status: 1 | 2; envelope: Uint8Array }>;
}
