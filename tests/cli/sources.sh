#!/usr/bin/env bash
# Sources end to end: git (a bare mirror in the source cache; a warm cache
# needs no network), ordered patches, url downloads (retries, 404, progress),
# and the cjson and jsoninfo recipes on both targets. Git repositories are
# made here with the git CLI; the HTTP server is a local Python one.
. "$(dirname "$0")/lib.sh"

repo=$T/repo
mkdir -p "$repo/recipes"
ln -s "$here/schemas" "$repo/schemas"
ln -s "$here/runtime" "$repo/runtime"
recipe() { mkdir -p "$repo/recipes/$1"; cat > "$repo/recipes/$1/recipe.json"; }
build() { run "$MRECIPE" build -C "$repo" --out "$T/o" --force "$@"; }
export MRECIPE_SOURCE_CACHE=$T/cache
has() { [ -f "$1" ] && grep -qF -- "$2" "$1"; }

# --- git sources ----------------------------------------------------------
origin=$T/origin
g() { git -C "$origin" -c user.name=test -c user.email=test@example.org -c commit.gpgsign=false "$@"; }
git init -q "$origin"
mkdir -p "$origin/include"
printf '#define GSRC_VALUE 1\n' > "$origin/include/gsrc.h"
printf '#include "gsrc.h"\nint gsrc_value(void) { return GSRC_VALUE; }\n' > "$origin/gsrc.c"
ln -s gsrc.c "$origin/alias.c"
g add -A && g commit -qm one
one=$(g rev-parse HEAD)
tree=$(g rev-parse 'HEAD^{tree}')
printf '#define GSRC_VALUE 2\n' > "$origin/include/gsrc.h"
g commit -qam two
gitlib() { # COMMIT [URL]: a library built from the origin repository
  recipe gsrc <<J
{"name": "gsrc", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"git": "${2:-file://$origin}", "commit": "$1"}, "targets": ["native"],
 "build": {"sources": ["gsrc.c"], "include_dirs": ["include"], "public_include_dirs": ["include"]}}
J
}
gitlib "$one"
build gsrc
expect "a git source builds" 0 "1 built"
expect "... fetching once" 0 "gsrc: fetching file://$origin"
has "$T/o/native/gsrc-1.0.0/include/gsrc.h" "GSRC_VALUE 1" \
  && ok "the pinned commit is built, not the branch head" || fail "wrong tree: $(cat "$T/o/native/gsrc-1.0.0/include/gsrc.h")"
nm "$T/o/native/gsrc-1.0.0/lib/libgsrc.a" | grep -q ' T gsrc_value' && ok "the library has its symbol" || fail "no gsrc_value"
src=$T/o/work/native/gsrc/src
[ ! -e "$src/.git" ] && [ -L "$src/alias.c" ] && [ "$(readlink "$src/alias.c")" = gsrc.c ] \
  && ok "the tree is written without .git, links kept" || fail "work tree: $(ls -la "$src")"
mirror=$T/cache/git/$(printf '%s' "file://$origin" | sha256sum | cut -d' ' -f1).git
[ -f "$mirror/HEAD" ] && [ -d "$mirror/objects" ] && ok "a bare mirror is kept in the source cache by URL" || fail "no mirror at $mirror"

build gsrc
expect "a commit already in the mirror builds" 0 "1 built"
printf '%s' "$err" | grep -q fetching && fail "it fetched again: $err" || ok "... without fetching"

gitlib 0123456789abcdef0123456789abcdef01234567
build gsrc
expect "an unknown commit is exit 1" 1 "commit 0123456789abcdef0123456789abcdef01234567 is not in file://$origin"
gitlib "$tree"
build gsrc
expect "a tree id is not a commit" 1 "$tree in file://$origin is a tree, not a commit"
gitlib "$one" "$T/no-such-repo"
build gsrc
expect "an unreachable repository is exit 3" 3 "gsrc: fetching $T/no-such-repo:"

mv "$origin" "$T/origin-gone"
gitlib "$one"
rm -rf "$T/o"
build gsrc
expect "a warm cache builds with the origin deleted" 0 "1 built"
has "$T/o/native/gsrc-1.0.0/include/gsrc.h" "GSRC_VALUE 1" && ok "... the same tree" || fail "warm tree differs"
mv "$T/origin-gone" "$origin"

# --- patches --------------------------------------------------------------
recipe plib <<'J'
{"name": "plib", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"path": "src", "patches": ["patches/01-value.patch", "patches/02-name.patch"]},
 "targets": ["native"],
 "build": {"sources": ["p.c"], "include_dirs": ["include"], "public_include_dirs": ["include"]}}
