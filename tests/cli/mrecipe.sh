#!/usr/bin/env bash
# mrecipe end to end: lint errors, builds, sources, keys, publish, verify.
. "$(dirname "$0")/lib.sh"

repo=$T/repo
mkdir -p "$repo/recipes"
ln -s "$here/schemas" "$repo/schemas"
ln -s "$here/runtime" "$repo/runtime"
recipe() { mkdir -p "$repo/recipes/$1/src"; cat > "$repo/recipes/$1/recipe.json"; }

# --- the command table ----------------------------------------------------
run "$MRECIPE" --version
expect "--version" 0 "mrecipe 0.1.0"
for c in lint build keygen publish verify; do
  run "$MRECIPE" "$c" --help
  expect "$c --help" 0 "usage: mrecipe $c"
done
run "$MRECIPE" --help
expect "--help lists the commands with summaries" 0 "publish    sign built modules"
run "$MRECIPE" frobnicate
expect "an unknown command is exit 2" 2 "unknown command 'frobnicate'"
run "$MRECIPE" build --no-such-flag
expect "an unknown option is exit 2" 2 "unknown option '--no-such-flag'"
run "$MRECIPE" build --out "$T/a" --out "$T/b"
expect "an option given twice is exit 2, naming both values" 2 "--out given twice ('$T/a', then '$T/b'); give it once"
run "$MRECIPE" build --target arm
expect "a bad option value is exit 2" 2 "--target: expected wasm32 or native, found 'arm'"
run "$MRECIPE"
expect "no command is exit 2 with usage" 2 "usage: mrecipe COMMAND"

# --- lint ---------------------------------------------------------------
printf '{\n  "name": "bad",\n  "version": "0.1.0"\n  "kind": "module"\n}\n' | recipe bad
run "$MRECIPE" lint -C "$repo" "$repo/recipes/bad"
expect "malformed JSON exits 2 with file:line:col" 2 "recipes/bad/recipe.json:4:3: invalid JSON"

cat <<'J' | recipe bad
{
  "name": "bad",
  "version": "1.0",
  "summary": "x",
  "license": "MIT",
  "kind": "modul",
  "sourec": {"path": "src"},
  "source": {"path": "src"},
  "targets": ["wasm32", 7],
  "build": {"sources": []}
}
J
run "$MRECIPE" lint -C "$repo" "$repo/recipes/bad"
expect "semver checked, with position" 2 "recipe.json:3:14: version: expected a string matching"
expect "enum names the valid values" 2 'recipe.json:6:11: kind: expected one of "module", "library", found "modul"'
expect "unknown key names the valid ones" 2 "recipe.json:7:3: sourec: unknown field 'sourec'; valid fields here are: name, version"
expect "wrong type inside a list" 2 'recipe.json:9:25: targets[1]: expected one of "wasm32", "native", found 7'
expect "minItems" 2 "build.sources: expected at least 1 item, found 0"
[ "$(grep -c 'recipe.json:' "$T/err")" -ge 5 ] && ok "every problem in the file is reported" || fail "only some problems reported: $err"

cat <<'J' | recipe bad
{"name": "bad", "version": "0.1.0", "summary": "x", "license": "MIT", "kind": "module",
 "abi_version": "0.1", "source": {"path": "src", "url": "http://127.0.0.1/x.tgz"},
 "functions": [{"id": 1, "name": "f", "input": "no.such_schema@1", "output": "hello.greet_response@1"}],
 "targets": ["native"], "build": {"sources": ["a.c"]}}
J
run "$MRECIPE" lint -C "$repo" "$repo/recipes/bad"
expect "source needs exactly one kind" 2 "source: expected exactly one of 'path', 'url' or 'git', found 2"
expect "url needs sha256" 2 "a 'url' source needs 'sha256'"
expect "missing schema file named" 2 "schema no.such_schema@1 not found"
rm -rf "$repo/recipes/bad"

run "$MRECIPE" lint -C "$here"
expect "the repo's recipes lint clean" 0 "recipes ok"

