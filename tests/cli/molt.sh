#!/usr/bin/env bash
# molt end to end against real registries: a folder (file:// through
# libcurl) and `molt serve` over HTTP on 127.0.0.1; every check a client
# makes is shown failing on tampered data.
. "$(dirname "$0")/lib.sh"

reg=$FIXTURE/registry key=$FIXTURE/dev.pub
m() { run "$MOLT" "$1" --cache "$T/cache" -k "$key" "${@:2}"; }
entry() { python3 -c "import json,sys;print(json.load(open('$1/index/hello.json'))['versions']['0.1.0'][sys.argv[1]][sys.argv[2]][7:])" "$2" "$3"; }
artifact() { python3 -c "import json;print(json.load(open('$1/blobs/sha256/$(entry "$1" "$2" manifest)'))['artifact']['digest'][7:])"; }
flip() { # FILE [OFFSET]: inverts one byte, so it always changes
  python3 -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, "rb").read()); b[o] ^= 0xff; open(p, "wb").write(bytes(b))' "$1" "${2:-100}"
}
native=$("$MOLT" --help >/dev/null; echo x86_64-linux-gnu)

run "$MOLT" --version
expect "--version" 0 "molt 0.1.0"
for c in fetch call verify serve; do
  run "$MOLT" "$c" --help
  expect "$c --help" 0 "usage: molt $c"
done
run "$MOLT" help call
expect "help CMD" 0 "usage: molt call"
run "$MOLT" load
expect "an unknown command is exit 2" 2 "unknown command 'load'"

m call -r "$reg" hello@0.1.0 greet '{"name":"Ada"}'
expect "call: verify, load and call the native unit" 0 '{"greeting":"Hello, Ada!"}'
[ "$out" = '{"greeting":"Hello, Ada!"}' ] && ok "call prints exactly the JSON result" || fail "call printed: $out"
printf '{"name":"File"}' > "$T/req.json"
m call -r "$reg" hello@0.1.0 greet "@$T/req.json"
expect "call: the request from @FILE" 0 '{"greeting":"Hello, File!"}'
printf '{"name":"Stdin"}' > "$T/stdin.json"
m call -r "$reg" hello@0.1.0 greet - < "$T/stdin.json"
expect "call: the request from standard input (-)" 0 '{"greeting":"Hello, Stdin!"}'
m call -r "$reg" hello@0.1.0 greet "@$T/no-such.json"
expect "call: a missing request file is exit 2, naming it" 2 "reading the request (@$T/no-such.json)"
m call -r "$reg" hello@0.1.0 greet '{"name":"Grace Hopper"}'
expect "a warm cache still verifies and calls" 0 '{"greeting":"Hello, Grace Hopper!"}'
m fetch -r "$reg" -t wasm32-wasi hello@0.1.0
expect "fetch the wasm unit" 0 "hello@0.1.0 wasm32-wasi verified, manifest sha256:$(entry "$reg" wasm32-wasi manifest)"
m verify -r "$reg" hello@0.1.0
expect "verify" 0 "ok: hello@0.1.0 for $native"

m call -r "$reg" countdown@0.1.0 count '{"n":1000000000}'
expect "integers past 2^53 come out exact" 0 '"sum":500000000500000000'

