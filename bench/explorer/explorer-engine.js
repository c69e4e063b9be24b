// The explorer unit (explorer@0.1.0) as a benchmark engine: loaded as the
// demo page loads it (runtime/js/molt.js, a Worker when the host runs units
// in one), the table held in the unit behind a handle, one unit call per
// operation (docs/explorer.md): results come back as MsgPack values.
import { openRegistry, loadUnit, sha256 } from '../molt.js';
import { arrowStream } from '../formats.js';

const UNIT = { name: 'explorer', version: '0.1.0', target: 'wasm32-wasi' };
const STEP_BUDGET = 8192; // as the demo page (demo/app.js) loads it
const now = () => performance.now();
let D;

async function registry() {
  const keys = await (await fetch('../trusted-keys.json')).json();
  return openRegistry({ url: '../registry/', trustedKeys: keys });
}

const groupCheck = (distance, n, mean) => {
  let count = 0, meanSum = 0;
  for (let i = 0; i < n.length; i++) { count += Number(n[i]); meanSum += Number(mean[i]); }
  return `${distance.length} groups, ${count} rows, sum of means ${meanSum.toFixed(4)}`;
};
const col = (r, name) => { const d = r.data[r.columns.findIndex((c) => c.name === name)]; return d.int ?? d.float ?? d.string ?? d.bool; };

export const explorer = {
  unit: null, handle: 0, reg: null,
  async start(opts = {}, data) {
    D = data;
    this.reg ??= await registry();
    const unit = await loadUnit(this.reg, { ...UNIT, stepBudget: STEP_BUDGET });
    const m = { ...unit.metrics };
    if (opts.only === 'start') {
      if (this.unit) unit.close?.(); else this.unit = unit;
      return m;
    }
    this.unit = unit;
    const t = now();
    const r = await unit.call('load', { format: 'arrow', data: arrowStream(D.arrow) }).result;
    m.tableMs = now() - t;
    this.handle = r.handle;
    return m;
  },
  call(fn, v) { return this.unit.call(fn, v).result; },
  async filter() {
    return (await this.call('filter', { handle: this.handle, where: { nodes: [{ op: 'gt', column: 'delay', int: 15 }] }, keep: false })).rows;
  },
  async group() {
    const r = await this.call('aggregate', { handle: this.handle, by: ['distance'], aggs: [{ op: 'count', as: 'n' }, { op: 'mean', column: 'delay', as: 'mean' }], keep: false, format: 'msgpack' });
    return groupCheck(col(r, 'distance'), col(r, 'n'), col(r, 'mean'));
  },
  async map() {
    const expr = { nodes: [{ op: 'col', column: 'delay' }, { op: 'lit', int: 2 }, { op: 'mul', args: [0, 1] }, { op: 'lit', int: 1 }, { op: 'add', args: [2, 3] }] };
    const r = await this.call('run', { handle: this.handle, steps: [{ op: 'map', columns: [{ name: 'x', expr }] }, { op: 'aggregate', aggs: [{ op: 'sum', column: 'x', as: 's' }] }], format: 'msgpack' });
    return Number(col(r, 's')[0]);
  },
  async sort() {
    const r = await this.call('paginate', { handle: this.handle, sort: [{ column: 'distance' }], offset: 1000, limit: 100, format: 'msgpack' });
    const d = col(r, 'distance');
    return `${d.length}: ${Array.from(d, Number).join(',')}`;
  },
  async parse(format, data) {
    const r = await this.call('load', { format, data });
    await this.call('drop', { handle: r.handle });
    return r.rows;
  },
  parseCSV() { return this.parse('csv', D.csvBytes); },
  parseJSON() { return this.parse('json', D.jsonBytes); },
  async stats() { return this.unit?.stats?.(); },
  // The verified module's gzip size, as the demo page measures it.
  async gzip() {
    const digest = this.unit.manifest.artifact.digest;
    const bytes = new Uint8Array(await (await fetch(`../registry/blobs/sha256/${digest.slice(7)}`)).arrayBuffer());
    if (await sha256(bytes) !== digest) throw new Error(`the artifact fetched again hashes to ${await sha256(bytes)}, not ${digest}`);
    return (await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer()).byteLength;
  },
};
