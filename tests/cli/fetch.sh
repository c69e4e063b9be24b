#!/usr/bin/env bash
# molt fetch against real HTTP servers on 127.0.0.1 (docs/fetch.md): molt
# serve, nginx, and a small python3 server that misbehaves on purpose (drops
# the connection, crawls, answers 5xx or 404, ignores Range, flips a byte).
# Checks resume with Range, retries, the shared cache under two processes at
# once, the cache location, re-verification on every read and the progress
# display. Tampering, untrusted and revoked keys and an expired snapshot
# over file:// are in molt.sh and attacks.sh; here they go over HTTP.
. "$(dirname "$0")/lib.sh"

reg=$FIXTURE/registry key=$FIXTURE/dev.pub
native=x86_64-linux-gnu
a=$(python3 - "$reg" "$native" <<'PY'
import json, sys
r, t = sys.argv[1:]
e = json.load(open(r + "/index/hello.json"))["versions"]["0.1.0"][t]
print(json.load(open(r + "/blobs/sha256/" + e["manifest"][7:]))["artifact"]["digest"][7:])
PY
)
size=$(stat -c %s "$reg/blobs/sha256/$a")
C=$T/cache
blob=$C/blobs/sha256/$a
pids=""
cleanup='for p in $pids; do kill "$p" 2>/dev/null; done'
export MOLT_FETCH_RETRIES=3

# The misbehaving server. Every request is logged when it ends, as
# "GET PATH range=RANGE status=CODE sent=BYTES". Options apply to the
# artifact only; everything else is served plainly.
cat >"$T/srv.py" <<'PY'
import argparse, os, socketserver, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--root"); ap.add_argument("--log"); ap.add_argument("--port-file")
ap.add_argument("--artifact", default="")
ap.add_argument("--drop-first", action="store_true", help="first artifact GET: half the body, then close")
ap.add_argument("--fail", type=int, default=0, help="first N artifact GETs: 503")
ap.add_argument("--status", type=int, default=0, help="every artifact GET: this status")
ap.add_argument("--rate", type=int, default=0, help="artifact bytes per second")
ap.add_argument("--ignore-range", action="store_true")
ap.add_argument("--tamper", action="store_true", help="flip the artifact's last byte")
o = ap.parse_args()
lock = threading.Lock()
count = {"n": 0}

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a): pass
    def do_GET(self):
        rng = self.headers.get("Range") or "-"
        status, sent = 0, 0
        try:
            status, sent = self.serve(rng)
        except (BrokenPipeError, ConnectionResetError):
            status, sent = getattr(self, "_status", 0), getattr(self, "_sent", 0)
        finally:
            with lock, open(o.log, "a") as f:
                f.write("GET %s range=%s status=%d sent=%d\n" % (self.path, rng, status, sent))
    def reply(self, status, body=b"", extra=()):
        self._status = status
        self.send_response(status)
        for k, v in extra: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return status, len(body)
    def serve(self, rng):
        p = os.path.join(o.root, self.path.lstrip("/"))
        if not os.path.isfile(p): return self.reply(404, b"not found\n")
        data = open(p, "rb").read()
        art = bool(o.artifact) and self.path.endswith("/" + o.artifact)
        if not art: return self.reply(200, data)
        with lock:
            count["n"] += 1; n = count["n"]
        if o.status: return self.reply(o.status, b"no\n")
        if n <= o.fail: return self.reply(503, b"busy\n")
        if o.tamper: data = data[:-1] + bytes([data[-1] ^ 0xff])
        start, status = 0, 200
        if rng.startswith("bytes=") and not o.ignore_range:
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self.reply(416, b"", [("Content-Range", "bytes */%d" % len(data))])
            status = 206
        body = data[start:]
        self._status = status; self._sent = 0
        self.send_response(status)
        if status == 206: self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        limit = len(body) // 2 if (o.drop_first and n == 1) else len(body)
        step = 1024 if o.rate else 1 << 16
        while self._sent < limit:
            chunk = body[self._sent:min(limit, self._sent + step)]
            if o.rate: time.sleep(len(chunk) / o.rate)
            self.wfile.write(chunk); self.wfile.flush()
            self._sent += len(chunk)
        if limit < len(body):
            self.wfile.flush()
            self.connection.shutdown(2)
        return status, self._sent

