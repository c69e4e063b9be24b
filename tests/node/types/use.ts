// Compiled by tests/node/types.test.mjs with tsc --noEmit --strict: a program
// using the whole public API of runtime/js/molt.js through molt.d.ts.
import {
  openRegistry, loadUnit, instantiateLocal, MoltError, memoryCache, directoryCache, clearModuleCache,
  checkArrowStream, fetchBytes, formatBytes, sha256, encodeEnvelope, decodeEnvelope, encodeMsgpack,
  validate, RUN_LIMITS, YIELD_MS, type LoadProgress, type Unit, type ByteCache, type Schema,
} from '../../../runtime/js/molt.js';

const cache: ByteCache = memoryCache();
const registry = openRegistry({ url: './registry/', trustedKeys: ['untrusted comment: x\nRWQ...'], cache });

export async function main(): Promise<string> {
  const unit: Unit = await loadUnit(registry, {
    name: 'hello', version: '0.1.0', target: 'wasm32-wasi', worker: true, cache: false, timeoutMs: 1000,
    onProgress(p: LoadProgress) {
      if (p.stage === 'artifact' && p.loaded !== undefined) console.log(p.loaded, p.total ?? '?', p.cached ?? 'network');
    },
  });
  const m = unit.metrics;
  const how: 'module' | 'bytes' | false = m.cached;
  console.log(how, m.fetchMs + m.verifyMs + m.compileMs + m.initMs, m.totalMs, m.cacheRefused?.length);
  const task = unit.call<{ greeting: string }>('greet', { name: 'Ada' }, { timeoutMs: 50 });
  setTimeout(() => task.cancel(), 10);
  try {
    const { greeting } = await task.result;
    return greeting;
  } catch (e) {
    if (e instanceof MoltError && e.code === 'CANCELLED') return `cancelled (${e.class}, ${e.unitCode}, ${e.path ?? ''})`;
    throw e;
  } finally {
    const { memoryBytes, instances } = await unit.stats();
    console.log(formatBytes(memoryBytes), instances, unit.worker, unit.instances);
    const raw = await unit.callEnvelope(1, unit.encodeRequest('greet', { name: 'x' })).result;
    const env = decodeEnvelope(raw.envelope);
    console.log(raw.status === 1 ? env.schemaId : 'error');
    unit.close();
  }
}

export async function local(bytes: Uint8Array, manifest: string, schemas: string[]): Promise<number> {
  const u = await instantiateLocal({ bytes, manifest, schemas, stepBudget: 1000, maxMemory: 1 << 24, worker: false });
  const table: Schema = u.functions.get('rows')!.output;
  const stream: Uint8Array = await u.call<Uint8Array>('rows', new Uint8Array(0)).result;
  const info = checkArrowStream(stream, table, 'rows', 'INVALID_OUTPUT');
  const b = await fetchBytes(new URL('https://127.0.0.1/x'), { maxSize: 10, onProgress: ({ loaded, total }) => void (loaded + (total ?? 0)) });
  console.log(await sha256(b), encodeEnvelope('a.b', 1, encodeMsgpack(validate('int', 1))), RUN_LIMITS.timeoutMs, YIELD_MS);
  clearModuleCache();
  directoryCache('/tmp/x');
  return info.rows + info.batches + info.columns.length;
}