J
p=$repo/recipes/plib
mkdir -p "$p/src/include" "$p/patches"
for i in $(seq 1 20); do echo "/* line $i */"; done > "$p/src/include/p.h"
sed -i '3s/.*/#define P_VALUE 1/' "$p/src/include/p.h"
printf '#include "p.h"\nint p_value(void) { return P_VALUE; }\n' > "$p/src/p.c"
cp -r "$p/src" "$T/pa"; cp -r "$p/src" "$T/pb"
sed -i 's/P_VALUE 1/P_VALUE 2/' "$T/pb/include/p.h"
(cd "$T" && diff -u pa/include/p.h pb/include/p.h) | sed '1s|.*|--- a/include/p.h|;2s|.*|+++ b/include/p.h|' > "$p/patches/01-value.patch"
cp -r "$T/pb" "$T/pc"
sed -i '/P_VALUE 2/a #define P_NAME "patched"' "$T/pc/include/p.h"
(cd "$T" && diff -u pb/include/p.h pc/include/p.h) | sed '1s|.*|--- a/include/p.h|;2s|.*|+++ b/include/p.h|' > "$p/patches/02-name.patch"
build plib
expect "patches apply in order to a path source" 0 "1 built"
h=$T/o/native/plib-1.0.0/include/p.h
has "$h" "P_VALUE 2" && has "$h" '#define P_NAME "patched"' \
  && ok "both patches are in the output header" || fail "header: $(cat "$h")"
has "$p/src/include/p.h" "P_VALUE 1" && ! has "$p/src/include/p.h" P_NAME \
  && ok "the recipe folder itself is not patched" || fail "recipe folder changed"
has "$T/o/work/native/plib/build.log" "== patch patches/02-name.patch" && ok "patch output is in the build log" || fail "no patch log"

sed -i 's|"patches/01-value.patch", "patches/02-name.patch"|"patches/02-name.patch", "patches/01-value.patch"|' "$p/recipe.json"
build plib
expect "the order matters: 02 needs 01's line" 1 "plib: patch patches/02-name.patch: hunk #1 FAILED at 1 in include/p.h"

# Two hunks; the second expects a line 14 that is not there.
cat > "$p/patches/03-bad.patch" <<'P'
--- a/include/p.h
+++ b/include/p.h
@@ -1,3 +1,3 @@
-/* line 1 */
+/* line one */
 /* line 2 */
 #define P_VALUE 1
@@ -14,3 +14,3 @@
 /* line 14 */
-/* line fifteen */
+/* line 15, patched */
 /* line 16 */
P
sed -i 's|"patches": \[[^]]*\]|"patches": ["patches/03-bad.patch"]|' "$p/recipe.json"
build plib
expect "a failing patch is exit 1 naming patch and hunk" 1 "patch patches/03-bad.patch: hunk #2 FAILED at 14 in include/p.h"
expect "... and what to do" 1 "regenerate it against the unpacked source"
sed -i 's|"patches/03-bad.patch"|"patches/09-missing.patch"|' "$p/recipe.json"
build plib
expect "a missing patch file is exit 2" 2 "$p/patches/09-missing.patch"
printf 'not a patch\n' > "$p/patches/04-garbage.patch"
sed -i 's|"patches/09-missing.patch"|"patches/04-garbage.patch"|' "$p/recipe.json"
build plib
expect "a file that is not a patch is refused" 1 "patch patches/04-garbage.patch: Only garbage was found in the patch input"

# A patched git source: the patch changes the checked-out tree.
(cd "$T" && mkdir -p ga/include gb/include && git -C "$origin" show "$one:include/gsrc.h" > ga/include/gsrc.h &&
  sed 's/GSRC_VALUE 1/GSRC_VALUE 42/' ga/include/gsrc.h > gb/include/gsrc.h &&
  diff -u ga/include/gsrc.h gb/include/gsrc.h | sed '1s|.*|--- a/include/gsrc.h|;2s|.*|+++ b/include/gsrc.h|' > gsrc.patch)
gitlib "$one"
mkdir -p "$repo/recipes/gsrc/patches" && cp "$T/gsrc.patch" "$repo/recipes/gsrc/patches/01-value.patch"
sed -i 's|"commit": "\([0-9a-f]*\)"|"commit": "\1", "patches": ["patches/01-value.patch"]|' "$repo/recipes/gsrc/recipe.json"
build gsrc
expect "a patched git source builds" 0 "1 built"
has "$T/o/native/gsrc-1.0.0/include/gsrc.h" "GSRC_VALUE 42" && ok "... with the patch applied" || fail "git patch not applied"
rm -rf "$repo/recipes/"*