ThreadingHTTPServer.daemon_threads = True
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
open(o.port_file + ".tmp", "w").write(str(s.server_address[1]))
os.rename(o.port_file + ".tmp", o.port_file)
s.serve_forever()
PY

# serve NAME [OPTIONS]: starts the python server on the fixture registry,
# logging to $T/NAME.log; sets $url and $srv.
serve() {
  local name=$1
  shift
  rm -f "$T/$name.port" "$T/$name.log"
  : >"$T/$name.log"
  python3 "$T/srv.py" --root "$reg" --log "$T/$name.log" --port-file "$T/$name.port" \
    --artifact "$a" "$@" 2>"$T/$name.err" &
  srv=$!
  pids="$pids $srv"
  for _ in $(seq 100); do [ -s "$T/$name.port" ] && break; sleep 0.05; done
  url=http://127.0.0.1:$(cat "$T/$name.port" 2>/dev/null)/
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
# arts LOG: the artifact's requests in LOG, one per line (after a moment:
# the server logs a request just after its last byte).
arts() { sleep 0.1; grep -F "/blobs/sha256/$a " "$1"; }
f() { run "$MOLT" fetch --cache "$C" -k "$key" "$@"; }
# cached_ok: the artifact is in the cache, whole and right, with nothing
# left beside it.
cached_ok() {
  local name=$1
  if [ "$(sha256sum "$blob" 2>/dev/null | cut -d' ' -f1)" != "$a" ]; then
    fail "$name: the cached artifact is missing or wrong"
  elif ls "$C/blobs/sha256" | grep -qE '\.(part|lock)$|\.tmp\.'; then
    fail "$name: leftovers in the cache: $(ls "$C/blobs/sha256" | grep -E '\.(part|lock)$|\.tmp\.' | tr '\n' ' ')"
  else
    ok "$name"
  fi
}
said() { printf '%s\n%s' "$out" "$err" | grep -qF -- "$1"; }

# --- molt serve and nginx --------------------------------------------------
mkdir -p "$T/site"
ln -s "$reg" "$T/site/registry"
"$MOLT" serve --quiet --port 0 --root "$T/site" >"$T/serve.out" 2>"$T/serve.err" &
spid=$!
pids="$pids $spid"
for _ in $(seq 100); do grep -q '^serving' "$T/serve.out" 2>/dev/null && break; sleep 0.05; done
surl=$(sed -n 's|^serving .* on \(http://[^ ]*\)$|\1|p' "$T/serve.out")
if [ -n "$surl" ]; then
  rm -rf "$C"
  f -r "${surl}registry" hello@0.1.0
  expect "fetch through molt serve" 0 "hello@0.1.0 $native verified, manifest sha256:"
  cached_ok "molt serve: the artifact is cached, nothing left beside it"
  [ -z "$err" ] && ok "not a terminal, no --progress: nothing on stderr" || fail "stderr: $err"
  rm -rf "$C"
  f --progress -r "${surl}registry" hello@0.1.0
  expect "--progress without a terminal" 0 "hello@0.1.0: 29.9 KiB in "
  [ "$(printf '%s\n' "$err" | grep -c .)" = 1 ] && ok "--progress: one plain line for a short download" \
    || fail "--progress printed: $err"
else
  fail "molt serve did not start: $(cat "$T/serve.err")"
fi

if [ -x /usr/sbin/nginx ]; then
  ng=$T/nginx
  mkdir -p "$ng/tmp" "$ng/logs"
  started=
  for _ in 1 2 3; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    {
      [ "$(id -u)" = 0 ] && echo "user root;"
      cat <<EOF
daemon off;
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/logs/error.log;
events { worker_connections 64; }
http {
  access_log $ng/logs/access.log;
  client_body_temp_path $ng/tmp/body;
  proxy_temp_path $ng/tmp/proxy;
  fastcgi_temp_path $ng/tmp/fastcgi;
  uwsgi_temp_path $ng/tmp/uwsgi;
  scgi_temp_path $ng/tmp/scgi;
  types { application/json json; }
  default_type application/octet-stream;
  server { listen 127.0.0.1:$port; root $reg; }
}
EOF
    } >"$ng/nginx.conf"
    /usr/sbin/nginx -p "$ng" -e "$ng/logs/error.log" -c "$ng/nginx.conf" 2>>"$ng/start.err" &
    npid=$!
    pids="$pids $npid"
    for _ in $(seq 50); do
      curl -s -o /dev/null "http://127.0.0.1:$port/registry.json" && { started=1; break; }
      kill -0 "$npid" 2>/dev/null || break
      sleep 0.05
    done
    [ -n "$started" ] && break
  done
  if [ -n "$started" ]; then
    rm -rf "$C"
    f -r "http://127.0.0.1:$port/" hello@0.1.0
    expect "fetch through nginx" 0 "hello@0.1.0 $native verified"
    cached_ok "nginx: the artifact is cached, nothing left beside it"
    head -c 12345 "$reg/blobs/sha256/$a" >"$blob.part"
    rm -f "$blob"
    f -r "http://127.0.0.1:$port/" hello@0.1.0
    expect "nginx: resume a .part" 0 "verified"
    cached_ok "nginx: resumed artifact is whole"
    grep -qE "GET /blobs/sha256/$a HTTP/1.1\" 206 $((size - 12345)) " "$ng/logs/access.log" \
      && ok "nginx answered 206 with the missing $((size - 12345)) bytes only" \
      || fail "nginx log: $(grep -F "$a" "$ng/logs/access.log")"
  else
    fail "nginx did not start: $(cat "$ng/start.err" "$ng/logs/error.log" 2>/dev/null | tail -n 5)"
  fi
  stop "$npid"
else
  echo "skipped: nginx missing"
fi

# --- a connection dropped half-way: retried with Range ------------------------
serve drop --drop-first
rm -rf "$C"
f -r "$url" hello@0.1.0
expect "a dropped connection is resumed (exit 0)" 0 "verified"
cached_ok "dropped connection: the artifact is whole"
arts "$T/drop.log" >"$T/drop.arts"
first=$(sed -n 1p "$T/drop.arts")
half=$(sed -n 's/.*sent=\([0-9]*\)$/\1/p' <<<"$first")
case "$first" in
*"range=- status=200 sent=$((size / 2))") ok "the first request got half the artifact ($half bytes)" ;;
*) fail "first artifact request: $first" ;;
esac
second=$(sed -n 2p "$T/drop.arts")
case "$second" in
*"range=bytes=$half- status=206 sent=$((size - half))") ok "the retry asked for bytes $half- (where the first stopped)" ;;
*) fail "second artifact request: $second" ;;
esac
[ "$(wc -l <"$T/drop.arts")" = 2 ] && ok "two requests for the artifact, no byte fetched twice" \
  || fail "artifact requests: $(cat "$T/drop.arts")"
