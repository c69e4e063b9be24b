#!/usr/bin/env bash
# molt serve against real curl on 127.0.0.1: status codes, headers, ranges,
# conditional requests, path safety, the "port in use" exit status, and the
# run endpoint (POST /run/NAME@VERSION/FUNCTION): bytes, errors, limits,
# concurrency, client disconnects and refusals at start.
# MOLT names the binary (default: build/runtime/molt under the repo root);
# FIXTURE the signed test registry (default: build/test, made if missing).
set -u

here=$(cd "$(dirname "$0")/../.." && pwd)
MOLT=${MOLT:-$here/build/runtime/molt}
pass=0
fail=0
srv=
tmp=$(mktemp -d "${TMPDIR:-/tmp}/molt-serve.XXXXXX") || exit 2

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	if [ -n "$srv" ]; then
		kill "$srv" 2>/dev/null
		wait "$srv" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
	pass=$((pass + 1))
	echo "ok - $1"
}

nok() {
	fail=$((fail + 1))
	echo "not ok - $1"
	if [ -n "${2-}" ]; then printf '#   %s\n' "$2"; fi
}

# expect NAME EXPECTED ACTUAL
expect() {
	if [ "$2" = "$3" ]; then ok "$1"; else nok "$1" "expected '$2', found '$3'"; fi
}

finish() {
	if [ "$fail" -gt 0 ] && [ -s "$tmp/err" ]; then
		echo "# server stderr:"
		sed 's/^/#   /' "$tmp/err" | tail -n 40
	fi
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
}

# get PATH [curl options...]: prints the status; headers in $tmp/h, body in $tmp/b.
get() {
	local path=$1
	shift
	: >"$tmp/h"
	: >"$tmp/b"
	curl -sS --path-as-is --max-time 10 -o "$tmp/b" -D "$tmp/h" \
		-w '%{http_code}' "$@" "$base$path" 2>>"$tmp/curl.err"
}

# hdr NAME: the value of header NAME in the last response.
hdr() {
	tr -d '\r' <"$tmp/h" | sed -n "s/^$1: //Ip" | head -n 1
}

# raw REQUEST: sends REQUEST bytes as they are and prints the whole answer.
raw() {
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf '%b' "$1" >&"$fd"
	timeout 10 cat <&"$fd"
	exec {fd}>&-
}

# not_leaked NAME: the last body holds neither the secret nor /etc/passwd.
not_leaked() {
	if grep -q -e 'SECRET-7f3a' -e 'root:' "$tmp/b"; then
		nok "$1 leaks nothing" "the body holds the file outside the root"
	else
		ok "$1 leaks nothing"
	fi
}

if ! command -v curl >/dev/null; then
	nok "curl is installed" "install curl (apt-get install curl)"
	finish
fi
if [ ! -x "$MOLT" ]; then
	nok "molt binary at $MOLT" "build it first or set MOLT"
	finish
fi

# The tree: root/ is served; outside/ holds what must never be served.
root=$tmp/root
mkdir -p "$root/blobs/sha256" "$root/index" "$root/sub" "$root/demo" \
	"$root/empty-folder" "$tmp/outside" "$tmp/elsewhere/blobs/sha256" \
	"$tmp/elsewhere/deep"
echo 'SECRET-7f3a do not serve' >"$tmp/outside/secret.txt"
printf '<!doctype html><title>root</title>\n' >"$root/index.html"
printf 'demo page\n' >"$root/demo/index.html"
printf '\0asm\1\0\0\0\1\2\3\4\5\6\7\10\11\12' >"$root/hello.wasm"
printf '{"format": 1, "version": 3}\n' >"$root/snapshot.json"
printf 'untrusted comment: x\n' >"$root/snapshot.json.minisig"
printf '{"format": 1, "name": "hello"}\n' >"$root/index/hello.json"
printf 'blob bytes\n' >"$tmp/blob"
hex=$(sha256sum "$tmp/blob" | cut -d' ' -f1)
cp "$tmp/blob" "$root/blobs/sha256/$hex"
cp "$tmp/blob" "$tmp/elsewhere/blobs/sha256/$hex"
ln -s "$tmp/outside/secret.txt" "$root/sub/secret.txt"
ln -s "$tmp/outside" "$root/sub/out"
ln -s /etc/passwd "$root/sub/passwd"
ln -s ../index.html "$root/sub/inner.html"
ln -s "$tmp/elsewhere" "$root/registry"
ln -s "$tmp/outside/secret.txt" "$tmp/elsewhere/deep/secret.txt"

