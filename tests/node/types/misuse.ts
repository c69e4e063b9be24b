// Must NOT compile (tests/node/types.test.mjs): option values of the wrong type.
import { openRegistry, loadUnit } from '../../../runtime/js/molt.js';

const registry = openRegistry({ url: './registry/', trustedKeys: ['k'] });
export const a = loadUnit(registry, { name: 'hello', version: '0.1.0', worker: 'yes' });
export const b = loadUnit(registry, { name: 'hello', version: '0.1.0', cache: 'memory' });
export const c = loadUnit(registry, { name: 'hello', timeoutMs: '10' });
export async function d() { (await a).call('greet', {}, { timeoutMs: 'soon' }); }