stop "$srv"

# --- kill -9 mid-download leaves a .part; the next fetch resumes it -----------
serve slow --rate 16000
rm -rf "$C"
"$MOLT" fetch --cache "$C" -k "$key" -r "$url" hello@0.1.0 >/dev/null 2>&1 &
mp=$!
disown "$mp" # no "Killed" notice from the shell
for _ in $(seq 100); do
  [ "$(stat -c %s "$blob.part" 2>/dev/null || echo 0)" -gt 8000 ] && break
  sleep 0.05
done
kill -9 "$mp" 2>/dev/null
for _ in $(seq 50); do kill -0 "$mp" 2>/dev/null || break; sleep 0.02; done
have=$(stat -c %s "$blob.part" 2>/dev/null || echo 0)
if [ "$have" -gt 0 ] && [ "$have" -lt "$size" ] && [ ! -e "$blob" ]; then
  ok "kill -9 mid-download leaves a .part ($have of $size bytes) and no blob"
else
  fail "after kill -9: .part has $have bytes; blob: $(ls "$C/blobs/sha256" | tr '\n' ' ')"
fi
f -r "$url" hello@0.1.0
expect "the next fetch after kill -9 succeeds" 0 "verified"
cached_ok "kill -9 then fetch: the artifact is whole"
last=$(arts "$T/slow.log" | grep -F 'range=bytes=')
case "$last" in
*"range=bytes=$have- status=206 sent=$((size - have))") ok "it resumed from the .part: Range bytes=$have-" ;;
*) fail "the resuming request: $last" ;;
esac
stop "$srv"

