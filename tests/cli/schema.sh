#!/usr/bin/env bash
# mrecipe schema check|digest|diff (docs/schemas.md): the repo's schemas
# pass; every kind of schema-file problem exits 2 naming file:line:col and
# the JSON path; digests equal what a build records in manifest.json; diff
# says compatible (exit 0) or breaking (exit 1), each change with its path.
. "$(dirname "$0")/lib.sh"
cd "$here" || exit 1

# schema FILE TEXT: writes a schema file under $T/s.
mkdir -p "$T/s"
schema() { printf '%s\n' "$2" >"$T/s/$1"; }

run "$MRECIPE" schema check
expect "check: every file in schemas/ passes" 0 "hello.greet_request@1 ok"
expect "check: recipe.v1.json is a JSON Schema, skipped" 0 "recipe.v1.json: a JSON Schema"
expect "check: a summary line" 0 "schemas ok, 1 skipped"
run "$MRECIPE" schema check -C "$here" schemas/molt.error.v1.json
expect "check: a named file" 0 "schemas/molt.error.v1.json: molt.error@1 ok"
(cd "$T" && "$MRECIPE" schema check -C "$here" >"$T/out" 2>&1); code=$?
out=$(cat "$T/out") err=""
expect "check: -C DIR from elsewhere" 0 "molt.runtime_config@1 ok"

# bad NAME TEXT NEEDLE: the file fails with exit 2 and NEEDLE in stderr.
bad() {
  schema "$1" "$2"
  run "$MRECIPE" schema check "$T/s/$1"
  expect "check refuses: $3" 2 "$3"
}
bad a.b.v1.json '{"id": "a.b", "version": 1,, "type": "int"}' \
  "$T/s/a.b.v1.json:1:28: invalid JSON"
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": "int", "extra": 1}' \
  "a.b.v1.json:1:44: extra: unknown key \"extra\""
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": "int", "id": "a.b"}' \
  "a.b.v1.json:1:44: id: the key \"id\" appears twice (first at line 1, column 2)"
bad A.b.v1.json '{"id": "A.b", "version": 1, "type": "int"}' \
  "A.b.v1.json:1:8: id: expected \"id\": dotted lowercase words"
bad a.b.v0.json '{"id": "a.b", "version": 0, "type": "int"}' \
  "a.b.v0.json:1:26: version: expected \"version\": an integer from 1 to 2147483647, found 0"
bad a.b.v1.json '{"id": "a.b", "version": 1, "codec": "json", "type": "int"}' \
  "a.b.v1.json:1:38: codec: expected \"msgpack\" or \"arrow\", found \"json\""
bad a.b.v1.json '{"id": "a.b", "version": 1}' \
  "a.b.v1.json:1:1: this schema has no \"type\""
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"list": "integer"}}' \
  "a.b.v1.json:1:46: type.list: unknown type \"integer\""
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"list": "int", "map": "int"}}' \
  "a.b.v1.json:1:53: type.map: a type object has exactly one member"
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"tuple": ["int"]}}' \
  "a.b.v1.json:1:38: type.tuple: unknown type constructor \"tuple\""
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"enum": ["x", "y", "x"]}}' \
  "a.b.v1.json:1:57: type.enum[2]: the value \"x\" appears twice (first at line 1, column 47)"
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"enum": ["x", ""]}}' \
  "a.b.v1.json:1:52: type.enum[1]: expected a non-empty string"
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"record": [{"name": "a-b", "type": "int"}]}}' \
  "a.b.v1.json:1:58: type.record[0].name: expected a field name"
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"record": [{"name": "__proto__", "type": "int"}]}}' \
  "type.record[0].name: \"__proto__\" cannot be a field name"
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"record": [{"name": "a", "type": "int", "default": 0}]}}' \
  "a.b.v1.json:1:78: type.record[0].default: unknown key \"default\""
bad a.b.v1.json '{"id": "a.b", "version": 1, "type": {"record": [{"name": "a", "type": "int", "optional": 1}]}}' \
  "type.record[0].optional: expected true or false, found 1"
schema a.b.v1.json '{"id": "a.b", "version": 1, "type": {"record": [
  {"name": "a", "type": "int"},
  {"name": "a", "type": "string"}]}}'
run "$MRECIPE" schema check "$T/s/a.b.v1.json"
expect "check refuses: a repeated field, on its line" 2 \
  "a.b.v1.json:3:12: type.record[1].name: the field \"a\" appears twice (first at line 2, column 12)"
deep='"int"'
for _ in $(seq 33); do deep="{\"list\": $deep}"; done
bad a.b.v1.json "{\"id\": \"a.b\", \"version\": 1, \"type\": $deep}" \
  "list.list: the type nests more than 32 levels"
