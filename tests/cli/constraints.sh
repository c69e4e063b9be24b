#!/usr/bin/env bash
# What a wasm unit may import and export (docs/abi.md): mrecipe build refuses
# a bad unit right after linking it, mrecipe publish refuses a bad artifact,
# each naming the import or export exactly; the repo's real units pass.
. "$(dirname "$0")/lib.sh"

repo=$T/repo
mkdir -p "$repo/recipes"
ln -s "$here/schemas" "$repo/schemas"
ln -s "$here/runtime" "$repo/runtime"
cp -r "$here/recipes/"{msgpack-c,cjson,hello,jsoninfo} "$repo/recipes/"
key=$FIXTURE/dev.key
no_import="units may import nothing (docs/abi.md)"
no_export="units export only memory, _initialize and the seven molt_* functions (docs/abi.md)"

# unit NAME: a wasm32 module recipe whose C source is stdin.
unit() {
  mkdir -p "$repo/recipes/$1/src"
  cat > "$repo/recipes/$1/src/unit.c"
  cat > "$repo/recipes/$1/recipe.json" <<J
{"name": "$1", "version": "0.1.0", "summary": "x", "license": "MIT", "kind": "module",
 "abi_version": "0.1", "source": {"path": "src"}, "depends": [{"name": "msgpack-c"}],
 "functions": [{"id": 1, "name": "greet", "input": "hello.greet_request@1",
                "output": "hello.greet_response@1"}],
 "targets": ["wasm32"], "build": {"sources": ["unit.c"]}}
J
}

# --- the real units pass, at build and at publish ---------------------------
run "$MRECIPE" build -C "$repo" --out "$T/o" hello jsoninfo
expect "hello and jsoninfo build (the check passes on their wasm32 builds)" 0 "8 built"
run "$MRECIPE" publish -C "$repo" --out "$T/o" -r "$T/reg" -s "$key" hello jsoninfo
expect "hello publishes" 0 "published hello@0.1.0 (wasm32-wasi)"
expect "jsoninfo publishes" 0 "published jsoninfo@0.1.0 (wasm32-wasi)"
run "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -r "$T/reg-fixture" -s "$key" hello jsoninfo
expect "the fixture's units publish" 0 "published hello@0.1.0 (wasm32-wasi)"

# --- build refuses bad units -----------------------------------------------
unit printer <<'C'
#include "molt/module.h"
#include <stdio.h>

static int greet(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	(void)t; (void)in;
	printf("hello from inside the sandbox\n");
	msgpack_pack_nil(out);
	return MOLT_DONE;
}

MOLT_FUNCTIONS({ 1, "greet", "hello.greet_request", 1, "hello.greet_response", 1, greet });
C
run "$MRECIPE" build -C "$repo" --out "$T/o" printer
expect "build refuses a unit calling printf, naming the WASI import" 1 \
  "import wasi_snapshot_preview1.fd_write is not allowed: $no_import"
expect "... and says which unit and file" 1 "building printer 0.1.0 for wasm32: $T/o/wasm32/printer-0.1.0/printer.wasm: "
[ ! -e "$T/o/wasm32/printer-0.1.0/manifest.json" ] && ok "a refused unit gets no manifest" \
  || fail "manifest written for a refused unit"

unit exporter <<'C'
#include "molt/module.h"

__attribute__((export_name("extra"))) int extra(int x) { return x + 1; }

static int greet(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	(void)t; (void)in;
	msgpack_pack_nil(out);
	return MOLT_DONE;
}

MOLT_FUNCTIONS({ 1, "greet", "hello.greet_request", 1, "hello.greet_response", 1, greet });
C
run "$MRECIPE" build -C "$repo" --out "$T/o" exporter
expect "build refuses an extra exported function, naming it" 1 "export extra is not allowed: $no_export"
expect "... as its only problem" 1 "1 problem with its imports and exports:"

unit both <<'C'
#include "molt/module.h"
#include <stdio.h>

__attribute__((export_name("extra"))) int extra(int x) { return x + 1; }

static int greet(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	(void)t; (void)in;
	printf("hi\n");
	msgpack_pack_nil(out);
	return MOLT_DONE;
}

MOLT_FUNCTIONS({ 1, "greet", "hello.greet_request", 1, "hello.greet_response", 1, greet });
C
run "$MRECIPE" build -C "$repo" --out "$T/o" both
expect "build lists every problem: the import" 1 "  import wasi_snapshot_preview1.fd_write is not allowed"
expect "build lists every problem: the export" 1 "  export extra is not allowed"
n=$(printf '%s\n' "$err" | grep -cE '^  (import|export) ')
[ "$n" -ge 2 ] && ok "one line per problem ($n)" || fail "expected a line per problem: $err"

# --- publish refuses bad artifacts -------------------------------------------
if ! command -v wat2wasm >/dev/null; then
  echo "# wat2wasm (apt-get install wabt) not found: skipping the publish checks"
  finish
  exit