"$MOLT" serve --port 0 --root "$root" >"$tmp/out" 2>"$tmp/err" &
srv=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's|^serving .* on http://127\.0\.0\.1:\([0-9]\{1,5\}\)/$|\1|p' "$tmp/out")
	[ -n "$port" ] && break
	kill -0 "$srv" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$port" ]; then
	nok "server starts and prints 'serving DIR on http://127.0.0.1:PORT/'" \
		"stdout: $(cat "$tmp/out")"
	finish
fi
ok "server starts and prints its address (port $port)"
expect "exactly one line on stdout" 1 "$(wc -l <"$tmp/out")"
base=http://127.0.0.1:$port

# Plain files and MIME types.
expect "GET / is 200" 200 "$(get /)"
expect "GET / serves index.html" "$(cat "$root/index.html")" "$(cat "$tmp/b")"
expect "index.html is text/html" "text/html; charset=utf-8" "$(hdr Content-Type)"
expect "Accept-Ranges: bytes" bytes "$(hdr Accept-Ranges)"
expect "GET /hello.wasm is 200" 200 "$(get /hello.wasm)"
expect ".wasm is application/wasm" application/wasm "$(hdr Content-Type)"
if cmp -s "$root/hello.wasm" "$tmp/b"; then ok ".wasm body is exact"; else nok ".wasm body is exact"; fi
expect "GET /snapshot.json is 200" 200 "$(get /snapshot.json)"
expect "snapshot.json is application/json" application/json "$(hdr Content-Type)"
expect "snapshot.json is no-cache" no-cache "$(hdr Cache-Control)"
expect "GET /snapshot.json.minisig is 200" 200 "$(get /snapshot.json.minisig)"
expect ".minisig is text/plain" "text/plain; charset=utf-8" "$(hdr Content-Type)"
expect "index/ file is no-cache" no-cache "$(get /index/hello.json >/dev/null; hdr Cache-Control)"

# Blobs: immutable, named by their digest.
expect "GET blob is 200" 200 "$(get "/blobs/sha256/$hex")"
expect "blob is immutable" "public, max-age=31536000, immutable" "$(hdr Cache-Control)"
expect "blob ETag is its name" "\"$hex\"" "$(hdr ETag)"
expect "blob is application/octet-stream" application/octet-stream "$(hdr Content-Type)"

# Conditional requests.
expect "If-None-Match on a blob is 304" 304 \
	"$(get "/blobs/sha256/$hex" -H "If-None-Match: \"$hex\"")"
expect "304 has no body" 0 "$(wc -c <"$tmp/b")"
expect "304 keeps the ETag" "\"$hex\"" "$(hdr ETag)"
get /snapshot.json >/dev/null
etag=$(hdr ETag)
expect "If-None-Match (list, weak) on a file is 304" 304 \
	"$(get /snapshot.json -H "If-None-Match: \"nope\", W/$etag")"
expect "If-None-Match: * is 304" 304 "$(get /snapshot.json -H 'If-None-Match: *')"
expect "a stale If-None-Match is 200" 200 "$(get /snapshot.json -H 'If-None-Match: "1-2"')"

# Ranges, checked byte for byte.
expect "Range bytes=2-5 is 206" 206 "$(get /hello.wasm -H 'Range: bytes=2-5')"
expect "Content-Range of 2-5" "bytes 2-5/18" "$(hdr Content-Range)"
if tail -c +3 "$root/hello.wasm" | head -c 4 | cmp -s - "$tmp/b"; then
	ok "206 body is bytes 2-5"
else
	nok "206 body is bytes 2-5" "found $(od -An -tx1 "$tmp/b")"
fi
expect "Range bytes=10- is 206" 206 "$(get /hello.wasm -H 'Range: bytes=10-')"
expect "Content-Range of 10-" "bytes 10-17/18" "$(hdr Content-Range)"
if tail -c +11 "$root/hello.wasm" | cmp -s - "$tmp/b"; then ok "206 body is bytes 10-"; else nok "206 body is bytes 10-"; fi
expect "Range bytes=-3 is 206" 206 "$(get /hello.wasm -H 'Range: bytes=-3')"
expect "Content-Range of -3" "bytes 15-17/18" "$(hdr Content-Range)"
if tail -c 3 "$root/hello.wasm" | cmp -s - "$tmp/b"; then ok "206 body is the last 3 bytes"; else nok "206 body is the last 3 bytes"; fi
expect "Range past the end is clamped" "bytes 16-17/18" \
	"$(get /hello.wasm -H 'Range: bytes=16-99999999999999999999' >/dev/null; hdr Content-Range)"