# --- dependency graph ------------------------------------------------------
lib() { # NAME DEPS-JSON
  recipe "$1" <<J
{"name": "$1", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"path": "src"}, "depends": $2, "targets": ["native"], "build": {"sources": ["a.c"]}}
J
  echo "int $(echo "$1" | tr - _)_x(void) { return 1; }" > "$repo/recipes/$1/src/a.c"
}
lib a '[{"name": "b"}]'; lib b '[{"name": "c"}]'; lib c '[{"name": "a"}]'
run "$MRECIPE" build -C "$repo" --out "$T/b" a
expect "a dependency cycle is named as its path" 2 "dependency cycle: a -> b -> c -> a"
lib c '[{"name": "zzz"}]'
run "$MRECIPE" build -C "$repo" --out "$T/b" a
expect "a missing dependency is named" 2 "c depends on 'zzz', but no recipe has that name"
lib c '[]'; lib b '[{"name": "c", "version": "^2.0.0"}]'
run "$MRECIPE" build -C "$repo" --out "$T/b" a
expect "a version outside its range is named" 2 "b needs c ^2.0.0, but the recipe has version 1.0.0"
lib b '[{"name": "c", "version": "^1.0.0"}]'
run "$MRECIPE" build -C "$repo" --out "$T/b" a
expect "dependencies build first" 0 "[1/3] c 1.0.0 (native)"
echo 'int broken(void) { return }' > "$repo/recipes/c/src/a.c"
run "$MRECIPE" build -C "$repo" --out "$T/b" c
expect "a compile error shows the log tail and path" 1 "--- last lines of $T/b/work/native/c/build.log ---"
expect "... naming recipe and target" 1 "building c 1.0.0 for native"
rm -rf "$repo/recipes/"{a,b,c}

# --- missing toolchain --------------------------------------------------
mkdir -p "$T/bin"
for t in cc ar; do ln -s "$(command -v $t)" "$T/bin/$t"; done
run env PATH="$T/bin" "$MRECIPE" build -C "$here" --out "$T/out2" --target wasm32 msgpack-c
expect "a missing wasm toolchain is exit 3 and says what to install" 3 "clang (for wasm32) not found; run scripts/setup"

# --- archive sources ----------------------------------------------------
mkarchive() { # NAME KIND: a tarball with one bad entry of KIND
  python3 - "$T/$1.tar.gz" "$2" "$T" <<'PY'
import io, sys, tarfile
path, kind, tmp = sys.argv[1:]
with tarfile.open(path, "w:gz") as t:
    def add(name, data=b"int x;\n", **kw):
        i = tarfile.TarInfo(name)
        for k, v in kw.items(): setattr(i, k, v)
        i.size = len(data) if i.type == tarfile.REGTYPE else 0
        t.addfile(i, io.BytesIO(data) if i.type == tarfile.REGTYPE else None)
    add("pkg/a.c")
    if kind == "abs": add(tmp + "/escaped-abs")
    if kind == "dotdot": add("pkg/../../escaped-dotdot")
    if kind == "symlink": add("pkg/link", type=tarfile.SYMTYPE, linkname="../../..")
    if kind == "device": add("pkg/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
PY
  local sum; sum=$(sha256sum "$T/$1.tar.gz" | cut -d' ' -f1)
  recipe "$1" <<J
{"name": "$1", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"url": "file://$T/$1.tar.gz", "sha256": "$sum"}, "targets": ["native"],
 "build": {"sources": ["a.c"]}}
J
}
export MRECIPE_SOURCE_CACHE=$T/cache
mkarchive good none
run "$MRECIPE" build -C "$repo" --out "$T/b" good
expect "a url source is fetched (libcurl), checked and unpacked" 0 "1 built"
[ -f "$T/cache/sha256/$(sha256sum "$T/good.tar.gz" | cut -d' ' -f1)" ] && ok "the archive is in the source cache by sha256" || fail "archive not cached"
rm "$T/good.tar.gz"
run "$MRECIPE" build -C "$repo" --out "$T/b" --force good
expect "a warm source cache needs no download" 0 "1 built"
printf '%s' "$err" | grep -q downloading && fail "it downloaded again" || ok "nothing was downloaded"
for k in abs:"absolute paths" dotdot:"'..' are not allowed" symlink:"points outside the source tree" device:"not device files"; do
  mkarchive "bad-${k%%:*}" "${k%%:*}"
  run "$MRECIPE" build -C "$repo" --out "$T/b" "bad-${k%%:*}"
  expect "archive with a ${k%%:*} entry is refused" 1 "${k#*:}"