fi
# A complete, valid unit in the text format; `sed` edits make bad ones.
cat > "$T/good.wat" <<'W'
(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "molt_abi_version") (result i32) i32.const 1)
  (func (export "molt_alloc") (param i32) (result i32) i32.const 0)
  (func (export "molt_free") (param i32 i32))
  (func (export "molt_init") (param i32 i32) (result i32) i32.const 0)
  (func (export "molt_call") (param i32 i32 i32) (result i64) i64.const 1)
  (func (export "molt_poll") (param i64 i32 i32) (result i32) i32.const 2)
  (func (export "molt_cancel") (param i64) (result i32) i32.const 0))
W

# handmade NAME WAT [MEDIA_TYPE]: a wasm32 unit built from WAT, with a
# manifest.json carrying its right digest and size (shaped like hello's).
handmade() {
  local name=$1 dir=$T/o/wasm32/$1-0.1.0
  unit "$name" </dev/null
  mkdir -p "$dir"
  printf '%s\n' "$2" > "$T/$name.wat"
  wat2wasm "$T/$name.wat" -o "$dir/$name.wasm" || { fail "wat2wasm $name"; return; }
  python3 - "$T/o/wasm32/hello-0.1.0/manifest.json" "$dir" "$name" "${3:-application/wasm}" <<'PY'
import hashlib, json, os, sys
src, d, name, media = sys.argv[1:]
m = json.load(open(src))
art = open(os.path.join(d, name + ".wasm"), "rb").read()
m["name"] = name
m["artifact"] = {"digest": "sha256:" + hashlib.sha256(art).hexdigest(), "size": len(art),
                 "media_type": media}
json.dump(m, open(os.path.join(d, "manifest.json"), "w"), indent="\t")
PY
}
publish() { run "$MRECIPE" publish -C "$repo" --out "$T/o" -r "$T/reg" -s "$key" "$@"; }
good=$(cat "$T/good.wat")

handmade handgood "$good"
publish handgood
expect "a hand-made valid unit publishes (the manifest shape is right)" 0 "published handgood@0.1.0 (wasm32-wasi)"

handmade evil "${good/(module/(module (import \"env\" \"evil\" (func))}"
publish evil
expect "publish refuses a forbidden import, naming it" 1 "import env.evil is not allowed: $no_import"
expect "... with the unit and the artifact" 1 "publishing evil 0.1.0 (wasm32): $T/o/wasm32/evil-0.1.0/evil.wasm: 1 problem"
[ ! -e "$T/reg/index/evil.json" ] && ! grep -q evil "$T/reg/snapshot.json" \
  && ok "nothing of a refused unit reaches the registry" || fail "evil is in the registry"
[ -z "$(ls "$T/reg/blobs/sha256" | grep -x "$(sha256sum "$T/o/wasm32/evil-0.1.0/evil.wasm" | cut -d' ' -f1)")" ] \
  && ok "... not even its blob" || fail "evil's artifact blob was stored"

handmade liar "${good/(module/(module (import \"env\" \"evil\" (func))}" application/vnd.molt.native-unit
publish liar
expect "a manifest calling a wasm artifact native does not skip the check" 1 "import env.evil is not allowed"

handmade starter "${good/(func (export \"_initialize\"))/(func (export \"_start\"))}"
publish starter
expect "publish refuses _start, naming it" 1 "export _start is not allowed: $no_export"

handmade heapy "${good/(module/(module (global (export \"__heap_base\") i32 (i32.const 0))}"
publish heapy
expect "publish refuses an exported global, naming it" 1 "export __heap_base is not allowed"

handmade lacking "${good/(func (export \"molt_cancel\") (param i64) (result i32) i32.const 0)/}"
publish lacking
expect "publish refuses a missing ABI export, naming it" 1 "missing export molt_cancel"

handmade future "${good/(result i32) i32.const 1)/(result i32) i32.const 0x10000)}"
publish future
expect "publish refuses an ABI version other than the manifest's" 1 \
  'molt_abi_version returns 0x00010000 (ABI 1.0), but the manifest says abi_version "0.1" (0x00000001)'

handmade computed "${good/(result i32) i32.const 1)/(result i32) i32.const 0 i32.const 1 i32.add)}"
publish computed
expect "publish refuses a molt_abi_version that is not a constant" 1 "molt_abi_version does not return a constant"

handmade typo "${good/(param i64 i32 i32) (result i32) i32.const 2/(param i32 i32 i32) (result i32) i32.const 2}"
publish typo
expect "publish refuses an ABI export of the wrong type" 1 \
  "export molt_poll has type (i32, i32, i32) -> i32, expected (i64, i32, i32) -> i32"

handmade broken "$good"
w=$T/o/wasm32/broken-0.1.0/broken.wasm
head -c 40 "$w" > "$w.cut" && mv "$w.cut" "$w"
python3 - "$T/o/wasm32/broken-0.1.0" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]; p = os.path.join(d, "manifest.json"); m = json.load(open(p))
art = open(os.path.join(d, "broken.wasm"), "rb").read()
m["artifact"]["digest"] = "sha256:" + hashlib.sha256(art).hexdigest(); m["artifact"]["size"] = len(art)
json.dump(m, open(p, "w"), indent="\t")
PY
publish broken
expect "publish refuses a truncated module as malformed, with section and offset" 2 "malformed wasm at byte "

run "$MRECIPE" verify -r "$T/reg" -k "$FIXTURE/dev.pub"
expect "the registry is intact after the refusals" 0 "ok"
finish