expect "Range bytes=18- is 416" 416 "$(get /hello.wasm -H 'Range: bytes=18-')"
expect "416 names the size" "bytes */18" "$(hdr Content-Range)"
expect "Range bytes=-0 is 416" 416 "$(get /hello.wasm -H 'Range: bytes=-0')"
expect "several ranges: the whole file, 200" 200 "$(get /hello.wasm -H 'Range: bytes=0-1,4-5')"
expect "a stale If-Range: the whole file, 200" 200 \
	"$(get /hello.wasm -H 'Range: bytes=0-1' -H 'If-Range: "old"')"

# HEAD: headers and the length, never a body.
expect "HEAD is 200" 200 "$(get /hello.wasm --head)"
expect "HEAD gives the Content-Length" 18 "$(hdr Content-Length)"
answer=$(raw 'HEAD /snapshot.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' | tr -d '\r')
expect "HEAD sends no body" "" "$(printf '%s\n' "$answer" | sed '1,/^$/d')"

# Methods.
expect "POST is 405" 405 "$(get / -X POST --data x)"
expect "405 has Allow" "GET, HEAD" "$(hdr Allow)"
expect "PUT is 405" 405 "$(get /x -X PUT --data x)"

# Folders: index.html, a redirect for the missing slash, never a listing.
expect "GET /demo/ is 200" 200 "$(get /demo/)"
expect "GET /demo/ serves its index.html" "demo page" "$(cat "$tmp/b")"
expect "GET /demo is 301" 301 "$(get /demo)"
expect "301 points at /demo/" /demo/ "$(hdr Location)"
expect "//demo redirects on this host, not to host 'demo'" /demo/ \
	"$(get //demo >/dev/null; hdr Location)"
expect "a folder without index.html is 404" 404 "$(get /empty-folder/)"
expect "/sub/ lists nothing (404)" 404 "$(get /sub/)"
expect "a missing file is 404" 404 "$(get /nope.json)"
expect "error bodies are text/plain" "text/plain; charset=utf-8" "$(hdr Content-Type)"