# --- url sources: retries, 404, progress ------------------------------------
mkdir -p "$T/www/pkg"
printf 'int u_x(void) { return 7; }\n' > "$T/www/pkg/u.c"
tar -C "$T/www" -czf "$T/www/u.tar.gz" pkg
sum=$(sha256sum "$T/www/u.tar.gz" | cut -d' ' -f1)
cat > "$T/server.py" <<'PY'
# Serves files from a folder on 127.0.0.1: /flaky/* answers 503 twice, then
# the file; /down/* always 503; a missing file 404. Logs every request path.
# Stops by itself after two minutes.
import http.server, os, sys, threading
root, portfile, logfile = sys.argv[1:4]
hits = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        n = hits[self.path] = hits.get(self.path, 0) + 1
        with open(logfile, "a") as f:
            f.write(self.path + "\n")
        if self.path.startswith("/down/") or (self.path.startswith("/flaky/") and n <= 2):
            return self.send_error(503)
        path = os.path.join(root, os.path.basename(self.path))
        if not os.path.isfile(path):
            return self.send_error(404)
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 512):
            self.wfile.write(data[i:i + 512])
    def log_message(self, *args):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(portfile + ".tmp", portfile)
threading.Timer(120, s.shutdown).start()
s.serve_forever()
PY
python3 "$T/server.py" "$T/www" "$T/port" "$T/hits" &
server=$!
cleanup="kill $server 2>/dev/null"
for _ in $(seq 50); do [ -f "$T/port" ] && break; sleep 0.1; done
port=$(cat "$T/port" 2>/dev/null)
urllib() { # NAME URL-PATH
  recipe "$1" <<J
{"name": "$1", "version": "1.0.0", "summary": "x", "license": "MIT", "kind": "library",
 "source": {"url": "http://127.0.0.1:$port$2", "sha256": "$sum"}, "targets": ["native"],
 "build": {"sources": ["u.c"]}}
J
}
hits() { grep -c "^$1\$" "$T/hits" 2>/dev/null || true; }

urllib flaky /flaky/u.tar.gz
build flaky
expect "a download succeeds after two 503s" 0 "1 built"
expect "... saying it retries" 0 "fetching http://127.0.0.1:$port/flaky/u.tar.gz: HTTP 503; retrying in 1 s (try 2 of 3)"
expect "... with backoff" 0 "HTTP 503; retrying in 2 s (try 3 of 3)"
[ "$(hits /flaky/u.tar.gz)" = 3 ] && ok "... in exactly three requests" || fail "requests: $(hits /flaky/u.tar.gz)"
[ -f "$T/cache/sha256/$sum" ] && ok "... and the archive is cached" || fail "not cached"

rm -f "$T/cache/sha256/$sum"
urllib missing /missing.tar.gz
build missing
expect "a 404 is exit 3 naming the URL" 3 "missing: fetching http://127.0.0.1:$port/missing.tar.gz: HTTP 404 (not retried"
[ "$(hits /missing.tar.gz)" = 1 ] && ok "... after one request" || fail "404 requests: $(hits /missing.tar.gz)"
urllib down /down/u.tar.gz
build down
expect "a server that stays down is given up on" 3 "HTTP 503 (gave up after 3 tries)"
[ "$(hits /down/u.tar.gz)" = 3 ] && ok "... after three requests" || fail "503 requests: $(hits /down/u.tar.gz)"
ls "$T/cache/sha256" | grep -q part && fail "a partial download was left in the cache" || ok "no partial files are left in the cache"

urllib plain /u.tar.gz
run script -qec "'$MRECIPE' build -C '$repo' --out '$T/o' --force -j1 plain" /dev/null
size=$(stat -c %s "$T/www/u.tar.gz")
expect "a download on a terminal shows a progress line" 0 "plain: $size B / $size B (100%)"
rm -rf "$repo/recipes/"*

# --- cjson and jsoninfo ------------------------------------------------------
default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/mrecipe/sources
mkdir -p "$T/cache/sha256"
for s in 5308fd4bd90cef7aa060558514de6a1a4a0819974a26e6ed13973c5f624c24b2 \
         420fe35e7572f2a168d17e660ef981a589c9cbe77faa25eb34a520e1fcc032c8; do
  [ -f "$default_cache/sha256/$s" ] && cp "$default_cache/sha256/$s" "$T/cache/sha256/$s"