bad a.b.v1.json '{"id": "a.b", "version": 1, "codec": "arrow", "type": {"record": [{"name": "a", "type": {"list": "int"}}]}}' \
  "type.record[0].type: expected an Arrow column type"
bad a.b.v1.json '{"id": "a.b", "version": 1, "doc": "x\u0000y", "type": "int"}' \
  "a.b.v1.json:1:38: \\u0000 (NUL) inside a string"
printf '{"id": "a.b", "version": 1, "doc": "\xff", "type": "int"}\n' >"$T/s/a.b.v1.json"
run "$MRECIPE" schema check "$T/s/a.b.v1.json"
expect "check refuses: a file that is not UTF-8" 2 "a.b.v1.json:1:37: the file is not UTF-8 (byte 0xff)"
bad x.v1.json '{"id": "a.b", "version": 1, "type": "int"}' \
  "x.v1.json:1:8: id: the file is named x.v1.json, but \"id\" and \"version\" say a.b.v1.json"
bad a.b.v1.json '["int"]' "a.b.v1.json:1:1: expected a schema"
schema a.b.v1.json '{"id": "a.b", "version": 1, "type": {"enum": []}, "doc": 1}'
run "$MRECIPE" schema check "$T/s/a.b.v1.json" schemas/hello.greet_request.v1.json
expect "check: every problem of a file, and the other files still checked" 2 "type.enum: expected a non-empty list"
expect "check: ... the second problem" 2 "doc: expected a string, found 1"
expect "check: ... the good file" 2 "hello.greet_request@1 ok"
run "$MRECIPE" schema check "$T/s/none.v1.json"
expect "check: a missing file" 2 "none.v1.json"

# Digests: equal to the ones a build records in manifest.json.
run "$MRECIPE" build --out "$T/b" hello
expect "build hello for its manifest" 0
for m in "$T"/b/*/hello-*/manifest.json; do
  [ -f "$m" ] || { fail "no manifest under $T/b"; continue; }
  want=$(node -e 'for (const s of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).schemas) console.log(`${s.digest} ${s.id}@${s.version}`)' "$m")
  files=$(node -e 'for (const s of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).schemas) console.log(`schemas/${s.id}.v${s.version}.json`)' "$m")
  # shellcheck disable=SC2086
  run "$MRECIPE" schema digest $files
  if [ "$code" = 0 ] && [ -n "$want" ] && [ "$out" = "$want" ]; then
    ok "digest equals manifest.json ($(basename "$(dirname "$(dirname "$m")")"))"
  else
    fail "digest: got '$out' (exit $code), manifest says '$want'"
  fi
done
run "$MRECIPE" schema digest schemas/molt.error.v1.json
want=$(node --input-type=module -e '
import { canonicalJson } from "./runtime/js/molt.js";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
const t = canonicalJson(JSON.parse(readFileSync("schemas/molt.error.v1.json", "utf8")));
console.log("sha256:" + createHash("sha256").update(t).digest("hex") + " molt.error@1");')
[ "$out" = "$want" ] && ok "digest equals molt.js canonicalJson + SHA-256" || fail "digest: C '$out', JS '$want'"
run "$MRECIPE" schema digest schemas/recipe.v1.json
expect "digest: a JSON Schema is not a payload schema" 2 'unknown key "$schema"'
run "$MRECIPE" schema digest
expect "digest: needs a file" 2 "digest FILE..."

# Diff.
schema old.json '{"id": "t.rows", "version": 1, "doc": "Rows.", "type": {"record": [
  {"name": "rows", "type": {"list": {"record": [{"name": "name", "type": "string"}]}}},
  {"name": "status", "type": {"enum": ["ok", "gone"]}},
  {"name": "meta", "type": {"map": "string"}},
  {"name": "n", "type": "int"},
  {"name": "tag", "type": "string", "optional": true}]}}'
schema compat.json '{"id": "t.rows", "version": 2, "doc": "Rows, with notes.", "type": {"record": [
  {"name": "rows", "type": {"list": {"record": [{"name": "name", "type": "string"},
    {"name": "note", "type": "string", "optional": true}]}}},
  {"name": "status", "type": {"enum": ["gone", "ok"]}},
  {"name": "meta", "type": {"map": "string"}},
  {"name": "n", "type": "int"},
  {"name": "tag", "type": "string", "optional": true},
  {"name": "extra", "type": {"list": "int"}, "optional": true}]}}'