# --- input errors -------------------------------------------------------
m call -r "$reg" hello@0.1.0 greet '{"name":""}'
expect "a validation error from the unit is exit 2 with its path" 2 "hello.greet: validation error 1 at name: expected a non-empty name"
m call -r "$reg" hello@0.1.0 greet '{"nme":"Ada"}'
expect "an unknown field is refused before the call" 2 "nme: unknown field"
m call -r "$reg" hello@0.1.0 greet '{"name":42}'
expect "a wrong type is refused before the call" 2 'name: expected a string, found a number'
m call -r "$reg" hello@0.1.0 greet '{"name":'
expect "bad JSON is exit 2" 2 "request is not valid JSON"
m call -r "$reg" hello@0.1.0 shout '{}'
expect "an unknown function is named" 2 "hello@0.1.0 has no function 'shout'"
m call -r "$reg" hello greet '{}'
expect "a reference without a version is refused" 2 "expected NAME@VERSION"
m fetch -r "$reg" nosuch@1.0.0
expect "an unknown unit" 2 "no unit named 'nosuch'"
m fetch -r "$reg" hello@9.9.9
expect "an unknown version" 2 "hello@9.9.9 is not in"
m fetch -r "$reg" -t riscv64-linux-gnu hello@0.1.0
expect "an unknown target" 2 "has no build for riscv64-linux-gnu"
run "$MOLT" fetch -r "$reg" hello@0.1.0
expect "no trusted key, no fetch" 2 "trusted keys"
m fetch -r "$T/nowhere" hello@0.1.0
expect "a missing registry folder" 2 "registry $T/nowhere"

# --- tampering ----------------------------------------------------------
fresh() { rm -rf "$T/r" "$T/cache"; cp -r "$reg" "$T/r"; }
fresh; a=$(artifact "$T/r" "$native"); flip "$T/r/blobs/sha256/$a"
m fetch -r "$T/r" hello@0.1.0
expect "a flipped byte in the artifact is exit 1" 1 "digest mismatch: the signed manifest says sha256:$a, the bytes hash to sha256:"
[ ! -e "$T/cache/blobs/sha256/$a" ] && ok "the tampered artifact is not cached" || fail "tampered bytes reached the cache"
m call -r "$T/r" hello@0.1.0 greet '{"name":"Ada"}'
expect "and is never loaded" 1 "digest mismatch"
fresh; a=$(artifact "$T/r" "$native"); printf 'extra' >> "$T/r/blobs/sha256/$a"
m fetch -r "$T/r" hello@0.1.0
expect "more bytes than signed are refused (endless data)" 1 "more than the expected"
fresh; a=$(artifact "$T/r" "$native"); truncate -s 100 "$T/r/blobs/sha256/$a"
m fetch -r "$T/r" hello@0.1.0
expect "fewer bytes than signed are refused" 1 "expected"
fresh; mf=$(entry "$T/r" "$native" manifest); flip "$T/r/blobs/sha256/$mf" 30
m fetch -r "$T/r" hello@0.1.0
expect "a tampered manifest is refused" 1 "digest mismatch: expected sha256:$mf"
fresh; sed -i 's/"yanked":\tfalse/"yanked":\ttrue/' "$T/r/index/hello.json"
m fetch -r "$T/r" hello@0.1.0
expect "an index that is not the one signed is refused" 1 "index/hello.json: digest mismatch: the signed snapshot says"
fresh; flip "$T/r/snapshot.json" 20
m fetch -r "$T/r" hello@0.1.0
expect "a tampered snapshot is refused" 1 "snapshot.json"
MRECIPE_KDF_FAST=1 "$MRECIPE" keygen -W -s "$T/other.key" -p "$T/other.pub" >/dev/null
run "$MOLT" fetch --cache "$T/cache" -k "$T/other.pub" -r "$reg" hello@0.1.0
expect "an untrusted key is refused, naming both key ids" 1 "expected a signature by a trusted key"
# A snapshot that expired, validly signed: a frozen mirror.
fresh
python3 - "$T/r/snapshot.json" <<'PY'
import json, sys
p = sys.argv[1]; s = json.load(open(p)); s["expires"] = "2020-01-01T00:00:00Z"
open(p, "w").write(json.dumps(s))
PY
d=$(sha256sum "$T/r/snapshot.json" | cut -d' ' -f1); v=$(python3 -c "import json;print(json.load(open('$T/r/snapshot.json'))['version'])")
if minisign -S -l -s "$FIXTURE/dev.key" -m "$T/r/snapshot.json" -t "molt snapshot $v sha256:$d" </dev/null >/dev/null 2>&1; then
  m fetch -r "$T/r" hello@0.1.0
  expect "an expired snapshot is refused (freeze)" 1 "snapshot.json expired at 2020-01-01T00:00:00Z"