done
run "$MRECIPE" build -C "$here" --out "$T/real" jsoninfo
expect "cjson, msgpack-c and jsoninfo build for both targets (run scripts/setup if the sources are missing)" 0 "6 built"
for t in wasm32 native; do
  [ -f "$T/real/$t/cjson-1.7.15/lib/libcjson.a" ] && [ -f "$T/real/$t/cjson-1.7.15/include/cJSON.h" ] \
    && ok "cjson for $t: library and public header" || fail "cjson $t outputs: $(ls -R "$T/real/$t/cjson-1.7.15" 2>&1)"
done
has "$T/real/work/wasm32/cjson/src/cJSON.c" "molt-recipes: numbers of any length" && ok "cjson's patches are applied" || fail "cjson unpatched"
w=$T/real/wasm32/jsoninfo-0.1.0/jsoninfo.wasm
if command -v wasm-objdump >/dev/null; then
  imports=$(wasm-objdump -x -j Import "$w" 2>/dev/null | grep -c ' <- ' || true)
  [ -f "$w" ] && [ "$imports" = 0 ] && ok "jsoninfo.wasm imports nothing" || fail "jsoninfo.wasm imports: $(wasm-objdump -x -j Import "$w" 2>&1)"
else
  fail "wasm-objdump not found; apt-get install wabt"
fi
syms=$(nm -D --defined-only "$T/real/native/jsoninfo-0.1.0/libjsoninfo.so" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$syms" = "molt_abi_version molt_alloc molt_call molt_cancel molt_free molt_init molt_poll " ] \
  && ok "libjsoninfo.so exports exactly the ABI (cJSON stays hidden)" || fail "native exports: $syms"

run "$MRECIPE" test -C "$here" --out "$T/real" jsoninfo
expect "jsoninfo's test vectors pass on both targets" 0 "17 cases, 0 failed"

# Calls on both targets: natively through molt, as wasm through runtime/js.
MRECIPE_KDF_FAST=1 "$MRECIPE" keygen --unencrypted -s "$T/k.key" -p "$T/k.pub" >/dev/null
run "$MRECIPE" publish -C "$here" --out "$T/real" -r "$T/reg" -s "$T/k.key" jsoninfo
expect "jsoninfo publishes for both targets" 0 "published jsoninfo@0.1.0 (wasm32-wasi)"
req() { python3 -c 'import json,sys; print(json.dumps({"text": sys.argv[1]}))' "$1"; }
norm() { python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read()), separators=(",", ":")))' 2>/dev/null; }
call() { # JSON-TEXT: sets out/err/code from molt (native) and wasm_out from Node
  run "$MOLT" call --cache "$T/mc" -k "$T/k.pub" -r "$T/reg" jsoninfo@0.1.0 inspect "$(req "$1")"
  wasm_out=$(node "$here/runtime/js/molt-node.mjs" call --registry "$T/reg" --key "$T/k.pub" \
    jsoninfo@0.1.0 inspect "$(req "$1")" 2>&1 | norm)
}
call '{"b": [1, 2, {"c": null}], "a": "x"}'
expect "inspect an object (native)" 0 '{"type":"object","depth":3,"count":2,"keys":["b","a"]}'
[ -n "$out" ] && [ "$wasm_out" = "$out" ] && ok "... the wasm unit agrees" || fail "wasm said: $wasm_out"
call '[[], 1.5e3, true]'
expect "inspect an array" 0 '{"type":"array","depth":2,"count":3,"keys":[]}'
[ -n "$out" ] && [ "$wasm_out" = "$out" ] && ok "... the wasm unit agrees" || fail "wasm said: $wasm_out"
call ' "just a string" '
expect "inspect a scalar" 0 '{"type":"string","depth":0,"count":0,"keys":[]}'
call '{"a": [1, 2,, 3]}'
expect "invalid JSON is a validation error at text with the byte offset" 2 \
  "validation error 1 at text: expected a JSON document, found invalid JSON: parsing stopped at byte 12 (line 1, column 13)"
call '{} {}'
expect "text after the document is refused" 2 "found more text after it at byte 3"
call "$(python3 -c 'print("[" * 300 + "]" * 300)')"
expect "nesting is capped before cJSON recurses" 2 "nested at most 256 deep, found deeper nesting at byte 256"

# A module that prints JSON with cJSON (numbers, escapes, the version) still
# imports nothing, and prints the same bytes on both targets.
cp -r "$here/recipes/cjson" "$here/recipes/msgpack-c" "$repo/recipes/"
recipe cjprint <<'J'
{"name": "cjprint", "version": "0.1.0", "summary": "x", "license": "MIT", "kind": "module",
 "abi_version": "0.1", "source": {"path": "src"},
 "depends": [{"name": "cjson"}, {"name": "msgpack-c"}],
 "functions": [{"id": 1, "name": "greet", "input": "hello.greet_request@1", "output": "hello.greet_response@1"}],
 "targets": ["wasm32", "native"], "build": {"sources": ["cjprint.c"]}}
