#!/usr/bin/env bash
# Arrow IPC streams, C against the reference implementation (npm
# apache-arrow), both ways: C writes and apache-arrow reads every value back;
# apache-arrow writes and C reads (and re-writes) every value; then malformed
# streams, each refused with exit 1 and a precise message, never a crash.
# ARROW_TOOL picks the binary, e.g. the ASan+UBSan build's:
#   ARROW_TOOL=build/asan/tests/arrow_tool bash tests/cli/arrow.sh
. "$(dirname "$0")/lib.sh"

TOOL=${ARROW_TOOL:-$here/build/tests/arrow_tool}
# A sanitizer report must not pass for a refusal (exit 1).
export ASAN_OPTIONS="exitcode=86:${ASAN_OPTIONS:-}" UBSAN_OPTIONS="exitcode=87:${UBSAN_OPTIONS:-}"
export NODE_PATH=$here/node_modules
if [ ! -x "$TOOL" ]; then
  fail "no arrow_tool at $TOOL: build it (cmake --build build) or set ARROW_TOOL"
  finish
  exit
fi
if [ ! -d "$here/node_modules/apache-arrow" ]; then
  fail "the npm package apache-arrow is missing: run npm install in $here"
  finish
  exit
fi

cat >"$T/arrow.cjs" <<'JS'
// Helpers around apache-arrow for tests/cli/arrow.sh (argv: command, files).
const A = require('apache-arrow');
const fs = require('fs');
const { Message } = require('apache-arrow/fb/message');
const { RecordBatch: FbRecordBatch } = require('apache-arrow/fb/record-batch');
const { ByteBuffer } = require('flatbuffers');

// Values compared: int64 as strings, as arrow_tool prints them, NaN and
// infinities as strings, nulls as null; and -0 as "-0", which JSON would
// turn into 0.
const canon = (v) => {
  if (v === null || v === undefined) return null;
  if (Object.is(v, -0)) return '-0';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && !Number.isFinite(v))
    return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  return v;
};
const typeName = (t) =>
  A.DataType.isInt(t) && t.isSigned && (t.bitWidth === 32 || t.bitWidth === 64) ? `int${t.bitWidth}`
  : A.DataType.isFloat(t) && t.precision === A.Precision.DOUBLE ? 'float64'
  : A.DataType.isBool(t) ? 'bool' : A.DataType.isUtf8(t) ? 'utf8' : `unsupported ${t}`;

// The table arrow_tool writes (tests/tools/arrow_tool.c), column by column.
const C_COLUMNS = [['i32', 'int32', true], ['i64', 'int64', true], ['f64', 'float64', true],
  ['flag', 'bool', true], ['name', 'utf8', true], ['id', 'int32', false]];
const C_ROWS = [
  [-2147483648, '-9223372036854775808', 'NaN', true, '', 0],
  [-1, null, -0, false, 'héllo', 1],
  [null, '0', null, null, null, 2],
  [0, '9007199254740993', 'Infinity', true, '日本語 🎉', 3],
  [2147483647, '9223372036854775807', 0.1, false, 'quote" backslash\\ newline\n tab\t', 4],
  [-5000, null, '-Infinity', true, 'r0', 5],
  [-4000, '-9223372036854775807', 5e-324, false, 'r1', 6],
  [-3000, '1000000000000000000', 1.7976931348623157e308, true, 'r2', 7],
  [null, '-1', -2.2250738585072014e-308, false, 'r3', 8],
  [-1000, '1', 1.5, true, '🦀', 9],
  [0, '4294967296', -0, false, '', 10],
  [1000, '-4294967297', 3.141592653589793, true, 'ctl\u0001\u001f', 11],
  [2000, '123456789012345678', 1e-7, false, null, 12],
  [3000, '0', 123456789.125, null, 'r8', 13],
  [null, '42', -1e21, false, 'éé', 14],
  [5000, '-42', null, true, 'r10', 15],
  [null, null, null, null, null, 16],
  [null, null, null, null, null, 17],
  [null, null, null, null, null, 18],
];
const C_EXPECTED = {
  columns: C_COLUMNS.map(([name, type, nullable]) => ({ name, type, nullable })),
  batches: [5, 0, 11, 3],
  rows: C_ROWS.map((r) => Object.fromEntries(C_COLUMNS.map(([n], i) => [n, canon(r[i])]))),
};

