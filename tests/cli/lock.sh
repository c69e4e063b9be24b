#!/usr/bin/env bash
# Lockfiles (molt lock, molt fetch --locked, molt call --lock), loading by
# manifest digest (molt call --digest) and run-time depends (molt call
# --with), against the fixture's registry and copies of it edited and
# re-signed with the stock minisign by the regtool tests/cli/attacks.sh
# carries. Run it with MOLT set to the ASan+UBSan molt too.
. "$(dirname "$0")/lib.sh"

reg=$FIXTURE/registry dev=$FIXTURE/dev.key host=x86_64-linux-gnu
sed -n "/<<'PY'\$/,/^PY\$/p" "$here/tests/cli/attacks.sh" | sed '1d;$d' > "$T/regtool.py"
rt() { python3 "$T/regtool.py" "$@"; }
# m ARGS...: molt with the fixture's key and a private cache
m() { run "$MOLT" "$1" -k "$FIXTURE/dev.pub" --cache "$T/cache" -q "${@:2}"; }
# field LOCK NAME TARGET FIELD: one value of a lockfile entry
field() {
  python3 -c 'import json,sys; print([u[sys.argv[4]] for u in json.load(open(sys.argv[1]))["units"]
    if u["name"] == sys.argv[2] and u["target"] == sys.argv[3]][0])' "$@"
}
D=$(rt keyid "$FIXTURE/dev.pub")
cd "$T" || exit 1

# --- molt lock: stable bytes ---------------------------------------------------
m lock -r "$reg" hello@0.1.0 countdown@0.1.0 --target wasm32-wasi,$host
expect "lock two units for two targets" 0 "wrote molt.lock: 4 entries"
cp molt.lock first.lock
m lock -r "$reg" countdown@0.1.0 hello@0.1.0 --target $host --target wasm32-wasi
if [ "$code" = 0 ] && cmp -s molt.lock first.lock; then
  ok "locking again, names and targets in another order (--target twice): byte-identical molt.lock"
else
  fail "lock again: exit $code, files differ: $(diff first.lock molt.lock | head -5)"