# --- two processes, one empty cache, one slow server -------------------------
serve two --rate 30000
rm -rf "$C"
"$MOLT" fetch --cache "$C" -k "$key" -r "$url" hello@0.1.0 >"$T/one.out" 2>"$T/one.err" &
p1=$!
"$MOLT" fetch --cache "$C" -k "$key" -r "$url" hello@0.1.0 >"$T/two.out" 2>"$T/two.err" &
p2=$!
wait "$p1"
c1=$?
wait "$p2"
c2=$?
[ "$c1" = 0 ] && [ "$c2" = 0 ] && ok "two fetches at once into one cache: both exit 0" \
  || fail "exit $c1 and $c2: $(cat "$T/one.err" "$T/two.err")"
grep -q verified "$T/one.out" && grep -q verified "$T/two.out" && ok "both say verified" \
  || fail "outputs: $(cat "$T/one.out" "$T/two.out")"
cached_ok "two at once: one whole artifact, no .part or .lock left"
n=$(arts "$T/two.log" | wc -l)
[ "$n" = 1 ] && ok "the artifact was downloaded once (the second waited on the lock)" \
  || fail "the artifact was requested $n times: $(arts "$T/two.log")"
[ -z "$(ls "$C/state" | grep -v '\.json$')" ] && ok "state/ holds only its .json files" \
  || fail "state/: $(ls "$C/state")"
f -r "$url" hello@0.1.0
expect "a third fetch uses the cache" 0 "verified"
[ "$(arts "$T/two.log" | wc -l)" = 1 ] && ok "and downloads nothing again" || fail "downloaded again"
stop "$srv"

# --- the .part is checked like everything else ----------------------------------
serve part
rm -rf "$C"
mkdir -p "$C/blobs/sha256"
head -c 10000 "$reg/blobs/sha256/$a" >"$blob.part"
printf 'X' | dd of="$blob.part" bs=1 seek=500 conv=notrunc 2>/dev/null
f -r "$url" hello@0.1.0
expect "a corrupt .part: refetched from byte 0, then verified" 0 "verified"
cached_ok "corrupt .part: the cached artifact is right"
arts "$T/part.log" >"$T/part.arts"
case "$(sed -n 1p "$T/part.arts")|$(sed -n 2p "$T/part.arts")" in
*"range=bytes=10000- status=206"*"|"*"range=- status=200 sent=$size") ok "resumed at 10000, mismatched, refetched from 0" ;;
*) fail "requests: $(cat "$T/part.arts")" ;;
esac
stop "$srv"

serve norange --ignore-range
rm -rf "$C"
mkdir -p "$C/blobs/sha256"
head -c 10000 "$reg/blobs/sha256/$a" >"$blob.part"
f -r "$url" hello@0.1.0
expect "a server that ignores Range (200): the .part starts over" 0 "verified"
cached_ok "ignored Range: the artifact is whole"
case "$(arts "$T/norange.log")" in
"GET /blobs/sha256/$a range=bytes=10000- status=200 sent=$size") ok "one request, whole body taken" ;;
*) fail "requests: $(arts "$T/norange.log")" ;;
esac
stop "$srv"

# --- tampered bytes over HTTP, with and without a .part ---------------------------
serve tamper --tamper
rm -rf "$C"
f -r "$url" hello@0.1.0
expect "tampered bytes over HTTP: exit 1, naming both digests" 1 \
  "${url}blobs/sha256/$a: digest mismatch: the signed manifest says sha256:$a, the bytes hash to sha256:"
[ ! -e "$blob" ] && [ ! -e "$blob.part" ] && ok "nothing tampered is kept (no blob, no .part)" \
  || fail "cache: $(ls "$C/blobs/sha256")"
head -c 10000 "$reg/blobs/sha256/$a" >"$blob.part"
: >"$T/tamper.log"
f -r "$url" hello@0.1.0
expect "tampered bytes after a resume: exit 1" 1 "the bytes hash to sha256:"
[ "$(arts "$T/tamper.log" | wc -l)" = 2 ] && ok "after a resume mismatch, one refetch from 0, then the refusal" \
  || fail "requests: $(arts "$T/tamper.log")"
