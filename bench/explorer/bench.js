// The benchmark page (driven by bench/explorer.mjs): the same operations on
// vega-datasets' flights-200k by four engines in one page. Everything it
// needs is on the local server: the site made by scripts/site (molt.js, the
// registry, data/) and node_modules linked as ../nm.
//
// window.B:
//   B.data()                     fetches the Arrow, JSON and CSV files once
//   B.start(engine)              that engine's start-up in this page → {ms, ...}
//   B.run(engine, op, n, warmup) n timed samples after `warmup` runs → {samples, check}
// Every op returns a check value; the driver compares them across engines.

import * as molt from '../molt.js';

const now = () => performance.now();
const OPS = ['filter', 'group', 'map', 'sort', 'parseCSV', 'parseJSON'];
const D = {};

async function get(path, as) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return as === 'text' ? r.text() : new Uint8Array(await r.arrayBuffer());
}

// The answers, in one form for every engine.
const groupCheck = (rows) => {
  // rows: [{distance, n, mean}] in any order.
  let count = 0, meanSum = 0;
  for (const r of rows) { count += Number(r.n); meanSum += Number(r.mean); }
  return `${rows.length} groups, ${count} rows, sum of means ${meanSum.toFixed(4)}`;
};
const sortCheck = (distances) => `${distances.length}: ${Array.from(distances, Number).join(',')}`;

// ---- plain JavaScript: row objects, and typed-array columns
const plain = {
  rows: null,
  async start() { this.rows = JSON.parse(D.json); return {}; },
  filter() { let c = 0; for (const r of this.rows) if (r.delay > 15) c++; return c; },
  group() {
    const m = new Map();
    for (const r of this.rows) {
      let g = m.get(r.distance);
      if (!g) m.set(r.distance, g = { distance: r.distance, n: 0, sum: 0 });
      g.n++; g.sum += r.delay;
    }
    return groupCheck(Array.from(m.values(), (g) => ({ distance: g.distance, n: g.n, mean: g.sum / g.n })));
  },
  map() { let s = 0; for (const r of this.rows) s += r.delay * 2 + 1; return s; },
  sort() {
    const s = this.rows.slice().sort((a, b) => a.distance - b.distance);
    return sortCheck(s.slice(1000, 1100).map((r) => r.distance));
  },
  parseCSV() { return parseCsvRows(D.csv).length; },
  parseJSON() { return JSON.parse(D.json).length; },
};

// A small RFC 4180 parser into row objects, numbers converted: what a page
// without a library would write.
function parseCsvRows(text) {
  const rows = [];
  let i = 0;
  const n = text.length;
  const record = () => {
    const f = [];
    for (;;) {
      let v = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          const q = text.indexOf('"', i);
          if (q < 0) throw new Error('unterminated quote');
          v += text.slice(i, q);
          i = q + 1;
          if (text[i] === '"') { v += '"'; i++; } else break;
        }
      } else {
        let j = i;
        while (j < n && text[j] !== ',' && text[j] !== '\n' && text[j] !== '\r') j++;
        v = text.slice(i, j);
        i = j;
      }
      f.push(v);
      if (text[i] === ',') { i++; continue; }
      if (text[i] === '\r') i++;
      if (text[i] === '\n') i++;
      return f;
    }
  };
  const head = record();
  while (i < n) {
    const f = record();
    const o = {};
    for (let k = 0; k < head.length; k++) {
      const v = f[k];
      o[head[k]] = v === '' || v === undefined ? null : (Number.isNaN(+v) ? v : +v);
    }
    rows.push(o);
  }
  return rows;
}

const typed = {
  delay: null, distance: null,
  async start() {
    const rows = JSON.parse(D.json);
    this.delay = Int32Array.from(rows, (r) => r.delay);
    this.distance = Int32Array.from(rows, (r) => r.distance);
    return {};
  },
  filter() { let c = 0; const d = this.delay; for (let i = 0; i < d.length; i++) if (d[i] > 15) c++; return c; },
  group() {
    const m = new Map(), d = this.delay, k = this.distance;
    for (let i = 0; i < d.length; i++) {
      let g = m.get(k[i]);
      if (!g) m.set(k[i], g = { n: 0, sum: 0 });
      g.n++; g.sum += d[i];
    }
    return groupCheck(Array.from(m, ([distance, g]) => ({ distance, n: g.n, mean: g.sum / g.n })));
  },
  map() { let s = 0; const d = this.delay; for (let i = 0; i < d.length; i++) s += d[i] * 2 + 1; return s; },
  sort() {
    const k = this.distance, ix = new Uint32Array(k.length);
    for (let i = 0; i < ix.length; i++) ix[i] = i;
    ix.sort((a, b) => k[a] - k[b] || a - b);
    return sortCheck(Array.from(ix.subarray(1000, 1100), (i) => k[i]));
  },
};

