#!/usr/bin/env bash
# mrecipe build: the input-addressed cache, parallel jobs, failure handling,
# --json, --check, and byte-identical outputs from two directories.
. "$(dirname "$0")/lib.sh"

repo=$T/repo
mkdir -p "$repo"
cp -r "$here/recipes" "$here/schemas" "$here/runtime" "$repo/"
statuses() { # NAME/TARGET=STATUS lines from --json
  python3 -c '
import json, sys
for j in json.load(sys.stdin)["jobs"]:
    print("%s/%s=%s" % (j["name"], j["target"], j["status"]))' <<<"$out" | sort | tr '\n' ' '
}

run "$MRECIPE" build -C "$repo" --out "$T/b" hello
expect "a first build builds everything" 0 "4 built, 0 up to date"
run "$MRECIPE" build -C "$repo" --out "$T/b" hello --json
[ "$(statuses)" = "hello/native=cached hello/wasm32=cached msgpack-c/native=cached msgpack-c/wasm32=cached " ] \
  && ok "a no-op build reuses every output" || fail "no-op: $(statuses)"
s=$(date +%s%N); "$MRECIPE" build -C "$repo" --out "$T/b" hello >/dev/null; e=$(date +%s%N)
echo "# no-op build of hello and msgpack-c: $(( (e - s) / 1000000 )) ms"
touch "$repo/recipes/hello/src/hello.c" "$repo/recipes/hello/recipe.json"
run "$MRECIPE" build -C "$repo" --out "$T/b" hello --json
[ "$(statuses)" = "hello/native=cached hello/wasm32=cached msgpack-c/native=cached msgpack-c/wasm32=cached " ] \
  && ok "touching files without changing them rebuilds nothing" || fail "after touch: $(statuses)"
sed -i 's/Hello, /Hi, /' "$repo/recipes/hello/src/hello.c"
run "$MRECIPE" build -C "$repo" --out "$T/b" hello --json
[ "$(statuses)" = "hello/native=built hello/wasm32=built msgpack-c/native=cached msgpack-c/wasm32=cached " ] \
  && ok "changing a module rebuilds only it" || fail "after module edit: $(statuses)"
python3 - "$repo/recipes/msgpack-c/recipe.json" <<'PY'
import json, sys
p = sys.argv[1]; r = json.load(open(p)); r["build"]["defines"] = ["MOLT_TEST_REBUILD=1"]
open(p, "w").write(json.dumps(r, indent=2))
PY
run "$MRECIPE" build -C "$repo" --out "$T/b" hello --json
[ "$(statuses)" = "hello/native=built hello/wasm32=built msgpack-c/native=built msgpack-c/wasm32=built " ] \
  && ok "changing a library rebuilds it and its dependents" || fail "after library edit: $(statuses)"
run "$MRECIPE" build -C "$repo" --out "$T/b" --target native --force --json hello
[ "$(statuses)" = "hello/native=built msgpack-c/native=built " ] && ok "--force rebuilds (one target)" || fail "--force: $(statuses)"
echo "int x(void) { return 1; }" > "$repo/runtime/sdk/extra.h"
run "$MRECIPE" build -C "$repo" --out "$T/b" hello --json
[ "$(statuses)" = "hello/native=built hello/wasm32=built msgpack-c/native=cached msgpack-c/wasm32=cached " ] \
  && ok "a change to the module SDK rebuilds modules only" || fail "after SDK edit: $(statuses)"

# --- a shared output cache ------------------------------------------------
run "$MRECIPE" build -C "$repo" --out "$T/c1" --cache "$T/bc" hello
expect "a build fills the shared cache" 0 "4 built"
[ "$(ls "$T/bc" | wc -l)" = 4 ] && ok "four outputs cached by key" || fail "cache holds: $(ls "$T/bc")"
run "$MRECIPE" build -C "$repo" --out "$T/c2" --cache "$T/bc" hello
expect "another output folder is filled from the cache" 0 "0 built, 4 up to date"
cmp -s "$T/c1/wasm32/hello-0.1.0/hello.wasm" "$T/c2/wasm32/hello-0.1.0/hello.wasm" && ok "with the same bytes" || fail "cache copy differs"