# Path safety.
expect "/../etc/passwd is 400" 400 "$(get /../etc/passwd)"
not_leaked "/../etc/passwd"
expect "/%2e%2e/etc/passwd is 400" 400 "$(get /%2e%2e/etc/passwd)"
not_leaked "/%2e%2e/etc/passwd"
expect "/sub/..%2f..%2fetc/passwd is 400" 400 "$(get /sub/..%2f..%2fetc/passwd)"
not_leaked "/sub/..%2f..%2fetc/passwd"
expect "/%252e%252e/etc/passwd is 404" 404 "$(get /%252e%252e/etc/passwd)"
mkdir -p "$root/.git" && echo secret > "$root/.git/config" && echo lock > "$root/.lock"
expect "a hidden folder is not served" 400 "$(get /.git/config)"
expect "a hidden file is not served" 400 "$(get /.lock)"
expect "a backslash is 400" 400 "$(get '/sub%5c..%5csecret.txt')"
expect "%00 is 400" 400 "$(get '/index.html%00.png')"
expect "a bad escape is 400" 400 "$(get '/a%zz')"
answer=$(raw 'GET /..\\..\\etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
expect "a raw backslash path is 400" "HTTP/1.1 400" "${answer:0:12}"
expect "a link in a subfolder to a file outside is 404" 404 "$(get /sub/secret.txt)"
not_leaked "/sub/secret.txt"
expect "a link in a subfolder to /etc/passwd is 404" 404 "$(get /sub/passwd)"
not_leaked "/sub/passwd"
expect "a link in a subfolder to a folder outside is 404" 404 "$(get /sub/out/secret.txt)"
not_leaked "/sub/out/secret.txt"
expect "a link below the top level is refused even inside the root" 404 "$(get /sub/inner.html)"
expect "a top-level link to a registry folder is served" 200 "$(get "/registry/blobs/sha256/$hex")"
expect "blobs behind the top-level link are immutable" "public, max-age=31536000, immutable" \
	"$(hdr Cache-Control)"
expect "a link inside the linked folder is 404" 404 "$(get /registry/deep/secret.txt)"
not_leaked "/registry/deep/secret.txt"

# The request log.
if grep -q '^GET /hello.wasm 206 4$' "$tmp/err"; then
	ok "stderr logs 'GET /hello.wasm 206 4'"
else
	nok "stderr logs 'GET /hello.wasm 206 4'" "stderr: $(head -c 300 "$tmp/err")"
fi

# A second server on the same port.
timeout 10 "$MOLT" serve --port "$port" --root "$root" >"$tmp/out2" 2>"$tmp/err2"
expect "a port in use exits 3" 3 "$?"
if grep -q "127.0.0.1:$port" "$tmp/err2" && grep -q -- '--port' "$tmp/err2"; then
	ok "the message names the address and suggests --port"
else
	nok "the message names the address and suggests --port" "stderr: $(cat "$tmp/err2")"
fi

# A clean stop.
kill -TERM "$srv"
wait "$srv"
expect "SIGTERM stops the server with exit 0" 0 "$?"
srv=


# ---- The run endpoint: POST /run/NAME@VERSION/FUNCTION --------------------
# Needs the signed fixture registry (scripts/fixture) and node for the
# request envelopes (runtime/js encodeEnvelope) and the wasm comparison.
FIXTURE=${FIXTURE:-$here/build/test}
if [ ! -d "$FIXTURE/registry" ]; then
	"$here/scripts/fixture" "$FIXTURE" >/dev/null 2>&1 ||
		{ nok "the fixture registry exists" "scripts/fixture $FIXTURE failed"; finish; }
fi
if ! command -v node >/dev/null; then
	nok "node is installed (request envelopes)" "install nodejs"
	finish
fi
reg=$FIXTURE/registry key=$FIXTURE/dev.pub
ENV_CT='Content-Type: application/x-molt-envelope'

# Request envelopes, made by runtime/js (the browser's encoder).
node --input-type=module -e '
import { writeFileSync } from "node:fs";
const m = await import(process.argv[1] + "/runtime/js/molt.js");
const out = process.argv[2];
const env = (id, v) => m.encodeEnvelope(id, 1, m.encodeMsgpack(v));
writeFileSync(out + "/ada.env", env("hello.greet_request", { name: "Ada" }));
writeFileSync(out + "/count9.env", env("countdown.count_request", { n: 1000000000 }));
writeFileSync(out + "/count10.env", env("countdown.count_request", { n: 10 }));
writeFileSync(out + "/count12.env", env("countdown.count_request", { n: 1000000000000 }));
writeFileSync(out + "/list.env", env("countdown.list_request", { n: 1000 }));
' "$here" "$tmp" || { nok "node writes the request envelopes"; finish; }

pids=()
# shellcheck disable=SC2317 # invoked by the trap
cleanup_runs() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap 'cleanup_runs; cleanup' EXIT

# start NAME ARGS...: starts `molt serve --port 0 ARGS` with stdout in
# $tmp/NAME.out and stderr in $tmp/NAME.err; sets $port, $base and $spid.
start() {
	local name=$1
	shift
	"$MOLT" serve --port 0 --root "$root" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	spid=$!
	pids+=("$spid")
	port=
	for _ in $(seq 300); do
		port=$(sed -n 's|^serving .* on http://127\.0\.0\.1:\([0-9]\{1,5\}\)/$|\1|p' "$tmp/$name.out")
		[ -n "$port" ] && break
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.1
	done
	base=http://127.0.0.1:$port
	[ -n "$port" ]
}

# post PATH FILE [curl options...]: POSTs FILE as an envelope; like get.
post() {
	local path=$1 file=$2
	shift 2
	get "$path" -X POST -H "$ENV_CT" --data-binary "@$file" "$@"
}

hexof() { od -An -v -tx1 "$1" | tr -d ' \n'; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$tmp/b" "$1" 2>/dev/null; }

common=(--registry "$reg" -k "$key" --cache "$tmp/cache")
if ! start a --run hello@0.1.0 --run countdown@0.1.0 "${common[@]}" --step-budget 10000; then
	nok "molt serve --run starts" "stderr: $(cat "$tmp/a.err")"
	finish
fi
ok "molt serve --run hello@0.1.0 --run countdown@0.1.0 starts (port $port)"

# GET /run: what is served.
expect "GET /run is 200" 200 "$(get /run)"
expect "GET /run is JSON" application/json "$(hdr Content-Type)"
expect "GET /run lists both --run units" "hello@0.1.0 countdown@0.1.0" \
	"$(json '" ".join(u["name"] + "@" + u["version"] for u in d["units"])')"
want=$(python3 -c "import json;print(json.load(open('$reg/index/hello.json'))['versions']['0.1.0']['x86_64-linux-gnu']['manifest'])")
expect "GET /run gives each unit's manifest digest" "$want" "$(json 'd["units"][0]["manifest"]')"
expect "GET /run gives each function's id, name and schemas" \
	"1 greet hello.greet_request@1 hello.greet_response@1" \
	"$(json '" ".join(str(f[k]) for f in d["units"][0]["functions"] for k in ("id", "name", "input", "output"))')"
expect "POST /run is 405" 405 "$(get /run -X POST --data x)"
expect "405 on /run allows GET, HEAD" "GET, HEAD" "$(hdr Allow)"
expect "static files are still served beside /run" 200 "$(get /index.html)"

# A run: the unit's own envelope bytes, as native `molt call` and the wasm
# unit under Node give them.
expect "POST hello greet is 200" 200 "$(post /run/hello@0.1.0/greet "$tmp/ada.env")"
expect "the answer is an envelope" application/x-molt-envelope "$(hdr Content-Type)"
expect "X-Molt-Result: result" result "$(hdr X-Molt-Result)"
expect "X-Molt-Polls counts the polls" 1 "$(hdr X-Molt-Polls)"
if [[ "$(hdr X-Molt-Time-Us)" =~ ^[0-9]+$ ]]; then ok "X-Molt-Time-Us is a number"; else nok "X-Molt-Time-Us is a number" "found '$(hdr X-Molt-Time-Us)'"; fi
expect "a run is Cache-Control: no-store" no-store "$(hdr Cache-Control)"
served_hex=$(hexof "$tmp/b")
native_hex=$("$MOLT" call --envelope-hex -r "$reg" -k "$key" --cache "$tmp/cache" hello@0.1.0 greet '{"name":"Ada"}')
expect "the body equals the native envelope of molt call, byte for byte" "$native_hex" "$served_hex"
if [ -f "$here/runtime/js/molt-node.mjs" ]; then
	wasm_hex=$(node "$here/runtime/js/molt-node.mjs" call --registry "$reg" --key "$key" \
		hello@0.1.0 greet '{"name":"Ada"}' --envelope-hex 2>"$tmp/node.err")
	expect "the body equals the wasm unit's envelope (runtime/js under Node)" "$wasm_hex" "$served_hex"
fi
expect "application/octet-stream is accepted too" 200 \
	"$(get /run/hello@0.1.0/greet -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$tmp/ada.env")"
expect "countdown count n=10 is 200" 200 "$(post /run/countdown@0.1.0/count "$tmp/count10.env")"
expect "countdown runs in its own unit (not hello's)" \
	"$("$MOLT" call --envelope-hex -r "$reg" -k "$key" --cache "$tmp/cache" countdown@0.1.0 count '{"n":10}')" \
	"$(hexof "$tmp/b")"

# The unit validates: n = 10^12 is its error envelope, still a 200.
expect "a request the unit refuses is 200" 200 "$(post /run/countdown@0.1.0/count "$tmp/count12.env")"
expect "X-Molt-Result: error" error "$(hdr X-Molt-Result)"
if grep -aq 'molt.error' "$tmp/b" && grep -aq 'expected 0 to 1000000000' "$tmp/b"; then
	ok "the body is the unit's molt.error envelope, naming the limit"
else
	nok "the body is the unit's molt.error envelope, naming the limit" "body: $(tr -cd '[:print:]' <"$tmp/b")"
fi

# What is not served, and how it is refused.
expect "an unknown unit is 404" 404 "$(post /run/countdown@9.9.9/count "$tmp/count10.env")"
expect "404 is JSON" application/json "$(hdr Content-Type)"
expect "404 code" UNIT_NOT_SERVED "$(json 'd["error"]')"
expect "404 lists what is served" "hello@0.1.0 countdown@0.1.0" "$(json '" ".join(d["served"])')"
if json 'd["message"]' | grep -q 'countdown@9.9.9 is not served here; served: hello@0.1.0 (greet), countdown@0.1.0 (count, list)'; then
	ok "404 message names the unit and what is served"
else
	nok "404 message names the unit and what is served" "$(cat "$tmp/b")"
fi
expect "an unknown function is 404" 404 "$(post /run/hello@0.1.0/shout "$tmp/ada.env")"
expect "its code" NO_SUCH_FUNCTION "$(json 'd["error"]')"
if json 'd["message"]' | grep -q "hello@0.1.0 has no function 'shout'"; then ok "the message names the function"; else nok "the message names the function" "$(cat "$tmp/b")"; fi
expect "a path without a function is 404" 404 "$(post /run/hello@0.1.0 "$tmp/ada.env")"
expect "its code" NOT_FOUND "$(json 'd["error"]')"
expect "GET on a run is 405" 405 "$(get /run/hello@0.1.0/greet)"
expect "405 allows POST" POST "$(hdr Allow)"
expect "405 is JSON" METHOD_NOT_ALLOWED "$(json 'd["error"]')"
expect "an empty body is 400" 400 "$(get /run/hello@0.1.0/greet -X POST -H "$ENV_CT" --data-binary '')"
expect "its code" EMPTY_BODY "$(json 'd["error"]')"
expect "a form body is 415" 415 "$(get /run/hello@0.1.0/greet -X POST --data-binary "@$tmp/ada.env")"
if json 'd["message"]' | grep -q 'expected Content-Type application/x-molt-envelope'; then ok "415 says what to send"; else nok "415 says what to send" "$(cat "$tmp/b")"; fi

# Concurrency: 3 long counts and 5 greets at once. The greets, sent while
# the counts run, all finish first (the unit's lock is taken per poll).
: >"$tmp/order"
for i in 1 2 3; do
	(code=$(curl -sS -o "$tmp/long$i" -w '%{http_code}' -X POST -H "$ENV_CT" \
		--data-binary "@$tmp/count9.env" "$base/run/countdown@0.1.0/count")
	 echo "long $i $code" >>"$tmp/order") &
done
sleep 0.3 # lets the counts start: they last about a second each, alone
for i in 1 2 3 4 5; do
	(code=$(curl -sS -o "$tmp/short$i" -w '%{http_code}' -X POST -H "$ENV_CT" \
		--data-binary "@$tmp/ada.env" "$base/run/hello@0.1.0/greet")
	 echo "short $i $code" >>"$tmp/order") &
done
wait_for() { # FILE LINES: waits (at most 60 s) until FILE has LINES lines
	for _ in $(seq 600); do [ "$(wc -l <"$1")" -ge "$2" ] && return 0; sleep 0.1; done
	return 1
}
wait_for "$tmp/order" 8
expect "8 concurrent runs all answer 200" 8 "$(grep -c ' 200$' "$tmp/order")"
expect "every greet finishes before every long count" "short short short short short long long long" \
	"$(cut -d' ' -f1 "$tmp/order" | tr '\n' ' ' | sed 's/ $//')"
count_hex=$("$MOLT" call --envelope-hex --step-budget 10000 -r "$reg" -k "$key" --cache "$tmp/cache" \
	countdown@0.1.0 count '{"n":1000000000}')
same=0
for i in 1 2 3; do [ "$(hexof "$tmp/long$i")" = "$count_hex" ] && same=$((same + 1)); done
for i in 1 2 3 4 5; do [ "$(hexof "$tmp/short$i")" = "$native_hex" ] && same=$((same + 1)); done
expect "each concurrent answer is its own, byte for byte" 8 "$same"

# A client that leaves mid-run: its job is cancelled and the server goes on.
curl -sS -o /dev/null --max-time 0.3 -X POST -H "$ENV_CT" --data-binary "@$tmp/count9.env" \
	"$base/run/countdown@0.1.0/count" 2>/dev/null
expect "curl --max-time 0.3 gives up (exit 28)" 28 "$?"
line=
for _ in $(seq 100); do
	line=$(grep 'client closed the connection; job cancelled' "$tmp/a.err" | tail -n 1)
	[ -n "$line" ] && break
	sleep 0.05
done
if [ -n "$line" ]; then ok "the server logs the cancel: $line"; else nok "the server logs the cancelled job" "stderr: $(tail -n 5 "$tmp/a.err")"; fi
polls=$(printf '%s' "$line" | sed -n 's/.*after \([0-9]*\) polls.*/\1/p')
if [ -n "$polls" ] && [ "$polls" -lt 100000 ]; then ok "it was cancelled before it finished ($polls of 100000 polls)"; else nok "it was cancelled before it finished" "$line"; fi
expect "and the server still answers" 200 "$(post /run/hello@0.1.0/greet "$tmp/ada.env")"

# The unit's task table (64 with the SDK): more long runs than that at
# once; the ones past it are 503 with Retry-After, the rest are cancelled
# when their clients leave, and the unit is usable again.
mkdir -p "$tmp/full"
for i in $(seq 70); do
	curl -sS -o "$tmp/full/$i.b" -D "$tmp/full/$i.h" -w '%{http_code}' --max-time 4 -X POST \
		-H "$ENV_CT" --data-binary "@$tmp/count9.env" "$base/run/countdown@0.1.0/count" \
		>"$tmp/full/$i.code" 2>/dev/null &
done
wait_children() { local p; for p in $(jobs -p); do [[ " ${pids[*]} " == *" $p "* ]] || wait "$p"; done; }
wait_children
busy=$(grep -l '^503$' "$tmp/full/"*.code 2>/dev/null | head -n 1)
if [ -n "$busy" ]; then
	ok "past the unit's 64 tasks a run is 503 ($(grep -l '^503$' "$tmp/full/"*.code | wc -l) of 70)"
	h=${busy%.code}.h
	expect "503 has Retry-After: 1" 1 "$(tr -d '\r' <"$h" | sed -n 's/^Retry-After: //Ip')"
	if grep -q '"error":"BUSY"' "${busy%.code}.b" && grep -q 'every task slot of countdown@0.1.0 is taken' "${busy%.code}.b"; then
		ok "503 says the unit's task slots are taken"
	else
		nok "503 says the unit's task slots are taken" "$(cat "${busy%.code}.b")"
	fi
else
	nok "past the unit's 64 tasks a run is 503" "codes: $(cat "$tmp/full/"*.code | sort | uniq -c | tr '\n' ' ')"
fi
got=
for _ in $(seq 100); do
	got=$(post /run/countdown@0.1.0/count "$tmp/count10.env")
	[ "$got" = 200 ] && break
	sleep 0.1
done
expect "once those clients left, their tasks were freed: count is 200 again" 200 "$got"

# SIGTERM with a run in flight: it is cancelled and the server exits 0.
curl -sS -o "$tmp/stop.b" -w '%{http_code}' --max-time 10 -X POST -H "$ENV_CT" \
	--data-binary "@$tmp/count9.env" "$base/run/countdown@0.1.0/count" >"$tmp/stop.code" 2>/dev/null &
cpid=$!
sleep 0.2
kill -TERM "$spid"
wait "$spid"
expect "SIGTERM with a run in flight: exit 0" 0 "$?"
wait "$cpid"
case $(cat "$tmp/stop.code") in
503 | 000) ok "the run in flight is answered 503 or closed ($(cat "$tmp/stop.code"))" ;;
*) nok "the run in flight is answered 503 or closed" "code $(cat "$tmp/stop.code")" ;;
esac