[ ! -e "$blob" ] && [ ! -e "$blob.part" ] && ok "a bad partial never reaches the cache" \
  || fail "cache: $(ls "$C/blobs/sha256")"
MRECIPE_KDF_FAST=1 "$MRECIPE" keygen -W -s "$T/other.key" -p "$T/other.pub" >/dev/null
run "$MOLT" fetch --cache "$C" -k "$T/other.pub" -r "$url" hello@0.1.0
expect "a key the registry does not sign with: exit 1 over HTTP" 1 "expected a signature by a trusted key"
stop "$srv"

# --- 5xx is retried; 404 is not ----------------------------------------------------
serve busy --fail 2
rm -rf "$C"
f -r "$url" hello@0.1.0
expect "503 twice, then 200: success after retries" 0 "verified"
[ "$(arts "$T/busy.log" | awk '{print $4}' | tr '\n' ' ')" = "status=503 status=503 status=200 " ] \
  && ok "three requests: 503, 503, 200" || fail "requests: $(arts "$T/busy.log")"
cached_ok "after 503s: the artifact is whole"
: >"$T/busy.log"
kill "$srv"; wait "$srv" 2>/dev/null
serve busy --fail 5
rm -rf "$C"
MOLT_FETCH_RETRIES=1 f -r "$url" hello@0.1.0
expect "503 more often than the retries: exit 3" 3 "fetching ${url}blobs/sha256/$a: HTTP status 503"
[ "$(arts "$T/busy.log" | wc -l)" = 2 ] && ok "MOLT_FETCH_RETRIES=1: two requests" \
  || fail "requests: $(arts "$T/busy.log")"
: >"$T/busy.log"
MOLT_FETCH_RETRIES=0 f -r "$url" hello@0.1.0
expect "MOLT_FETCH_RETRIES=0: one try" 3 "HTTP status 503"
[ "$(arts "$T/busy.log" | wc -l)" = 1 ] && ok "MOLT_FETCH_RETRIES=0: one request" \
  || fail "requests: $(arts "$T/busy.log")"
MOLT_FETCH_RETRIES=lots f -r "$url" hello@0.1.0
expect "a bad MOLT_FETCH_RETRIES is exit 2" 2 "MOLT_FETCH_RETRIES is 'lots': expected a whole number from 0"
stop "$srv"

serve gone --status 404
rm -rf "$C"
f -r "$url" hello@0.1.0
expect "404 for the artifact: not found, exit 2 (as before)" 2 "${url}blobs/sha256/$a: not found"
[ "$(arts "$T/gone.log" | wc -l)" = 1 ] && ok "404 is not retried" || fail "requests: $(arts "$T/gone.log")"
serve good
f -r "http://127.0.0.1:$(cat "$T/gone.port")/" --mirror "$url" hello@0.1.0
expect "artifact missing on the registry, present on a mirror: exit 0" 0 "verified"
stop "$srv"
gone_port=$(cat "$T/gone.port")
for p in $pids; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=""
rm -rf "$C"
start=$(date +%s%N)
MOLT_FETCH_RETRIES=2 f -r "http://127.0.0.1:$gone_port/" hello@0.1.0
ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect "a registry that refuses connections: exit 3 after the retries" 3 "fetching http://127.0.0.1:$gone_port/snapshot.json"
[ "$ms" -ge 550 ] && ok "it waited before retrying (0.2 s + 0.4 s; took $ms ms)" || fail "retries took only $ms ms"

# --- where the cache is, and every read checks it again -----------------------------
serve where
rm -rf "$T/xdg" "$T/home"
XDG_CACHE_HOME=$T/xdg run "$MOLT" fetch -k "$key" -r "$url" hello@0.1.0
expect "no --cache: \$XDG_CACHE_HOME/molt" 0 "verified"
[ -f "$T/xdg/molt/blobs/sha256/$a" ] && ok "the artifact is in \$XDG_CACHE_HOME/molt/blobs/sha256" \
  || fail "not in $T/xdg/molt: $(find "$T/xdg" | head)"