fi
run python3 -c 'import json; l = json.load(open("molt.lock")); u = l["units"]
assert l["format"] == 1, l
assert [(e["name"], e["target"]) for e in u] == sorted((e["name"], e["target"]) for e in u)
assert set(u[0]) == {"name", "version", "target", "manifest", "artifact", "artifact_size", "keys"}
print("keys", u[0]["keys"][0], "size", u[0]["artifact_size"])'
expect "molt.lock: format 1, sorted, every field, the signing key id" 0 "keys $D size "
mh=$(field molt.lock hello $host manifest) ah=$(field molt.lock hello $host artifact)
[ "$mh" = "$(rt keyid "$FIXTURE/dev.pub" >/dev/null; python3 -c 'import json,sys
print(json.load(open(sys.argv[1]))["versions"]["0.1.0"][sys.argv[2]]["manifest"])' "$reg/index/hello.json" $host)" ] &&
  ok "the locked manifest digest is the registry index's" || fail "locked manifest $mh is not the index's"
m lock -r "$reg" hello@0.1.0 hello@0.2.0
expect "lock: two versions of one unit is a usage error" 2 "a lockfile pins one version of each unit"
m lock -r "$reg" hello@9.9.9 -o nine.lock
expect "lock: a version the registry lacks is not found" 2 "hello@9.9.9 is not in"
[ ! -e nine.lock ] && ok "a failed lock writes no file" || fail "nine.lock was written"
m lock -r "$reg" countdown@0.1.0 -o add.lock && m lock -r "$reg" hello@0.1.0 --add -o add.lock
run python3 -c 'import json; print(len(json.load(open("add.lock"))["units"]))'
expect "lock --add keeps the lockfile's other entries" 0 "2"

# --- molt fetch --locked ---------------------------------------------------------
m fetch -r "$reg" --locked
expect "fetch --locked: every entry of molt.lock" 0 "hello@0.1.0 wasm32-wasi verified, manifest $(field molt.lock hello wasm32-wasi manifest) (locked)"
[ "$(grep -c '(locked)' "$T/out")" = 4 ] && ok "fetch --locked fetched 4 entries" || fail "fetched: $out"
m fetch -r "$reg" --locked first.lock hello@0.1.0 -t $host
expect "fetch --locked FILE NAME@VERSION -t: just that entry" 0 "hello@0.1.0 $host verified, manifest $mh (locked)"
[ "$(grep -c '(locked)' "$T/out")" = 1 ] && ok "only the entry named" || fail "fetched: $out"
m fetch -r "$reg" --locked hello@0.2.0
expect "fetch --locked: another version than the locked one" 2 "molt.lock pins hello@0.1.0, not hello@0.2.0"
m fetch -r "$reg" --locked jsoninfo@0.1.0
expect "fetch --locked: a unit the lockfile lacks" 2 "molt.lock has no entry for jsoninfo@0.1.0; pin it first (molt lock jsoninfo@0.1.0)"
m fetch -r "$reg" --locked missing.lock
expect "fetch --locked: no lockfile" 2 "lockfile missing.lock not found; make one with molt lock"
m call -r "$reg" --lock molt.lock hello@0.1.0 greet '{"name":"Lock"}'
expect "call --lock: the locked unit" 0 '{"greeting":"Hello, Lock!"}'
m call -r "$reg" --locked countdown@0.1.0 count '{"n":3}'
expect "call --locked: molt.lock's unit" 0 '"sum":6'

# --- malformed lockfiles: exit 2 with file:line:col -------------------------------
printf '{"format": 1,\n "units": [\n  {"name": "hello", "version": "0.1.0", "target": "%s",\n   "manifest": "sha256:12", "artifact": "%s", "artifact_size": 1, "keys": ["%s"]}]}\n' \
  $host "$ah" "$D" > bad1.lock
m fetch -r "$reg" --locked bad1.lock
expect "malformed digest: file:line:col" 2 'bad1.lock:4:16: "manifest": expected a digest "sha256:<64 hex digits>", found "sha256:12"'
printf '{"format": 1,\n "units": [\n  {"name": "hello",' > bad2.lock
m fetch -r "$reg" --locked bad2.lock
expect "truncated JSON: file:line:col" 2 "bad2.lock:3:20: invalid JSON"
printf '{"format": 2,\n "units": []}\n' > bad3.lock
m fetch -r "$reg" --locked bad3.lock
expect "unknown format: clear error" 2 "bad3.lock:1:12: unknown lockfile format 2: this molt reads format 1"
sed 's/"keys"/"kees"/' first.lock > bad4.lock
m fetch -r "$reg" --locked bad4.lock
expect "unknown member: named, with its line" 2 'bad4.lock:11:7: unknown member "kees" in a unit'
sed '/"keys"/d; s/"artifact_size": \([0-9]*\),/"artifact_size": \1/' first.lock > bad6.lock
m fetch -r "$reg" --locked bad6.lock
expect "a missing member: named, at its entry" 2 'bad6.lock:4:5: a unit lacks "keys"; run molt lock again'
python3 -c 'import json; l = json.load(open("first.lock")); l["units"].append(l["units"][0])
open("bad5.lock", "w").write(json.dumps(l, indent=1))'
m fetch -r "$reg" --locked bad5.lock
expect "a duplicate name and target" 2 "a second entry for countdown (wasm32-wasi)"

# --- the registry disagrees with the lockfile: exit 1 ------------------------------
# r2: hello's native artifact replaced by other bytes, its manifest re-signed
# with the publisher's key, as a republish of the same version would be.
cp -r "$reg" r2
python3 - r2 $host <<'PY' > patch.json
import hashlib, json, sys
reg, tgt = sys.argv[1:]
e = json.load(open(reg + '/index/hello.json'))['versions']['0.1.0'][tgt]
m = json.load(open(reg + '/blobs/sha256/' + e['manifest'][7:]))
a = open(reg + '/blobs/sha256/' + m['artifact']['digest'][7:], 'rb').read() + b'\0republished'
d = hashlib.sha256(a).hexdigest()
open(reg + '/blobs/sha256/' + d, 'wb').write(a)
m['artifact'].update(digest='sha256:' + d, size=len(a))
print(json.dumps({'artifact': m['artifact']}))
PY
rt unit r2 hello 0.1.0 $host "$dev" "$(cat patch.json)" && rt snapshot r2 "$dev"
m2=$(python3 -c 'import json,sys; print(json.load(open("r2/index/hello.json"))["versions"]["0.1.0"][sys.argv[1]]["manifest"])' $host)
m fetch -r r2 hello@0.1.0
expect "r2 is a validly signed registry" 0 "hello@0.1.0 $host verified, manifest $m2"
m fetch -r r2 --locked
expect "fetch --locked: a republished unit is refused" 1 "hello@0.1.0 ($host): molt.lock pins manifest $mh, but the registry has $m2; refusing it"
expect "... saying what to do" 1 "If the change is intended, run molt lock hello@0.1.0 again"
m verify -r r2 --locked
expect "verify --locked: a republished unit fails verification" 1 "molt.lock pins manifest $mh, but the registry has $m2"
m verify -r "$reg" --locked molt.lock hello@0.1.0
expect "verify --locked: the locked unit verifies" 0 "hello@0.1.0 $host verified, manifest $mh (locked)"
m call -r r2 --lock molt.lock hello@0.1.0 greet '{"name":"X"}'
expect "call --lock: a republished unit is not loaded" 1 "molt.lock pins manifest $mh, but the registry has $m2"
sed "s/$ah/sha256:$(printf '%064d' 7)/" molt.lock > art.lock
m fetch -r "$reg" --locked art.lock hello@0.1.0 -t $host
expect "fetch --locked: the artifact digest is compared too" 1 "art.lock pins artifact sha256:$(printf '%064d' 7), but the registry has $ah"
python3 -c 'import json; l = json.load(open("molt.lock"))
for u in l["units"]: u["artifact_size"] += 1
open("size.lock", "w").write(json.dumps(l))'
m fetch -r "$reg" --locked size.lock countdown@0.1.0 -t wasm32-wasi
expect "fetch --locked: and the artifact size" 1 "size.lock pins artifact_size"

# --- a yanked unit the lockfile pins ----------------------------------------------
cp -r "$reg" r3
rt set r3 hello 0.1.0 $host yanked true && rt snapshot r3 "$dev"
m fetch -r r3 hello@0.1.0
expect "r3: hello@0.1.0 is yanked" 2 "was yanked from"
m fetch -r r3 --locked hello@0.1.0
expect "fetch --locked: a yanked unit still fetches" 0 "hello@0.1.0 $host verified, manifest $mh (locked)"
expect "... with a warning" 0 "warning: hello@0.1.0 ($host) is yanked in the registry; fetched because molt.lock pins it"

# --- loading by manifest digest -------------------------------------------------
m call -r "$reg" --digest "$mh" greet '{"name":"Digest"}'
expect "call --digest: the unit with that signed manifest" 0 '{"greeting":"Hello, Digest!"}'
m call -r "$reg" --digest "$(field molt.lock hello wasm32-wasi manifest)" greet '{}'
expect "call --digest of a wasm manifest: not for this host" 1 "is hello@0.1.0 for wasm32-wasi; this host loads $host units"
m call -r "$reg" --digest "sha256:$(printf '%064d' 0)" greet '{}'
expect "call --digest: no such blob" 2 "no source has manifest sha256:$(printf '%064d' 0)"
m call -r "$reg" --digest "sha256:zz" greet '{}'
expect "call --digest: a malformed digest" 2 "expected a manifest digest"
m call -r r2 --digest "$m2" greet '{"name":"R2"}'
expect "call --digest: r2's manifest from r2" 0 '{"greeting":"Hello, R2!"}'
m call -r "$reg" --digest "$m2" greet '{}'
expect "call --digest: a manifest the registry does not sign for that version (blob in the cache)" 1 "the registry's signed index names manifest $mh, not the requested $m2"

# --- run-time depends: nothing is loaded implicitly --------------------------------
# r4: hellodep@0.1.0 is hello's build with a manifest that depends on hello ^0.1.0.
cp -r "$reg" r4
python3 - r4 $host <<'PY'
import json, sys
reg, tgt = sys.argv[1:]
ix = json.load(open(reg + '/index/hello.json'))
ix['versions'] = {'0.1.0': {tgt: ix['versions']['0.1.0'][tgt]}}
json.dump(ix, open(reg + '/index/hellodep.json', 'w'))
s = json.load(open(reg + '/snapshot.json')); s['indexes']['hellodep'] = {}
json.dump(s, open(reg + '/snapshot.json', 'w'))
PY
rt unit r4 hellodep 0.1.0 $host "$dev" '{"name": "hellodep", "depends": [{"name": "hello", "version": "^0.1.0"}]}' &&
  rt snapshot r4 "$dev"
m call -r r4 hellodep@0.1.0 greet '{"name":"Dep"}'
expect "a unit whose dependency is not loaded is refused" 2 "hellodep@0.1.0 depends on hello@^0.1.0 at run time, which is not loaded in this runtime; load it first"
m call -r r4 --with countdown@0.1.0 hellodep@0.1.0 greet '{"name":"Dep"}'
expect "another unit loaded first does not count" 2 "depends on hello@^0.1.0"
m call -r r4 --with hello@0.1.0 hellodep@0.1.0 greet '{"name":"Dep"}'
expect "with the dependency loaded first, it loads" 0 '{"greeting":"Hello, Dep!"}'
m fetch -r r4 hellodep@0.1.0
expect "fetch reports the dependency, fetching nothing implicitly" 0 "hellodep@0.1.0 depends on hello@^0.1.0, which was not asked for: not fetched"

finish