done
[ ! -e "$T/escaped-abs" ] && [ ! -e "$T/escaped-dotdot" ] && ok "nothing was written outside the build folder" || fail "an entry escaped"
printf 'x' >> "$T/cache/sha256/$(sha256sum "$T/bad-abs.tar.gz" | cut -d' ' -f1)"
run "$MRECIPE" build -C "$repo" --out "$T/b" bad-abs
expect "a corrupt cached source is refused, naming both digests" 1 "cached source"
mkarchive mismatch none
sed -i 's/"sha256": "[0-9a-f]*"/"sha256": "0000000000000000000000000000000000000000000000000000000000000000"/' "$repo/recipes/mismatch/recipe.json"
run "$MRECIPE" build -C "$repo" --out "$T/b" mismatch
expect "a sha256 mismatch is refused" 1 "sha256 mismatch: recipe expects 0000"
rm -rf "$repo/recipes/"*
unset MRECIPE_SOURCE_CACHE

# --- build outputs --------------------------------------------------------
w=$FIXTURE/out/wasm32/hello-0.1.0/hello.wasm
if command -v wasm-objdump >/dev/null; then
  imports=$(wasm-objdump -x -j Import "$w" 2>/dev/null | grep -c ' <- ' || true)
  [ "$imports" = 0 ] && ok "hello.wasm imports nothing" || fail "hello.wasm has $imports imports"
  exports=$(wasm-objdump -x -j Export "$w" | grep -oE '"[a-z_]+"$' | tr -d '"' | sort | tr '\n' ' ')
  [ "$exports" = "_initialize memory molt_abi_version molt_alloc molt_call molt_cancel molt_free molt_init molt_poll " ] \
    && ok "hello.wasm exports exactly the ABI" || fail "exports: $exports"