# Limits: a second server with small ones.
if ! start b --run countdown@0.1.0 --run hello@0.1.0 "${common[@]}" --timeout-ms 200 \
	--max-body 1024 --max-output 1000 --step-budget 100 --threads 2; then
	nok "molt serve with limits starts" "stderr: $(cat "$tmp/b.err")"
	finish
fi
ok "molt serve --timeout-ms 200 --max-body 1024 --max-output 1000 starts"
expect "a run past --timeout-ms is 504" 504 "$(post /run/countdown@0.1.0/count "$tmp/count9.env" --max-time 5)"
expect "its code" TIMEOUT "$(json 'd["error"]')"
if json 'd["message"]' | grep -q 'runtime error 5: no result after .* ms .*--timeout-ms 200'; then
	ok "504 names the limit"
else
	nok "504 names the limit" "$(cat "$tmp/b")"
fi
if [[ "$(hdr X-Molt-Time-Us)" =~ ^[0-9]+$ ]] && [ "$(hdr X-Molt-Time-Us)" -lt 1000000 ]; then
	ok "it stopped within a second ($(hdr X-Molt-Time-Us) us)"
else
	nok "it stopped within a second" "X-Molt-Time-Us: $(hdr X-Molt-Time-Us)"
fi
expect "the server still answers after a timeout" 200 "$(post /run/hello@0.1.0/greet "$tmp/ada.env")"
head -c 2000 /dev/zero >"$tmp/big.env"
expect "a body over --max-body is 413" 413 "$(post /run/hello@0.1.0/greet "$tmp/big.env")"
expect "its code" BODY_TOO_LARGE "$(json 'd["error"]')"
if json 'd["message"]' | grep -q '2000 bytes, over this server.s limit of 1024 bytes (--max-body)'; then
	ok "413 names the size and the limit"