// A table made here, written by apache-arrow in four batches (one empty).
function nodeTable() {
  const fields = [new A.Field('id', new A.Int32(), false), new A.Field('big', new A.Int64(), true),
    new A.Field('x', new A.Float64(), true), new A.Field('ok', new A.Bool(), true),
    new A.Field('txt', new A.Utf8(), true), new A.Field('ünï', new A.Utf8(), true)];
  const schema = new A.Schema(fields);
  const batches = [
    [[1, 2, 3, 4], [-(2n ** 63n), null, 2n ** 63n - 1n, 9007199254740993n],
     [NaN, -0, null, Infinity], [true, null, false, true], ['', 'a', null, 'ß✓🙂'],
     [null, null, null, null]],
    [[], [], [], [], [], []],
    [[5, 6, 7, 8, 9, 10, 11, 12, 13], [0n, -1n, 1n, null, 42n, -(2n ** 62n), 2n ** 40n, 7n, null],
     [-Infinity, 0.1, 1e-300, -1e300, 2.5, null, 5e-324, -0, 42],
     [false, false, true, null, true, true, false, null, true],
     ['tab\there', 'quote"', 'back\\slash', '\u0000nul', 'é', null, '日本', '', 'x'.repeat(300)],
     ['u', null, 'v', null, 'w', null, 'x', null, 'y']],
    [[14], [null], [null], [null], [null], ['z']],
  ].map((cols) => {
    const vs = cols.map((c, i) => A.vectorFromArray(c, fields[i].type));
    return new A.RecordBatch(schema, A.makeData({ type: new A.Struct(fields), length: cols[0].length,
      nullCount: 0, children: vs.map((v) => v.data[0]) }));
  });
  return new A.Table(batches);
}

// Columns, batch lengths and rows of an apache-arrow table, canonical.
function describe(t) {
  const columns = t.schema.fields.map((f) => ({ name: f.name, type: typeName(f.type), nullable: f.nullable }));
  const rows = [];
  for (const b of t.batches)
    for (let r = 0; r < b.numRows; r++)
      rows.push(Object.fromEntries(columns.map((c, i) => [c.name, canon(b.getChildAt(i).get(r))])));
  return { columns, batches: t.batches.map((b) => b.numRows), rows };
}

// Compares `got` to `want` (columns, batches, rows; any may be missing from got).
function compare(got, want) {
  const diffs = [];
  for (const k of ['columns', 'batches'])
    if (k in got && JSON.stringify(got[k]) !== JSON.stringify(want[k]))
      diffs.push(`${k}: got ${JSON.stringify(got[k])}, want ${JSON.stringify(want[k])}`);
  if ('rows' in got) {
    if (got.rows.length !== want.rows.length) diffs.push(`got ${got.rows.length} rows, want ${want.rows.length}`);
    let values = 0;
    got.rows.forEach((row, r) => {
      const w = want.rows[r] || {};
      if (JSON.stringify(Object.keys(row)) !== JSON.stringify(Object.keys(w)))
        diffs.push(`row ${r}: columns ${Object.keys(row)}, want ${Object.keys(w)}`);
      for (const k of Object.keys(w)) {
        values++;
        if (!Object.is(row[k], w[k])) diffs.push(`row ${r} ${k}: got ${JSON.stringify(row[k])}, want ${JSON.stringify(w[k])}`);
      }
    });
    if (!diffs.length) console.log(`${got.rows.length} rows, ${values} values equal`);
  }
  if (diffs.length) {
    console.log(diffs.slice(0, 10).join('\n'));
    process.exit(1);
  }
}

// The messages of a stream: where each starts, its metadata and body.
function frames(bytes) {
  const b = Buffer.from(bytes), out = [];
  for (let pos = 0; pos < b.length;) {
    const len = b.readInt32LE(pos + 4);
    if (len === 0) { out.push({ start: pos, eos: true }); break; }
    const meta = b.subarray(pos + 8, pos + 8 + len);
    const m = Message.getRootAsMessage(new ByteBuffer(meta));
    const f = { start: pos, meta: pos + 8, metalen: len, body: pos + 8 + len, type: m.headerType() };
    f.end = f.body + Number(m.bodyLength());
    if (f.type === 3) {
      const rb = m.header(new FbRecordBatch());
      f.buffers = [];
      for (let i = 0; i < rb.buffersLength(); i++) {
        const s = rb.buffers(i);
        f.buffers.push({ at: f.meta + s.bb_pos, data: f.body + Number(s.offset()), length: Number(s.length()) });
      }
    }
    out.push(f);
    pos = f.end;
  }
  return out;
}