HOME=$T/home XDG_CACHE_HOME= run "$MOLT" fetch -k "$key" -r "$url" hello@0.1.0
expect "no --cache, no \$XDG_CACHE_HOME: ~/.cache/molt" 0 "verified"
[ -f "$T/home/.cache/molt/blobs/sha256/$a" ] && ok "the artifact is in ~/.cache/molt/blobs/sha256" \
  || fail "not in $T/home/.cache/molt: $(find "$T/home" | head)"
n0=$(arts "$T/where.log" | wc -l)
XDG_CACHE_HOME=$T/xdg run "$MOLT" call -k "$key" -r "$url" hello@0.1.0 greet '{"name":"Ada"}'
expect "another app on the same cache reuses it" 0 '{"greeting":"Hello, Ada!"}'
[ "$(arts "$T/where.log" | wc -l)" = "$n0" ] && ok "and downloads no artifact" || fail "it downloaded again"
printf 'X' | dd of="$T/xdg/molt/blobs/sha256/$a" bs=1 seek=2000 conv=notrunc 2>/dev/null
XDG_CACHE_HOME=$T/xdg run "$MOLT" call -k "$key" -r "$url" hello@0.1.0 greet '{"name":"Ada"}'
expect "a cached artifact changed on disk is caught and fetched again" 0 '{"greeting":"Hello, Ada!"}'
[ "$(sha256sum "$T/xdg/molt/blobs/sha256/$a" | cut -d' ' -f1)" = "$a" ] && ok "the cache copy is repaired" \
  || fail "the cache copy is still wrong"
[ "$(arts "$T/where.log" | wc -l)" = $((n0 + 1)) ] && ok "one download to repair it" \
  || fail "requests: $(arts "$T/where.log")"
sc=$(python3 -c "import json;m=json.load(open('$reg/blobs/sha256/$(python3 -c "import json;print(json.load(open('$reg/index/hello.json'))['versions']['0.1.0']['$native']['manifest'][7:])")'));print(m['schemas'][0]['digest'][7:])")
printf 'garbage' >"$T/xdg/molt/blobs/sha256/$sc"
XDG_CACHE_HOME=$T/xdg run "$MOLT" call -k "$key" -r "$url" hello@0.1.0 greet '{"name":"Ada"}'
expect "a cached schema changed on disk is replaced by the verified copy" 0 '{"greeting":"Hello, Ada!"}'
stop "$srv"

# --- progress on a terminal -------------------------------------------------------------
serve tty --rate 40000
rm -rf "$C"
if command -v script >/dev/null; then
  t0=$(date +%s%N)
  script -qec "'$MOLT' fetch --cache '$C' -k '$key' -r '$url' hello@0.1.0" "$T/tty.txt" >/dev/null 2>&1
  code=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$code" = 0 ] && ok "fetch on a terminal: exit 0" || fail "fetch on a terminal: exit $code"
  if grep -qaF "hello@0.1.0: " "$T/tty.txt" && grep -qa 'B/s, ETA 0:0' "$T/tty.txt" && grep -qa $'\r' "$T/tty.txt"; then
    ok "a terminal shows bytes, rate and ETA on one rewritten line"
  else
    fail "terminal output: $(tr '\r\033' '|~' <"$T/tty.txt" | head -c 600)"
  fi
  grep -qa $'\r\033\[K' "$T/tty.txt" && ok "the line is cleared at the end" || fail "the line is never cleared"
  n=$(grep -ao 'ETA' "$T/tty.txt" | wc -l)
  [ "$n" -ge 2 ] && [ "$n" -le $((ms / 100 + 2)) ] && ok "at most 10 updates a second ($n in $ms ms)" \
    || fail "$n progress updates in $ms ms"
  script -qec "'$MOLT' fetch -q --cache '$C.q' -k '$key' -r '$url' hello@0.1.0" "$T/ttyq.txt" >/dev/null 2>&1
  grep -qa 'ETA' "$T/ttyq.txt" && fail "-q still shows progress" || ok "-q: no progress on a terminal"
else
  echo "skipped: script(1) missing, no terminal test"
fi
stop "$srv"

finish