else
  fail "could not re-sign the snapshot with stock minisign"
fi
# A manifest signed for another unit: mix-and-match / wrong software.
fresh; wm=$(entry "$T/r" wasm32-wasi manifest); ws=$(entry "$T/r" wasm32-wasi signature)
python3 - "$T/r/index/hello.json" "$native" "$wm" "$ws" <<'PY'
import json, sys
p, t, m, s = sys.argv[1:]; i = json.load(open(p)); e = i["versions"]["0.1.0"][t]
e["manifest"], e["signature"] = "sha256:" + m, "sha256:" + s
if "signatures" in e: e["signatures"] = ["sha256:" + s]
e["size"] = i["versions"]["0.1.0"]["wasm32-wasi"]["size"]
open(p, "w").write(json.dumps(i))
PY
d=$(sha256sum "$T/r/index/hello.json" | cut -d' ' -f1); sz=$(stat -c %s "$T/r/index/hello.json")
python3 - "$T/r/snapshot.json" "$d" "$sz" <<'PY'
import json, sys
p, d, sz = sys.argv[1:]; s = json.load(open(p))
s["indexes"]["hello"] = {"digest": "sha256:" + d, "size": int(sz)}
open(p, "w").write(json.dumps(s))
PY
d=$(sha256sum "$T/r/snapshot.json" | cut -d' ' -f1); v=$(python3 -c "import json;print(json.load(open('$T/r/snapshot.json'))['version'])")
minisign -S -l -s "$FIXTURE/dev.key" -m "$T/r/snapshot.json" -t "molt snapshot $v sha256:$d" </dev/null >/dev/null 2>&1
m fetch -r "$T/r" hello@0.1.0
expect "a validly signed manifest for another target is refused" 1 "trusted comment is 'molt unit hello@0.1.0 wasm32-wasi"

# --- over HTTP, from molt serve -------------------------------------------
mkdir -p "$T/site"; ln -s "$reg" "$T/site/registry"
"$MOLT" serve --quiet --port 0 --root "$T/site" > "$T/serve.out" 2>"$T/serve.err" &
spid=$!; cleanup="kill $spid 2>/dev/null"
for _ in $(seq 50); do grep -q '^serving' "$T/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's|^serving .* on \(http://[^ ]*\)$|\1|p' "$T/serve.out")
if [ -n "$url" ]; then
  rm -rf "$T/cache"
  m call -r "${url}registry" hello@0.1.0 greet '{"name":"Ada"}'
  expect "fetch and call over HTTP (libcurl against molt serve)" 0 '{"greeting":"Hello, Ada!"}'
  fresh; a=$(artifact "$T/r" "$native"); flip "$T/r/blobs/sha256/$a"; ln -s "$T/r" "$T/site/bad"
  m fetch -r "${url}bad" hello@0.1.0
  expect "a tampered blob over HTTP is exit 1, naming the URL" 1 "${url}bad/blobs/sha256/$a: digest mismatch"
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
  m fetch -r "${url}registry" hello@0.1.0
  expect "a registry that cannot be reached is exit 3" 3 "fetching ${url}registry/snapshot.json"
else
  fail "molt serve did not start: $(cat "$T/serve.err")"
fi

# --- the same request, the same bytes: native and wasm ---------------------
rm -rf "$T/cache"
m call --envelope-hex -r "$reg" hello@0.1.0 greet '{"name":"Ada"}'
native_hex=$out
expect "native result envelope" 0 "93b4"
if [ -f "$here/runtime/js/molt-node.mjs" ] && command -v node >/dev/null; then
  run node "$here/runtime/js/molt-node.mjs" call --registry "$reg" --key "$key" hello@0.1.0 greet '{"name":"Ada"}' --envelope-hex
  expect "wasm result envelope (runtime/js under Node)" 0 "93b4"
  [ -n "$native_hex" ] && [ "$out" = "$native_hex" ] && ok "wasm and native result envelopes are byte-identical" \
    || fail "envelopes differ: native $native_hex wasm $out"
fi

finish