const [cmd, ...args] = process.argv.slice(2);
const readJson = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
if (cmd === 'expected-c') {
  fs.writeFileSync(args[0], JSON.stringify(C_EXPECTED));
} else if (cmd === 'write-node') {
  const t = nodeTable();
  fs.writeFileSync(args[0], A.tableToIPC(t, 'stream'));
  fs.writeFileSync(args[1], JSON.stringify(describe(t)));
} else if (cmd === 'check-arrow') { // read a stream with apache-arrow
  compare(describe(A.tableFromIPC(fs.readFileSync(args[0]))), readJson(args[1]));
} else if (cmd === 'check-rows') { // arrow_tool read's JSON lines
  const lines = fs.readFileSync(args[0], 'utf8').split('\n').filter((l) => l);
  const rows = lines.map((l) => Object.fromEntries(Object.entries(JSON.parse(l)).map(([k, v]) => [k, canon(v)])));
  compare({ rows }, readJson(args[1]));
} else if (cmd === 'check-info') { // arrow_tool info's line
  compare(readJson(args[0]), readJson(args[1]));
} else if (cmd === 'rewrite') { // apache-arrow reads and writes again
  fs.writeFileSync(args[1], A.tableToIPC(A.tableFromIPC(fs.readFileSync(args[0])), 'stream'));
} else if (cmd === 'frames') {
  console.log(JSON.stringify(frames(fs.readFileSync(args[0]))));
} else {
  console.error(`arrow.cjs: unknown command ${cmd}`);
  process.exit(2);
}
JS
js() { node "$T/arrow.cjs" "$@"; }

# --- C writes, apache-arrow reads ------------------------------------------
run "$TOOL" write "$T/c.arrows"
expect "arrow_tool write" 0
js expected-c "$T/c.json"
run js check-arrow "$T/c.arrows" "$T/c.json"
expect "apache-arrow reads every value C wrote (4 batches, one empty)" 0 "19 rows, 114 values equal"
run "$TOOL" read "$T/c.arrows"
printf '%s\n' "$out" >"$T/c.jsonl"
expect "C reads back what it wrote" 0
run js check-rows "$T/c.jsonl" "$T/c.json"
expect "... every value equal" 0 "19 rows, 114 values equal"
run js rewrite "$T/c.arrows" "$T/cj.arrows"
expect "apache-arrow re-writes C's stream" 0
run "$TOOL" read "$T/cj.arrows"
printf '%s\n' "$out" >"$T/cj.jsonl"
run js check-rows "$T/cj.jsonl" "$T/c.json"
expect "C reads apache-arrow's re-write of it" 0 "19 rows, 114 values equal"

# --- apache-arrow writes, C reads ------------------------------------------
run js write-node "$T/n.arrows" "$T/n.json"
expect "apache-arrow writes a table (tableToIPC, stream)" 0
run "$TOOL" info "$T/n.arrows"
printf '%s\n' "$out" >"$T/n.info"
expect "C reads apache-arrow's schema" 0 '{"name":"id","type":"int32","nullable":false}'
run js check-info "$T/n.info" "$T/n.json"
expect "... columns, types, nullability and batch lengths equal" 0
run "$TOOL" read "$T/n.arrows"
printf '%s\n' "$out" >"$T/n.jsonl"
expect "C reads apache-arrow's batches" 0
run js check-rows "$T/n.jsonl" "$T/n.json"
expect "... every value equal" 0 "14 rows, 84 values equal"
run "$TOOL" copy "$T/n.arrows" "$T/nc.arrows"
expect "C re-writes apache-arrow's stream from the reader's columns" 0
run js check-arrow "$T/nc.arrows" "$T/n.json"
expect "apache-arrow reads C's re-write, every value equal" 0 "14 rows, 84 values equal"
run "$TOOL" validate "$T/n.arrows" 'id:int32,big:int64?,x:float64?,ok:bool?,txt:utf8?,ünï:utf8?'
expect "validate: the stream matches its columns" 0 "14 rows"
run "$TOOL" validate "$T/n.arrows" 'id:int32,big:int64?,x:float64?,ok:bool?,txt:utf8,ünï:utf8?'
expect "validate: a null where the schema allows none" 1 \
  "message 1 (record batch 0), column 4 'txt', row 2: expected a value (the column is not nullable), found null (row 2 of the table)"
