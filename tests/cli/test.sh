#!/usr/bin/env bash
# mrecipe test: test vectors on the native build (libmolt, in-process) and on
# the wasm build (runtime/js/vectors.mjs under Node); docs/testing.md.
. "$(dirname "$0")/lib.sh"

run "$MRECIPE" test --help
expect "test --help" 0 "usage: mrecipe test"
run "$MRECIPE" test --target arm
expect "a bad --target is exit 2" 2 "--target: expected wasm32 or native, found 'arm'"

# --- the repo's hello passes on both targets ---------------------------------
run "$MRECIPE" build -C "$here" --out "$T/b1" --all
expect "hello builds into a temp out dir" 0
run "$MRECIPE" test -C "$here" --out "$T/b1" hello
expect "hello's vectors pass on native" 0 "ok hello greet/ada native"
expect "... and on wasm32" 0 "ok hello greet/ada wasm32"
expect "... including the byte-level cases" 0 "ok hello greet/truncated wasm32"
expect "... with a summary" 0 " cases, 0 failed"
[ "$(grep -c '^ok hello .* native$' "$T/out")" = "$(grep -c '^ok hello .* wasm32$' "$T/out")" ] &&
  ok "every case ran on both targets" || fail "targets ran different cases: $out"
run "$MRECIPE" test -C "$here" --out "$T/b1"
expect "every recipe with vectors by default" 0 "ok hello greet/ada wasm32"
run "$MRECIPE" test -C "$here" --out "$T/b1" --target native hello
expect "--target native" 0 "ok hello greet/ada native"
grep -q wasm32 "$T/out" && fail "--target native ran wasm32: $out" || ok "--target native runs native only"
run "$MRECIPE" test -C "$here" --out "$T/b1" msgpack-c
expect "a recipe without vectors is named" 2 "msgpack-c has no test vectors"
run "$MRECIPE" test -C "$here" --out "$T/empty" hello
expect "an unbuilt recipe says how to build it" 2 "hello 0.1.0 is not built for"

# --- a copy of the repo to break ---------------------------------------------
repo=$T/repo
mkdir -p "$repo"
cp -r "$here/recipes" "$here/schemas" "$here/runtime" "$repo/"
ln -s "$here/node_modules" "$repo/node_modules"
vec=$repo/recipes/hello/tests/vectors/greet.json
good=$T/greet.json
cp "$vec" "$good"

sed -i 's/"Hello, Ada!"/"Hi, Ada!"/' "$vec"
run "$MRECIPE" test -C "$repo" --out "$T/b1" hello
expect "a wrong expectation is exit 1" 1 "not ok hello greet/ada native"
expect "... on both targets" 1 "not ok hello greet/ada wasm32"
expect "... showing the expected result decoded" 1 '"schema":"hello.greet_response","version":1,"payload":{"greeting":"Hi, Ada!"}'
expect "... and the actual one" 1 '"schema":"hello.greet_response","version":1,"payload":{"greeting":"Hello, Ada!"}'
expect "... with the hex" 1 "hex (47 bytes): 93b468656c6c6f"
expect "... and where the case is" 1 "greet.json:5:5"
expect "... counted in the summary" 1 " cases, 1 failed"
[ "$(grep -c '^  actual' "$T/out")" -ge 2 ] && ok "both targets' results are shown" || fail "results shown: $out"

printf '{\n  "function": "greet",\n  "cases": [\n    {"name": "a" "request": {}}\n  ]\n}\n' > "$vec"
run "$MRECIPE" test -C "$repo" --out "$T/b1" hello
expect "malformed JSON in a vector file is exit 2 with file:line:col" 2 "tests/vectors/greet.json:4:18: invalid JSON"
cat > "$vec" <<'J'
{
  "function": "greet",
  "cases": [
    {"name": "a", "request": {"name": 5}, "expect": {"greeting": "x"}},
    {"name": "b", "request_hex": "9", "expect": {"greeting": "x"}, "expcet": 1},
    {"name": "a", "request": {"name": "x"}, "expect_error": {"class": "oops", "code": 1, "message": "m"}}
  ]
}
J
run "$MRECIPE" test -C "$repo" --out "$T/b1" hello
expect "a request that breaks the input schema is exit 2" 2 "greet.json:4:30: cases[0].request: schema hello.greet_request@1: name: expected a string, found a number"
expect "odd hex is named" 2 "greet.json:5:34: cases[1].request_hex: expected a string of hex digit pairs"
expect "an unknown key is named" 2 "greet.json:5:68: cases[1].expcet: unknown key"
expect "a duplicate case name is named" 2 "cases[2].name: 'a' is already the name of the case at"
expect "expect_error is checked against molt.error" 2 "cases[2].expect_error: schema molt.error@1: class: 'oops' is not one of the allowed values"
expect "nothing runs" 2 "nothing was run"
[ "$(grep -c 'greet.json:' "$T/err")" -ge 5 ] && ok "every problem in the file is reported" || fail "only some problems: $err"
printf '{"function": "grete", "cases": []}\n' > "$vec"
run "$MRECIPE" test -C "$repo" --out "$T/b1" hello
expect "an unknown function names the real ones" 2 "greet.json:1:14: function: expected one of hello's functions (greet), found 'grete'"
cp "$good" "$vec"