run "$MRECIPE" schema diff "$T/s/old.json" "$T/s/compat.json"
expect "diff: optional fields added anywhere → compatible, exit 0" 0 "compatible  rows[].note: optional field added"
expect "diff: ... a top-level one" 0 "compatible  extra: optional field added"
expect "diff: ... enum reordered is not a change of values" 0 "status: enum values reordered"
[ "$(tail -n 1 "$T/out")" = compatible ] && ok "diff: last line 'compatible'" || fail "diff: last line '$(tail -n 1 "$T/out")'"
run "$MRECIPE" schema diff "$T/s/old.json" "$T/s/old.json"
expect "diff: no changes → compatible" 0 "no changes"

# breaking NAME TYPE-OF-NEW NEEDLE: old.json against a new version.
breaking() {
  schema new.json "{\"id\": \"t.rows\", \"version\": 2, \"doc\": \"Rows.\", \"type\": $2}"
  run "$MRECIPE" schema diff "$T/s/old.json" "$T/s/new.json"
  expect "diff breaking: $1" 1 "$3"
  [ "$(tail -n 1 "$T/out")" = breaking ] || fail "diff breaking: $1: last line '$(tail -n 1 "$T/out")'"
}
rest='{"name": "meta", "type": {"map": "string"}}, {"name": "n", "type": "int"}, {"name": "tag", "type": "string", "optional": true}'
rows='{"name": "rows", "type": {"list": {"record": [{"name": "name", "type": "string"}]}}}'
status='{"name": "status", "type": {"enum": ["ok", "gone"]}}'
breaking "a type change deep down" "{\"record\": [{\"name\": \"rows\", \"type\": {\"list\": {\"record\": [{\"name\": \"name\", \"type\": \"int\"}]}}}, $status, $rest]}" \
  'breaking    rows[].name: type changed from "string" to "int"'
breaking "a removed field" "{\"record\": [$rows, $status, {\"name\": \"meta\", \"type\": {\"map\": \"string\"}}, {\"name\": \"n\", \"type\": \"int\"}]}" \
  "breaking    tag: optional field removed"
breaking "a field made required" "{\"record\": [$rows, $status, {\"name\": \"meta\", \"type\": {\"map\": \"string\"}}, {\"name\": \"n\", \"type\": \"int\"}, {\"name\": \"tag\", \"type\": \"string\"}]}" \
  "breaking    tag: field became required"
breaking "a field made optional" "{\"record\": [$rows, $status, {\"name\": \"meta\", \"type\": {\"map\": \"string\"}}, {\"name\": \"n\", \"type\": \"int\", \"optional\": true}, {\"name\": \"tag\", \"type\": \"string\", \"optional\": true}]}" \
  "breaking    n: field became optional"
breaking "an enum value removed" "{\"record\": [$rows, {\"name\": \"status\", \"type\": {\"enum\": [\"ok\"]}}, $rest]}" \
  'breaking    status: enum value "gone" removed'
breaking "an enum value added" "{\"record\": [$rows, {\"name\": \"status\", \"type\": {\"enum\": [\"ok\", \"gone\", \"new\"]}}, $rest]}" \
  'breaking    status: enum value "new" added'
breaking "a required field added" "{\"record\": [$rows, $status, $rest, {\"name\": \"must\", \"type\": \"bool\"}]}" \
  'breaking    must: required field added'
breaking "a map value made nullable" "{\"record\": [$rows, $status, {\"name\": \"meta\", \"type\": {\"map\": {\"nullable\": \"string\"}}}, {\"name\": \"n\", \"type\": \"int\"}, {\"name\": \"tag\", \"type\": \"string\", \"optional\": true}]}" \
  "breaking    meta{}: became nullable"
schema other.json '{"id": "t.other", "version": 2, "type": "int"}'
run "$MRECIPE" schema diff "$T/s/old.json" "$T/s/other.json"
expect "diff: two different ids → exit 2" 2 "are different schemas (t.rows, t.other)"
schema broken.json '{"id": "t.rows", "version": 2, "type": {"list": "nope"}}'
run "$MRECIPE" schema diff "$T/s/old.json" "$T/s/broken.json"
expect "diff: an invalid schema → exit 2 with its position" 2 "broken.json:1:49: type.list: unknown type \"nope\""
run "$MRECIPE" schema diff "$T/s/old.json"
expect "diff: needs two files" 2 "diff OLD NEW"
run "$MRECIPE" schema frob
expect "schema: an unknown verb" 2 "expected 'check [FILE...]', 'digest FILE...' or 'diff OLD NEW', found 'frob'"
run "$MRECIPE" schema --help
expect "schema --help" 0 "diff     lists each change with its path"

finish