run "$TOOL" validate "$T/n.arrows" 'id:int64,big:int64?'
expect "validate: a type mismatch" 1 "message 0 (schema), column 0: expected 'id' int64, found 'id' int32"

# --- malformed streams ------------------------------------------------------
# Each is refused with exit 1, a message naming the message, column, row and
# byte it is about, and no sanitizer report.
js frames "$T/c.arrows" >"$T/frames.json"
f() { node -e "const f = require('$T/frames.json'); console.log($1)"; }
size=$(stat -c %s "$T/c.arrows")
refused() { # NAME FILE TEXT
  run "$TOOL" read "$2"
  expect "$1" 1 "$3"
  case "$err" in *Sanitizer*|*"runtime error"*) fail "$1: sanitizer report: ${err:0:300}" ;; esac
}
cut_at() { head -c "$1" "$T/c.arrows" >"$T/cut.arrows"; }
# patch OFFSET HEX: overwrites bytes of a copy of c.arrows (little-endian hex).
patch() {
  cp "$T/c.arrows" "$T/bad.arrows"
  printf "$(echo "$2" | sed 's/../\\x&/g')" | dd of="$T/bad.arrows" bs=1 seek="$1" conv=notrunc status=none
}
le32() { printf '%08x' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)/\4\3\2\1/'; }
le64() { printf '%016x' "$1" | sed 's/\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)\(..\)/\8\7\6\5\4\3\2\1/'; }

cut_at 0
refused "empty input" "$T/cut.arrows" "message 0, byte 0: expected a schema message, found the end of the stream"
for k in 1 2 3 4; do
  at=$(f "f[$k].start")
  cut_at "$at"
  refused "truncated at the boundary before message $k" "$T/cut.arrows" \
    "message $k, byte $at: the stream ends without the end-of-stream marker (0xffffffff 0x00000000): truncated?"
done
for k in 0 1 2 3; do
  at=$(f "f[$k].meta + 8")
  cut_at "$at"
  refused "truncated inside the metadata of message $k" "$T/cut.arrows" \
    "message $k, byte $(f "f[$k].start + 4"): metadata length $(f "f[$k].metalen") runs past the end of the stream (8 bytes left)"
done
for k in 1 3; do
  at=$(f "f[$k].body + 20")
  cut_at "$at"
  refused "truncated in the middle of the body of message $k" "$T/cut.arrows" \
    "message $k (record batch $((k - 1))), byte $(f "f[$k].body"): the message body is $(f "f[$k].end - f[$k].body") bytes, past the end of the stream (20 bytes left)"
done
cut_at $((size - 4))
refused "truncated inside the end-of-stream marker" "$T/cut.arrows" \
  "message 5, byte $((size - 8)): the stream ends 4 bytes into a message prefix"
cut_at 3
refused "truncated inside the first prefix" "$T/cut.arrows" "message 0, byte 0: the stream ends 3 bytes into a message prefix"

at=$(f "f[1].start + 4")
patch "$at" "$(le32 2147483632)"
refused "a metadata length pointing past the end" "$T/bad.arrows" \
  "message 1, byte $at: metadata length 2147483632 runs past the end of the stream ($((size - at - 4)) bytes left)"
patch 8 "$(le32 2147483647)"
refused "a flatbuffer offset out of range" "$T/bad.arrows" \
  "message 0, byte 8: flatbuffer offset to Message points to 2147483647, outside the $(f "f[0].metalen")-byte metadata"