# --- native and wasm disagree ------------------------------------------------
python3 - "$repo/recipes/hello/src/hello.c" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
old = '\tstatic const char pre[] = "Hello, ";\n'
assert old in s
s = s.replace(old, '#ifdef __wasm__\n\tstatic const char pre[] = "Hullo, ";\n#else\n' + old + '#endif\n')
open(p, "w").write(s)
PY
run "$MRECIPE" build -C "$repo" --out "$T/b2" hello
expect "a hello whose wasm build differs builds" 0
run "$MRECIPE" test -C "$repo" --out "$T/b2" hello
expect "native and wasm disagreeing is exit 1" 1 "not ok hello greet/ada wasm32"
expect "... naming the target that is wrong" 1 '"payload":{"greeting":"Hullo, Ada!"}'
expect "... while native passes" 1 "ok hello greet/ada native"
grep -q '^not ok .* native$' "$T/out" && fail "native was reported failing: $out" || ok "only wasm32 is reported failing"

# --- no node -----------------------------------------------------------------
mkdir -p "$T/nobin"
run env PATH="$T/nobin" "$MRECIPE" test -C "$here" --out "$T/b1" hello
expect "node missing is exit 3 and says what to install" 3 "Install nodejs (scripts/setup does)"
run env PATH="$T/nobin" "$MRECIPE" test -C "$here" --out "$T/b1" --target native hello
expect "... while --target native needs no node" 0 "ok hello greet/ada native"

# --- outputs that don't match their manifest are refused ---------------------
cp -r "$T/b1" "$T/b3"
zero=sha256:0000000000000000000000000000000000000000000000000000000000000000
for t in native wasm32; do
  sed -i "0,/\"digest\":[[:space:]]*\"sha256:[0-9a-f]*\"/s//\"digest\": \"$zero\"/" "$T/b3/$t/hello-0.1.0/manifest.json"
done
grep -q "$zero" "$T/b3/native/hello-0.1.0/manifest.json" || fail "test bug: the manifest was not edited"
run "$MRECIPE" test -C "$here" --out "$T/b3" hello
expect "an artifact digest mismatch is refused on native" 1 "with digest $zero (from $T/b3/native/hello-0.1.0/manifest.json)"
expect "... and on wasm32" 1 "DIGEST_MISMATCH: $T/b3/wasm32/hello-0.1.0/manifest.json: the artifact hashes to"
expect "... its cases are not run" 1 "not ok hello greet/ada wasm32 (not run: the unit did not load or run; see above)"
grep -q '^ok ' "$T/out" && fail "a refused unit ran: $out" || ok "nothing ran from the refused units"
sed -i 's/"The greeting."/"The greeting, edited."/' "$repo/schemas/hello.greet_response.v1.json"
run "$MRECIPE" test -C "$repo" --out "$T/b1" hello
expect "a schema changed after the build is refused on native" 1 "schema hello.greet_response@1 in $repo/schemas has digest"
expect "... and on wasm32" 1 "schema hello.greet_response@v1 hashes to"
cp "$here/schemas/hello.greet_response.v1.json" "$repo/schemas/"

# --- the same under ASan+UBSan -----------------------------------------------
if [ -n "${MRECIPE_ASAN:-}" ] && [ -x "$MRECIPE_ASAN" ]; then
  run "$MRECIPE_ASAN" test -C "$here" --out "$T/b1" hello
  expect "ASan+UBSan: hello passes" 0 " cases, 0 failed"
  sed -i 's/"Hello, Ada!"/"Hi, Ada!"/' "$vec"
  run "$MRECIPE_ASAN" test -C "$repo" --out "$T/b1" hello
  expect "ASan+UBSan: a mismatch is exit 1" 1 "not ok hello greet/ada wasm32"
  printf '{"function": "greet", "cases": [{"name": "x", "request_hex": "c0", "expect_hex": "93"}, 7]}' > "$vec"
  run "$MRECIPE_ASAN" test -C "$repo" --out "$T/b1" hello
  expect "ASan+UBSan: bad vectors are exit 2" 2 "cases[0].expect_hex: not an envelope"
  run "$MRECIPE_ASAN" test -C "$here" --out "$T/b3" hello
  expect "ASan+UBSan: a refused unit is exit 1" 1 "refusing it"
  cp "$good" "$vec"
fi
finish