# --- parallel builds and failures -------------------------------------------
for i in 1 2 3 4 5 6; do
  mkdir -p "$repo/recipes/p$i/src"
  echo "int p${i}_f(void) { return $i; }" > "$repo/recipes/p$i/src/a.c"
  cat > "$repo/recipes/p$i/recipe.json" <<J
{"name": "p$i", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"path": "src"}, "targets": ["native"], "build": {"sources": ["a.c"]}}
J
done
echo 'int p3_f(void) { return }' > "$repo/recipes/p3/src/a.c"
run "$MRECIPE" build -C "$repo" --out "$T/b" -j 2 --json p1 p2 p3 p4 p5 p6
expect "a failing recipe fails the build with exit 1" 1 "building p3 1.0.0 for native"
expect "and shows its log path" 1 "last lines of $T/b/work/native/p3/build.log"
python3 -c '
import json, sys
d = json.loads(sys.argv[1]); s = {j["name"]: j["status"] for j in d["jobs"]}
assert d["ok"] is False and s["p3"] == "failed", s
assert "skipped" in s.values(), "nothing was skipped: %s" % s
assert all(v in ("built", "failed", "skipped", "cached") for v in s.values()), s
' "$out" && ok "after the first failure nothing new starts (--json shows failed and skipped)" || fail "json: $out"
echo 'int p3_f(void) { return 3; }' > "$repo/recipes/p3/src/a.c"
run "$MRECIPE" build -C "$repo" --out "$T/b" -j 2 p1 p2 p3 p4 p5 p6
expect "-j 2 builds independent recipes" 0 "6 outputs"
run "$MRECIPE" build -C "$repo" --out "$T/b" -j 0 p1
expect "-j 0 is refused" 2 "--jobs: expected a number from 1 to 64, found '0'"
rm -rf "$repo/recipes/"p?

# --- toolchains ---------------------------------------------------------
mkdir -p "$repo/recipes/leak/src"
printf '#include <curl/curl.h>\nint leak(void) { return CURL_GLOBAL_ALL; }\n' > "$repo/recipes/leak/src/a.c"
cat > "$repo/recipes/leak/recipe.json" <<J
{"name": "leak", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"path": "src"}, "targets": ["wasm32", "native"], "build": {"sources": ["a.c"]}}
J
run "$MRECIPE" build -C "$repo" --out "$T/b" --target native leak
expect "a host header builds natively" 0 "1 built"
run "$MRECIPE" build -C "$repo" --out "$T/b" --target wasm32 leak
expect "but host headers never reach a wasm32 build" 1 "'curl/curl.h' file not found"
rm -rf "$repo/recipes/leak"
# A WASI SDK layout (made of Debian's parts) is used when WASI_SDK_PATH is set.
sdk=$T/sdk; mkdir -p "$sdk/bin" "$sdk/share/wasi-sysroot/lib"
ln -s "$(command -v clang)" "$sdk/bin/clang"; ln -s "$(command -v llvm-ar || command -v llvm-ar-14)" "$sdk/bin/llvm-ar"
ln -s /usr/include/wasm32-wasi "$sdk/share/wasi-sysroot/include"; ln -s /usr/lib/wasm32-wasi "$sdk/share/wasi-sysroot/lib/wasm32-wasi"
run env WASI_SDK_PATH="$sdk" "$MRECIPE" build -C "$here" --out "$T/sdk-out" --target wasm32 -v hello
expect "WASI_SDK_PATH selects the SDK's clang and sysroot" 0 "$sdk/bin/clang --target=wasm32-wasi --sysroot=$sdk/share/wasi-sysroot"
"$MRECIPE" build -C "$here" --out "$T/deb-out" --target wasm32 hello >/dev/null 2>&1
cmp -s "$T/sdk-out/wasm32/hello-0.1.0/hello.wasm" "$T/deb-out/wasm32/hello-0.1.0/hello.wasm" \
  && ok "the same compiler through either layout gives the same bytes" || fail "SDK layout changed the output"
run env WASI_SDK_PATH="$T/nowhere" "$MRECIPE" build -C "$here" --out "$T/sdk-out2" --target wasm32 hello
expect "a WASI_SDK_PATH without clang is exit 3" 3 "WASI_SDK_PATH must point at a wasi-sdk install"

# --- reproducibility ----------------------------------------------------
run "$MRECIPE" build -C "$here" --out "$T/r1" --all --check
expect "--check: a fresh rebuild is byte-identical" 0 "reproducible: every output"
mkdir -p "$T/elsewhere/deeper"
cp -r "$here/recipes" "$here/schemas" "$here/runtime" "$T/elsewhere/deeper/"
"$MRECIPE" build -C "$T/elsewhere/deeper" --out "$T/elsewhere/deeper/out" --all >/dev/null 2>&1
sums() { (cd "$1" && find . -path ./work -prune -o -type f ! -name .mrecipe-key -print | sort | xargs sha256sum); }
if [ "$(sums "$T/r1")" = "$(sums "$T/elsewhere/deeper/out")" ]; then
  ok "two checkouts in different folders build byte-identical outputs ($(sums "$T/r1" | grep -cE '\.(wasm|so|a)$') artifacts)"
else
  fail "outputs differ: $(diff <(sums "$T/r1") <(sums "$T/elsewhere/deeper/out") | head -5)"
fi
finish
