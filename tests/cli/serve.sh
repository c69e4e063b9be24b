#!/usr/bin/env bash
# molt serve against real curl on 127.0.0.1: status codes, headers, ranges,
# conditional requests, path safety, and the "port in use" exit status.
# MOLT names the binary (default: build/runtime/molt under the repo root).
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

finish