else
	nok "413 names the size and the limit" "$(cat "$tmp/b")"
fi
expect "a chunked body over --max-body is 413" 413 \
	"$(post /run/hello@0.1.0/greet "$tmp/big.env" -H 'Transfer-Encoding: chunked')"
expect "a result over --max-output is 502" 502 "$(post /run/countdown@0.1.0/list "$tmp/list.env")"
expect "its code" OUTPUT_TOO_LARGE "$(json 'd["error"]')"
if json 'd["message"]' | grep -q 'over the max_output limit of 1000 bytes.*--max-output 1000'; then
	ok "502 names the limit"
else
	nok "502 names the limit" "$(cat "$tmp/b")"
fi
kill -TERM "$spid"
wait "$spid"
expect "SIGTERM stops the limited server with exit 0" 0 "$?"

# Refusals at start: nothing listens unless every --run unit verified.
rm -rf "$tmp/bad"
cp -r "$reg" "$tmp/bad"
art=$(python3 -c "
import json
m = json.load(open('$reg/index/hello.json'))['versions']['0.1.0']['x86_64-linux-gnu']['manifest']
print(json.load(open('$reg/blobs/sha256/' + m[7:]))['artifact']['digest'][7:])")
python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[100] ^= 0xff; open(p, "wb").write(bytes(b))' \
	"$tmp/bad/blobs/sha256/$art"
timeout 20 "$MOLT" serve --port 0 --root "$root" --run hello@0.1.0 --registry "$tmp/bad" -k "$key" \
	--cache "$tmp/cache-bad" >"$tmp/c.out" 2>"$tmp/c.err"
expect "a tampered registry: molt serve --run exits 1" 1 "$?"
if grep -q 'digest mismatch' "$tmp/c.err" && grep -q -- '--run hello@0.1.0' "$tmp/c.err"; then
	ok "the message names the unit and the mismatch"
else
	nok "the message names the unit and the mismatch" "stderr: $(cat "$tmp/c.err")"
fi
expect "and it never listened" "" "$(cat "$tmp/c.out")"
timeout 20 "$MOLT" serve --port 0 --root "$root" --run nosuch@1.0.0 "${common[@]}" >"$tmp/c.out" 2>"$tmp/c.err"
expect "an unknown --run unit exits 2" 2 "$?"
if grep -q "no unit named 'nosuch'" "$tmp/c.err"; then ok "and says so"; else nok "and says so" "stderr: $(cat "$tmp/c.err")"; fi
timeout 20 "$MOLT" serve --port 0 --root "$root" --run hello >"$tmp/c.out" 2>"$tmp/c.err"
expect "--run without a version exits 2" 2 "$?"
if grep -q "'hello': expected NAME@VERSION" "$tmp/c.err"; then ok "and says what it expected"; else nok "and says what it expected" "stderr: $(cat "$tmp/c.err")"; fi
timeout 20 "$MOLT" serve --port 0 --root "$root" --run hello@0.1.0,hello@0.1.0 "${common[@]}" >"$tmp/c.out" 2>"$tmp/c.err"
expect "a unit named twice exits 2" 2 "$?"
if grep -q -- "--run hello@0.1.0: named twice" "$tmp/c.err"; then ok "and says so"; else nok "and says so" "stderr: $(cat "$tmp/c.err")"; fi
timeout 20 env -u MOLT_REGISTRY "$MOLT" serve --port 0 --root "$root" --run hello@0.1.0 -k "$key" \
	>"$tmp/c.out" 2>"$tmp/c.err"
expect "--run without a registry exits 2" 2 "$?"
if grep -q 'need a registry (--registry' "$tmp/c.err"; then ok "and says what is missing"; else nok "and says what is missing" "stderr: $(cat "$tmp/c.err")"; fi
timeout 20 "$MOLT" serve --port 0 --root "$root" --max-body 0 >"$tmp/c.out" 2>"$tmp/c.err"
expect "--max-body 0 exits 2" 2 "$?"

finish