at=$(f "f[3].buffers[0].at + 8")
patch "$at" "$(le64 1)"
refused "a validity bitmap shorter than the row count" "$T/bad.arrows" \
  "message 3 (record batch 2), column 0 'i32', byte $(f "f[3].buffers[0].data"): the validity bitmap is 1 bytes, expected at least 2 for 11 rows"
at=$(f "f[3].buffers[9].data")
patch $((at + 8)) "$(le32 0)"
refused "utf8 offsets going backwards" "$T/bad.arrows" \
  "message 3 (record batch 2), column 4 'name', row 1, byte $at: utf8 offsets go backwards: offset 2 is 0, after 2"
patch $((at + 44)) "$(le32 100000)"
refused "a utf8 offset past the data" "$T/bad.arrows" \
  "message 3 (record batch 2), column 4 'name', row 10, byte $at: utf8 offset 11 is 100000, past the $(f "f[3].buffers[10].length") bytes of character data"
at=$(f "f[1].buffers[3].at")
patch "$at" "$(le64 4096)"
refused "a body buffer outside the body" "$T/bad.arrows" \
  "message 1 (record batch 0), column 1 'i64', byte $at: buffer 3 (values) at body offset 4096, length 40, lies outside the $(f "f[1].end - f[1].body")-byte body"
patch "$(f "f[1].buffers[10].data + 1")" "ff"
refused "a string that is not UTF-8" "$T/bad.arrows" \
  "message 1 (record batch 0), column 4 'name', row 1, byte $(f "f[1].buffers[9].data"): the string is not valid UTF-8 (at its byte 1)"
run "$TOOL" read "$T/missing.arrows"
expect "a missing file is exit 2" 2 "missing.arrows: No such file or directory"
run "$TOOL" frobnicate
expect "usage is exit 2" 2 "usage: arrow_tool"

# --- narrow types: Int8, Int16, Float32, read widened (MOLT_ARROW_NARROW) ----
node -e '
const A = require("apache-arrow"), fs = require("fs");
const v = (a, t) => A.vectorFromArray(a, t);
const t = new A.Table({ i8: v([-128, 127, null, 5], new A.Int8), i16: v([-32768, 32767, 7, null], new A.Int16),
  f32: v([0.1, -2.5, null, 3.4028234663852886e38], new A.Float32) });
fs.writeFileSync(process.argv[1], A.tableToIPC(t, "stream"));
const rows = [];
for (let r = 0; r < t.numRows; r++) rows.push(JSON.stringify({ i8: t.getChild("i8").get(r), i16: t.getChild("i16").get(r),
  f32: t.getChild("f32").get(r) }));
fs.writeFileSync(process.argv[2], rows.join("\n") + "\n");
' "$T/narrow.arrows" "$T/narrow.expect"
run "$TOOL" read "$T/narrow.arrows"
expect "without the flag an Int8 column is refused as before" 1 "column 0 'i8': type Int(bitWidth 8, signed) is not supported, expected int32, int64, float64, bool or utf8"
run "$TOOL" read-narrow "$T/narrow.arrows"
expect "read-narrow reads Int8, Int16 and Float32 written by apache-arrow" 0
node -e '
const fs = require("fs");
const a = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const b = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map(JSON.parse);
const same = a.length === b.length && a.every((r, i) => ["i8", "i16", "f32"].every((k) => r[k] === b[i][k]));
process.exit(same ? 0 : 1);
' "$T/out" "$T/narrow.expect" && ok "... every value as apache-arrow reads it (float32 widened exactly)" ||
  fail "narrow values: $(cat "$T/out") vs $(cat "$T/narrow.expect")"
node -e '
const A = require("apache-arrow"), fs = require("fs");
fs.writeFileSync(process.argv[1], A.tableToIPC(new A.Table({ u: A.vectorFromArray([1], new A.Uint16) }), "stream"));
' "$T/u16.arrows"
run "$TOOL" read-narrow "$T/u16.arrows"
expect "unsigned ints stay refused, naming the wider list" 1 "type Int(bitWidth 16, unsigned) is not supported, expected int8, int16, int32, int64, float32, float64, bool or utf8"
head -c 200 "$T/narrow.arrows" > "$T/narrow-cut.arrows"
run "$TOOL" read-narrow "$T/narrow-cut.arrows"
expect "a cut narrow stream is refused, not read past its end" 1 "arrow_tool:"

finish