// ---- Arquero 8 (UMD build, global aq), table from the Arrow file
const arquero = {
  t: null,
  async start() {
    const t0 = now();
    await new Promise((res, rej) => {
      const s = document.createElement('script');
      s.src = '../nm/arquero/dist/arquero.min.js';
      s.onload = res;
      s.onerror = () => rej(new Error('cannot load arquero.min.js'));
      document.head.append(s);
    });
    const scriptMs = now() - t0;
    const t1 = now();
    this.t = globalThis.aq.fromArrow(D.arrow);
    return { scriptMs, tableMs: now() - t1 };
  },
  filter() { return this.t.filter('d => d.delay > 15').numRows(); },
  group() {
    const { op } = globalThis.aq;
    return groupCheck(this.t.groupby('distance').rollup({ n: op.count(), mean: op.mean('delay') }).objects());
  },
  map() {
    const { op } = globalThis.aq;
    return this.t.derive({ x: 'd => d.delay * 2 + 1' }).rollup({ s: op.sum('x') }).get('s', 0);
  },
  sort() { return sortCheck(this.t.orderby('distance').slice(1000, 1100).array('distance')); },
  parseCSV() { return globalThis.aq.fromCSV(D.csv).numRows(); },
  parseJSON() { return globalThis.aq.fromJSON(D.json).numRows(); },
};

// ---- DuckDB-wasm 1.32, EH bundle, in its own Worker
const duck = {
  db: null, c: null,
  async start() {
    const t0 = now();
    const duckdb = await import('../nm/@duckdb/duckdb-wasm/dist/duckdb-browser.mjs');
    const dist = new URL('../nm/@duckdb/duckdb-wasm/dist/', location.href).href;
    const worker = new Worker(dist + 'duckdb-browser-eh.worker.js');
    const db = new duckdb.AsyncDuckDB(new duckdb.VoidLogger(), worker);
    await db.instantiate(dist + 'duckdb-eh.wasm');
    const c = await db.connect();
    await c.query('SELECT 1');
    const startMs = now() - t0;
    Object.assign(this, { db, c, duckdb });
    // The table, from the Arrow file through apache-arrow (insertArrowTable).
    const arrow = await import('apache-arrow');
    const t1 = now();
    await c.insertArrowTable(arrow.tableFromIPC(D.arrow), { name: 'flights' });
    const tableMs = now() - t1;
    await db.registerFileBuffer('flights.csv', new TextEncoder().encode(D.csv));
    await db.registerFileBuffer('flights.json', D.jsonBytes.slice());
    return { startMs, tableMs };
  },
  async one(sql) { return (await this.c.query(sql)).toArray(); },
  async filter() { return Number((await this.one('SELECT count(*) AS n FROM flights WHERE delay > 15'))[0].n); },
  async group() {
    const rows = await this.one('SELECT distance, count(*) AS n, avg(delay) AS mean FROM flights GROUP BY distance');
    return groupCheck(rows.map((r) => ({ distance: r.distance, n: r.n, mean: r.mean })));
  },
  async map() { return Number((await this.one('SELECT sum(delay * 2 + 1) AS s FROM flights'))[0].s); },
  async sort() { return sortCheck((await this.one('SELECT * FROM flights ORDER BY distance LIMIT 100 OFFSET 1000')).map((r) => r.distance)); },
  async parseCSV() {
    await this.c.query("CREATE OR REPLACE TABLE csv AS SELECT * FROM read_csv('flights.csv')");
    const n = Number((await this.one('SELECT count(*) AS n FROM csv'))[0].n);
    await this.c.query('DROP TABLE csv');
    return n;
  },
  async parseJSON() {
    await this.c.insertJSONFromPath('flights.json', { name: 'js' });
    const n = Number((await this.one('SELECT count(*) AS n FROM js'))[0].n);
    await this.c.query('DROP TABLE js');
    return n;
  },
};

// ---- the explorer unit, through the JS host (a Worker when the host has one)
import { explorer } from './explorer-engine.js';

const ENGINES = { explorer, arquero, plain, typed, duckdb: duck };

window.B = {
  OPS,
  async data() {
    const t0 = now();
    const [arrow, jsonBytes, csv] = await Promise.all([get('../data/flights-200k.arrow'), get('../data/flights-200k.json'), get('../data/flights-200k.csv', 'text')]);
    Object.assign(D, { arrow, jsonBytes, json: new TextDecoder().decode(jsonBytes), csv, csvBytes: new TextEncoder().encode(csv) });
    return { ms: now() - t0, arrow: arrow.byteLength, json: jsonBytes.byteLength, csv: D.csvBytes.byteLength };
  },
  async start(engine, opts) { return ENGINES[engine].start(opts, D); },
  has(engine, op) { return typeof ENGINES[engine][op] === 'function'; },
  async run(engine, op, n, warmup) {
    const e = ENGINES[engine];
    let check;
    for (let i = 0; i < warmup; i++) check = await e[op]();
    const samples = [];
    for (let i = 0; i < n; i++) {
      const t = now();
      check = await e[op]();
      samples.push(now() - t);
    }
    return { samples, check };
  },
  async stats(engine) { return ENGINES[engine].stats?.(); },
  async gzip(engine) { return ENGINES[engine].gzip?.(); },
  molt,
};
document.getElementById('state').textContent = 'ready';