J
mkdir -p "$repo/recipes/cjprint/src"
cat > "$repo/recipes/cjprint/src/cjprint.c" <<'C'
#include "molt/module.h"
#include "cJSON.h"
static int greet(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	const char *name;
	uint32_t len;
	cJSON *a = cJSON_CreateArray();
	char *s;
	if (molt_get_str(t, in, "name", &name, &len))
		return MOLT_FAILED;
	cJSON_AddItemToArray(a, cJSON_CreateNumber(0.1 * len));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(1.0000000000000004));
	cJSON_AddItemToArray(a, cJSON_CreateNumber(1e300 * len));
	cJSON_AddItemToArray(a, cJSON_CreateString("\x01"));
	cJSON_AddItemToArray(a, cJSON_CreateString(cJSON_Version()));
	s = cJSON_PrintUnformatted(a);
	msgpack_pack_map(out, 1);
	molt_pack_str(out, "greeting");
	molt_pack_str(out, s ? s : "");
	cJSON_free(s);
	cJSON_Delete(a);
	return MOLT_DONE;
}
MOLT_FUNCTIONS({ 1, "greet", "hello.greet_request", 1, "hello.greet_response", 1, greet });
C
run "$MRECIPE" build -C "$repo" --out "$T/real" cjprint
expect "a module printing JSON with cJSON builds" 0 "cjprint 0.1.0 (wasm32) built"
imports=$(wasm-objdump -x -j Import "$T/real/wasm32/cjprint-0.1.0/cjprint.wasm" 2>/dev/null | grep -c ' <- ' || true)
[ -f "$T/real/wasm32/cjprint-0.1.0/cjprint.wasm" ] && [ "$imports" = 0 ] \
  && ok "cJSON's printing pulls no stdio, no WASI imports" || fail "cjprint.wasm imports: $imports"
run "$MRECIPE" publish -C "$repo" --out "$T/real" -r "$T/reg" -s "$T/k.key" cjprint
run "$MOLT" call --cache "$T/mc" -k "$T/k.pub" -r "$T/reg" cjprint@0.1.0 greet '{"name":"Ada"}'
expect "cJSON prints numbers as %1.15g/%1.17g would, natively" 0 '{"greeting":"[0.3,1.0000000000000004,3e+300,\"\\u0001\",\"1.7.15\"]"}'
wasm_out=$(node "$here/runtime/js/molt-node.mjs" call --registry "$T/reg" --key "$T/k.pub" cjprint@0.1.0 greet '{"name":"Ada"}' 2>&1 | norm)
[ -n "$out" ] && [ "$wasm_out" = "$out" ] && ok "... and the same bytes as wasm" || fail "wasm said: $wasm_out"

# The source digest of the same files is the same from a folder and a commit.
hsrc=$T/hsrc
git init -q "$hsrc" && cp "$here/recipes/hello/src/hello.c" "$hsrc/"
git -C "$hsrc" add -A && git -C "$hsrc" -c user.name=test -c user.email=test@example.org -c commit.gpgsign=false commit -qm hello
mkdir -p "$repo/recipes/hpath/src" && cp "$here/recipes/hello/src/hello.c" "$repo/recipes/hpath/src/"
for k in hpath:'{"path": "src"}' hgit:"{\"git\": \"$hsrc\", \"commit\": \"$(git -C "$hsrc" rev-parse HEAD)\"}"; do
  recipe "${k%%:*}" <<J
{"name": "${k%%:*}", "version": "0.1.0", "summary": "x", "license": "MIT", "kind": "module",
 "abi_version": "0.1", "source": ${k#*:}, "depends": [{"name": "msgpack-c"}],
 "functions": [{"id": 1, "name": "greet", "input": "hello.greet_request@1", "output": "hello.greet_response@1"}],
 "targets": ["native"], "build": {"sources": ["hello.c"]}}
J
done
run "$MRECIPE" build -C "$repo" --out "$T/real" hpath hgit
expect "a module builds from a folder and from a commit" 0 "hgit 0.1.0 (native) built"
prov() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["provenance"]["source"])' "$T/real/native/$1-0.1.0/manifest.json" 2>/dev/null; }
[ -n "$(prov hpath)" ] && [ "$(prov hpath)" = "$(prov hgit)" ] \
  && ok "... with the same tree digest ($(prov hgit | cut -c1-19)...)" || fail "digests: $(prov hpath) vs $(prov hgit)"
finish
