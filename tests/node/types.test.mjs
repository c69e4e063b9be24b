// runtime/js/molt.d.ts against the TypeScript compiler (node_modules/.bin/tsc,
// pinned in package.json): tests/node/types/use.ts, a program using the whole
// public API, must compile with --strict; tests/node/types/misuse.ts, which
// passes options of the wrong type, must not, with one error per misuse.
// Also checks that the .d.ts declares every export of molt.js.
//
//   node tests/node/types.test.mjs        ends with "N passed, M failed"

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as molt from '../../runtime/js/molt.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSC = join(ROOT, 'node_modules/.bin/tsc');
const DIR = join(ROOT, 'tests/node/types');
let passed = 0, failed = 0;
function test(name, f) {
  try { f(); passed++; console.log(`ok - ${name}`); } catch (e) { failed++; console.log(`not ok - ${name}\n  ${String(e.message).replace(/\n/g, '\n  ')}`); }
}
function assert(c, msg) { if (!c) throw new Error(msg); }

if (!existsSync(TSC)) {
  console.log(`not ok - ${TSC} is missing: run npm ci (typescript is a devDependency)\n0 passed, 1 failed`);
  process.exit(1);
}
const tsc = (file) => spawnSync(TSC, ['--noEmit', '--strict', '--target', 'es2022', '--module', 'es2022', '--moduleResolution', 'bundler',
  '--lib', 'es2022,dom', file], { cwd: DIR, encoding: 'utf8' });

test('use.ts (the whole API, --strict) compiles with no error', () => {
  const r = tsc('use.ts');
  assert(r.status === 0 && r.stdout === '', `tsc exited ${r.status}:\n${r.stdout}${r.stderr}`);
});

test('misuse.ts (options of the wrong type) fails with one error per misuse', () => {
  const r = tsc('misuse.ts');
  assert(r.status === 2, `tsc exited ${r.status}, expected 2:\n${r.stdout}${r.stderr}`);
  const want = [
    "misuse.ts(5,72): error TS2322: Type 'string' is not assignable to type 'boolean | undefined'.",
    "misuse.ts(6,72): error TS2322: Type 'string' is not assignable to type 'boolean | ByteCache | undefined'.",
    "misuse.ts(7,54): error TS2322: Type 'string' is not assignable to type 'number'.",
    "misuse.ts(8,59): error TS2322: Type 'string' is not assignable to type 'number'.",
  ];
  const got = r.stdout.trim().split('\n');
  assert(JSON.stringify(got) === JSON.stringify(want), `expected:\n${want.join('\n')}\nfound:\n${got.join('\n')}`);
});

test('molt.d.ts declares every export of molt.js', () => {
  const dts = readFileSync(join(ROOT, 'runtime/js/molt.d.ts'), 'utf8');
  const missing = Object.keys(molt).filter((k) => !new RegExp(`export (declare )?(const|function|class) ${k}\\b`).test(dts));
  assert(!missing.length, `not declared: ${missing.join(', ')}`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