fi
syms=$(nm -D --defined-only "$FIXTURE/out/native/hello-0.1.0/libhello.so" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$syms" = "molt_abi_version molt_alloc molt_call molt_cancel molt_free molt_init molt_poll " ] \
  && ok "libhello.so exports exactly the ABI" || fail "native exports: $syms"
grep -q "$here" "$w" "$FIXTURE/out/native/hello-0.1.0/libhello.so" && fail "build paths leak into artifacts" || ok "no build paths in artifacts"

# --- keys ---------------------------------------------------------------
export MRECIPE_KDF_FAST=1
run "$MRECIPE" keygen -s "$T/k.key" -p "$T/k.pub"
expect "keygen without a passphrase is refused" 2 "no passphrase"
printf 'correct horse\n' > "$T/pass"
run "$MRECIPE" keygen -s "$T/k.key" -p "$T/k.pub" --passphrase-file "$T/pass"
expect "keygen writes an encrypted key" 0 "secret key $T/k.key"
[ "$(stat -c %a "$T/k.key")" = 600 ] && ok "secret key is 0600" || fail "secret key mode $(stat -c %a "$T/k.key")"
run "$MRECIPE" keygen -s "$T/k.key" -p "$T/k.pub" --passphrase-file "$T/pass"
expect "keygen refuses to overwrite a key" 2 "exists"
printf 'wrong\n' > "$T/wrong"
run "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -r "$T/reg" -s "$T/k.key" --passphrase-file "$T/wrong"
expect "a wrong passphrase is refused" 1 "wrong passphrase"

# A passphrase typed on a terminal (script(1) gives the command a pty): not echoed.
if command -v script >/dev/null; then
  (sleep 0.5; printf 'typed secret\n'; sleep 0.5; printf 'typed secret\n') |
    script -qec "$MRECIPE keygen -s $T/tty.key -p $T/tty.pub" /dev/null > "$T/tty.out" 2>&1
  grep -q "secret key $T/tty.key" "$T/tty.out" && ! grep -q 'typed secret' "$T/tty.out" \
    && ok "keygen asks for the passphrase on a terminal, without echo" || fail "tty keygen: $(cat "$T/tty.out")"
  (sleep 0.5; printf 'one\n'; sleep 0.5; printf 'two\n') |
    script -qec "$MRECIPE keygen -s $T/tty2.key -p $T/tty2.pub" /dev/null > "$T/tty.out" 2>&1
  grep -q "the two passphrases differ" "$T/tty.out" && [ ! -e "$T/tty2.key" ] \
    && ok "two different passphrases are refused" || fail "tty mismatch: $(cat "$T/tty.out")"
  (sleep 0.5; printf 'typed secret\n') |
    script -qec "$MRECIPE publish -C $here --out $FIXTURE/out -r $T/tty-reg -s $T/tty.key hello" /dev/null > "$T/tty.out" 2>&1
  grep -q "published hello@0.1.0" "$T/tty.out" && ok "publish asks for an encrypted key's passphrase on a terminal" \
    || fail "tty publish: $(cat "$T/tty.out")"
fi

# --- publish ------------------------------------------------------------
run "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -r "$T/reg" -s "$T/k.key" --passphrase-file "$T/pass"
expect "publish signs and stores both targets" 0 "published hello@0.1.0 (wasm32-wasi)"
snap=$(cat "$T/reg/snapshot.json")
run "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -r "$T/reg" -s "$T/k.key" --passphrase-file "$T/pass"
expect "publishing again is a no-op" 0 "unchanged hello@0.1.0 (wasm32-wasi)"
[ "$snap" = "$(cat "$T/reg/snapshot.json")" ] && ok "an idempotent publish leaves the snapshot alone" || fail "snapshot changed"
run env MRECIPE_SECRET_KEY="$(cat "$FIXTURE/dev.key")" "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -r "$T/reg-ci"
expect "CI signs with a key from the environment" 0 "published hello@0.1.0"
man=$(python3 -c "import json;print(json.load(open('$T/reg/index/hello.json'))['versions']['0.1.0']['wasm32-wasi']['manifest'][7:])")
sig=$(python3 -c "import json;print(json.load(open('$T/reg/index/hello.json'))['versions']['0.1.0']['wasm32-wasi']['signature'][7:])")
if command -v minisign >/dev/null; then
  run minisign -V -p "$T/k.pub" -m "$T/reg/blobs/sha256/$man" -x "$T/reg/blobs/sha256/$sig"
  expect "stock minisign verifies a manifest signature" 0 "Trusted comment: molt unit hello@0.1.0 wasm32-wasi sha256:$man"
  run minisign -V -p "$T/k.pub" -m "$T/reg/snapshot.json"
  expect "stock minisign verifies the snapshot signature" 0 "Trusted comment: molt snapshot"
fi
cp -r "$here/recipes/msgpack-c" "$repo/recipes/"; cp -r "$here/recipes/hello" "$repo/recipes/"
sed -i 's/Hello, /Howdy, /' "$repo/recipes/hello/src/hello.c"
"$MRECIPE" build -C "$repo" --out "$T/out3" hello >/dev/null 2>&1
run "$MRECIPE" publish -C "$repo" --out "$T/out3" -r "$T/reg" -s "$T/k.key" --passphrase-file "$T/pass"
expect "different bytes for a published version are refused" 2 "is already published with manifest"

# --- registry verify ----------------------------------------------------
run "$MRECIPE" verify -r "$T/reg" -k "$T/k.pub"
expect "a fresh registry verifies" 0 "ok"
run "$MRECIPE" verify -r "$T/reg" -k "$FIXTURE/dev.pub"
expect "verify with the wrong key fails, naming the key ids" 1 "expected a signature by a trusted key"
cp -r "$T/reg" "$T/reg-bad"
blob=$(ls "$T/reg-bad/blobs/sha256" | head -n 1)
python3 - "$T/reg-bad/blobs/sha256/$blob" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xff
open(p, "wb").write(bytes(b))
PY
run "$MRECIPE" verify -r "$T/reg-bad" -k "$T/k.pub"
expect "a flipped byte in a blob is caught, naming the path" 1 "blobs/sha256/$blob: content hashes to"
cp "$T/reg/index/hello.json" "$T/reg-bad/index/hello.json"; sed -i 's/"yanked":\tfalse/"yanked":\ttrue/' "$T/reg-bad/index/hello.json"
run "$MRECIPE" verify -r "$T/reg-bad" -k "$T/k.pub"
expect "an edited index is caught against the snapshot" 1 "index/hello.json: hashes to"
cp "$T/reg/index/hello.json" "$T/reg-bad/index/hello.json"
python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[30] ^= 1; open(p, "wb").write(bytes(b))' "$T/reg-bad/snapshot.json"
run "$MRECIPE" verify -r "$T/reg-bad" -k "$T/k.pub"
expect "a flipped byte in the snapshot is caught, naming the file" 1 "snapshot.json: signature does not match"
finish
