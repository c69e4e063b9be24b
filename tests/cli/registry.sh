#!/usr/bin/env bash
# Registry maintenance end to end: several signing keys, concurrent
# publishers, yank/unyank, gc, refresh, key rotation, scripts/ci-publish.
. "$(dirname "$0")/lib.sh"

old=$FIXTURE/dev.key oldpub=$FIXTURE/dev.pub
MRECIPE_KDF_FAST=1 "$MRECIPE" keygen --unencrypted -s "$T/new.key" -p "$T/new.pub" >/dev/null
pub() { "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" "$@"; }
sver() { python3 -c "import json;print(json.load(open('$1/snapshot.json'))['version'])"; }
tgt() { python3 -c "import json;print(json.dumps(json.load(open('$1/index/hello.json'))['versions']['0.1.0']['wasm32-wasi']))"; }

# --- several keys -----------------------------------------------------------
run pub -r "$T/two" -s "$old:$T/new.key"
expect "publish signs with two keys" 0 "published hello@0.1.0 (wasm32-wasi)"
e=$(tgt "$T/two")
python3 - "$e" <<'PY' && ok "an entry lists one signature per key; 'signature' is the first" || fail "entry: $e"
import json, sys
t = json.loads(sys.argv[1])
assert len(t["signatures"]) == 2 and t["signature"] == t["signatures"][0] and t["yanked"] is False
PY
ids=$(python3 -c "import json;print(' '.join(json.load(open('$T/two/snapshot.json'))['signers']))")
n=0; for i in $ids; do [ -f "$T/two/snapshot.json.$i.minisig" ] && n=$((n + 1)); done
[ "$n" = 2 ] && ok "snapshot.json.<KEYID>.minisig for each signer ($ids)" || fail "per-key snapshot signatures: $n of $ids"
run "$MRECIPE" registry verify -r "$T/two" -k "$oldpub"
expect "verify with the first key alone" 0 "ok"
run "$MRECIPE" registry verify -r "$T/two" -k "$T/new.pub"
expect "verify with the second key alone" 0 "ok"
if command -v minisign >/dev/null; then
  for i in $ids; do
    minisign -Vq -p "$T/new.pub" -m "$T/two/snapshot.json" -x "$T/two/snapshot.json.$i.minisig" 2>/dev/null && good=$i
  done
  [ -n "${good:-}" ] && ok "stock minisign -V accepts a per-key snapshot signature" || fail "minisign rejected every per-key signature"
fi
cp -r "$T/two" "$T/two-bad"
second=$(python3 -c "import json,sys;print(json.loads(sys.argv[1])['signatures'][1][7:])" "$e")
python3 - "$T/two-bad/blobs/sha256/$second" <<'PY'
import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-10] ^= 1; open(p, "wb").write(b)
PY
run "$MRECIPE" registry verify -r "$T/two-bad" -k "$oldpub:$T/new.pub"
expect "a broken second signature is caught, with its path" 1 "$second"

# --- concurrent publishers ----------------------------------------------------
# Units in the fixture (every recipe's targets), however many recipes there are.
nunits=$(python3 -c "
import json,sys,os
r=sys.argv[1]; print(sum(len(t) for f in os.listdir(r+'/index') for t in json.load(open(r+'/index/'+f))['versions'].values()))" "$FIXTURE/registry")
for round in 1 2 3; do
  r=$T/conc$round
  pub -r "$r" -s "$old" >"$T/a.out" 2>"$T/a.err" & a=$!
  pub -r "$r" -s "$old" >"$T/b.out" 2>"$T/b.err" & b=$!
  wait $a; ca=$?; wait $b; cb=$?
  real=$(cat "$T/a.out" "$T/b.out" | grep -c '^published ')
  same=$(cat "$T/a.out" "$T/b.out" | grep -c '^unchanged ')
  if [ "$ca" = 0 ] && [ "$cb" = 0 ] && [ "$real" = "$nunits" ] && [ "$same" = "$nunits" ] && [ "$(sver "$r")" = "$real" ]; then
    ok "round $round: two publishers at once: both succeed, $nunits real changes, snapshot version $real"
  else
    fail "round $round: exits $ca/$cb, published $real, unchanged $same, version $(sver "$r"): $(cat "$T/a.err" "$T/b.err")"
  fi
  run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
  expect "round $round: the registry verifies" 0 "ok"
done

# --- yank / unyank ------------------------------------------------------------
r=$T/conc1 v0=$(sver "$T/conc1")
run "$MRECIPE" registry yank hello@0.1.0 -t wasm32-wasi -r "$r" -s "$old"
expect "yank one target" 0 "yanked hello@0.1.0 (1 entry changed)"
[ "$(python3 -c "import json;print(json.loads('''$(tgt "$r")''')['yanked'])")" = True ] \
  && ok "the yanked entry stays in the index, marked" || fail "entry: $(tgt "$r")"
[ "$(sver "$r")" = $((v0 + 1)) ] && ok "yank signs a new snapshot (version +1)" || fail "version $(sver "$r")"
run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
expect "a registry with a yanked unit verifies" 0 "ok"
run "$MRECIPE" registry yank hello@0.1.0 -t wasm32-wasi -r "$r" -s "$old"
expect "yanking twice changes nothing" 0 "(0 entries changed)"
[ "$(sver "$r")" = $((v0 + 1)) ] && ok "a no-op yank leaves the snapshot alone" || fail "version $(sver "$r")"
run "$MRECIPE" registry unyank hello@0.1.0 -r "$r" -s "$old"
expect "unyank every target" 0 "unyanked hello@0.1.0 (1 entry changed)"
run "$MRECIPE" registry yank hello@9.9.9 -r "$r" -s "$old"
expect "yanking what is not published is an input error" 2 "expected hello@9.9.9, found no such entry"
run "$MRECIPE" registry yank nosuch@1.0.0 -r "$r" -s "$old"
expect "yanking an unknown unit names the index path" 2 "index/nosuch.json"
run "$MRECIPE" registry frob -r "$r"
expect "an unknown operation is a usage error" 2 "unknown registry operation 'frob'"

# --- gc ---------------------------------------------------------------------
printf 'orphan bytes' >"$T/orphan"
h=$(sha256sum "$T/orphan" | cut -c1-64)
cp "$T/orphan" "$r/blobs/sha256/$h"
printf 'half' >"$r/blobs/sha256/$h.tmp.12345"
nblobs=$(ls "$r/blobs/sha256" | wc -l)
run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
expect "verify passes with an orphan blob, warning about it" 0 "warning: $r/blobs/sha256/$h: unreferenced blob"
expect "verify warns about a stale temporary file" 0 "$h.tmp.12345: temporary file"
run "$MRECIPE" registry gc -r "$r"
expect "gc lists the orphan (dry run)" 0 "would remove $r/blobs/sha256/$h"
[ "$(ls "$r/blobs/sha256" | wc -l)" = "$nblobs" ] && ok "a dry run removes nothing" || fail "dry run removed files"
run "$MRECIPE" registry gc -r "$r" --delete
expect "gc --delete removes the orphan and the temp file" 0 "2 unreferenced files removed"
[ ! -e "$r/blobs/sha256/$h" ] && [ "$(ls "$r/blobs/sha256" | wc -l)" = $((nblobs - 2)) ] \
  && ok "exactly the two unreferenced files are gone" || fail "blobs left: $(ls "$r/blobs/sha256" | wc -l)"
run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
expect "after gc every referenced blob is still there" 0 "ok"
[ -z "$(grep warning "$T/err")" ] && ok "and nothing is unreferenced" || fail "$err"
run "$MRECIPE" registry gc -r "$r" --delete
expect "a second gc finds nothing" 0 "0 unreferenced files removed"

# --- refresh ----------------------------------------------------------------
v0=$(sver "$r")
run "$MRECIPE" registry refresh -r "$r" -s "$old" --expires-days 2
expect "refresh" 0 "refreshed $r"
[ "$(sver "$r")" = $((v0 + 1)) ] && ok "refresh bumps the version" || fail "version $(sver "$r")"
exp=$(python3 -c "import json;print(json.load(open('$r/snapshot.json'))['expires'][:10])")
[ "$exp" = "$(date -u -d '+2 days' +%Y-%m-%d)" ] && ok "refresh sets the new expiry" || fail "expires $exp"
run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
expect "a refreshed registry verifies" 0 "ok"

# --- key rotation (docs/registry.md) -----------------------------------------
r=$T/rot
pub -r "$r" -s "$old" >/dev/null
run "$MRECIPE" registry verify -r "$r" -k "$T/new.pub"
expect "before rotation the new key is not trusted by anything" 1 "trusted key"
run "$MRECIPE" registry refresh --resign -r "$r" -s "$old:$T/new.key"
expect "rotation step 1: re-sign everything with old and new" 0 "every entry re-signed"
run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
expect "step 1: old clients (old key only) still verify" 0 "ok"
run "$MRECIPE" registry verify -r "$r" -k "$T/new.pub"
expect "step 1: new clients (new key only) verify" 0 "ok"
run "$MRECIPE" registry refresh --resign -r "$r" -s "$T/new.key"
expect "rotation step 2: drop the old key" 0 "every entry re-signed"
run "$MRECIPE" registry verify -r "$r" -k "$T/new.pub"
expect "step 2: the new key alone verifies" 0 "ok"
run "$MRECIPE" registry verify -r "$r" -k "$oldpub"
expect "step 2: the old key no longer verifies anything" 1 "expected a signature by a trusted key"
ls "$r"/snapshot.json.*.minisig | grep -q "$(python3 -c "import json;print(json.load(open('$r/snapshot.json'))['signers'][0])")" \
  && [ "$(ls "$r"/snapshot.json.*.minisig | wc -l)" = 1 ] && ok "step 2: the old key's snapshot signature file is gone" \
  || fail "snapshot signatures: $(ls "$r")"
run pub -r "$r" -s "$T/new.key"
expect "publishing after rotation: unchanged units stay unchanged" 0 "unchanged hello@0.1.0"
MOLT_OUT=$("$MOLT" fetch -r "$r" --cache "$T/cache-rot" -k "$T/new.pub" -t wasm32-wasi hello@0.1.0 2>&1) \
  && ok "a client with the new key fetches after rotation" || fail "molt fetch: $MOLT_OUT"

# --- multi-key from the environment, and scripts/ci-publish ---------------------
run env MRECIPE_SECRET_KEY="$(cat "$old")

$(cat "$T/new.key")" "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -r "$T/envreg"
expect "MRECIPE_SECRET_KEY holds two keys separated by a blank line" 0 "published hello@0.1.0"
[ "$(python3 -c "import json;print(len(json.load(open('$T/envreg/snapshot.json'))['signers']))")" = 2 ] \
  && ok "both environment keys signed the snapshot" || fail "signers: $(grep -A2 signers "$T/envreg/snapshot.json")"
run env MRECIPE="$MRECIPE" MRECIPE_SECRET_KEY="$(cat "$old")" "$here/scripts/ci-publish" "$T/ci" "$oldpub" "$FIXTURE/out"
expect "scripts/ci-publish builds, tests, publishes and verifies" 0 "$T/ci: ok"
run env MRECIPE="$MRECIPE" MRECIPE_SECRET_KEY= "$here/scripts/ci-publish" "$T/ci" "$oldpub" "$FIXTURE/out"
expect "ci-publish without a key says what to set" 2 "set MRECIPE_SECRET_KEY"
# --- hints: artifact and schema pack in index entries (docs/registry.md) -------
h=$T/hints
cp -r "$FIXTURE/registry" "$h"
hent() { python3 -c "import json,sys;e=json.load(open('$1/index/'+sys.argv[1]+'.json'))['versions']['0.1.0']['wasm32-wasi'];print(json.dumps(e))" "${2:-hello}"; }
hfield() { python3 -c "import json,sys;v=eval('json.loads(sys.argv[1])'+sys.argv[2]);print(v if isinstance(v,str) else json.dumps(v))" "$(hent "$h" "${2:-hello}")" "$1"; }
# hedit PYTHON: runs PYTHON with e = the hello wasm32-wasi entry, writes the
# index, lists it in snapshot.json and signs a new snapshot (refresh).
hedit() {
  python3 - "$h" "$1" <<'PY'
import hashlib, json, sys
p = sys.argv[1] + '/index/hello.json'; ix = json.load(open(p)); e = ix['versions']['0.1.0']['wasm32-wasi']
exec(sys.argv[2]); b = json.dumps(ix, indent=1).encode(); open(p, 'wb').write(b)
sp = sys.argv[1] + '/snapshot.json'; s = json.load(open(sp))
s['indexes']['hello'] = {'digest': 'sha256:' + hashlib.sha256(b).hexdigest(), 'size': len(b)}
open(sp, 'w').write(json.dumps(s, indent=1))
PY
  "$MRECIPE" registry refresh -r "$h" -s "$old" >/dev/null
}
pack=$(hfield "['schemas_pack']['digest']")
python3 - "$h" "$(hent "$h")" <<'PY' && ok "publish hints the manifest's artifact and a pack of its schemas, in manifest order" || fail "hints: $(hent "$h")"
import hashlib, json, sys
r, e = sys.argv[1], json.loads(sys.argv[2])
m = json.load(open(r + '/blobs/sha256/' + e['manifest'][7:]))
assert e['artifact'] == {'digest': m['artifact']['digest'], 'size': m['artifact']['size']}
b = open(r + '/blobs/sha256/' + e['schemas_pack']['digest'][7:], 'rb').read()
assert len(b) == e['schemas_pack']['size']
docs = json.loads(b)
assert ['sha256:' + hashlib.sha256(d.encode()).hexdigest() for d in docs] == [s['digest'] for s in m['schemas']]
PY
run "$MRECIPE" registry gc -r "$h"
[ "$code" = 0 ] && ! printf '%s' "$out" | grep -q "${pack:7}" && ok "gc counts the schema pack as referenced" || fail "gc: $out $err"
run "$MRECIPE" registry gc -r "$h" --delete
[ -f "$h/blobs/sha256/${pack:7}" ] && ok "gc --delete keeps the schema pack" || fail "the pack is gone: $out"
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "a registry with hints verifies, no warnings" 0 "$h: ok"
printf '%s' "$err" | grep -q warning && fail "warnings: $err" || ok "no blob is unreferenced"
run "$MRECIPE" registry yank hello@0.1.0 -t wasm32-wasi -r "$h" -s "$old"
[ "$(hfield "['schemas_pack']['digest']")" = "$pack" ] && [ -n "$(hfield "['artifact']['digest']")" ] \
  && ok "yank keeps the hints" || fail "after yank: $(hent "$h")"
"$MRECIPE" registry unyank hello@0.1.0 -r "$h" -s "$old" >/dev/null
other=$(hfield "['artifact']" countdown)
hedit "e['artifact'] = $other"
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "verify: a hinted artifact other than the manifest's is a problem naming the entry" 1 \
  "index/hello.json: hello@0.1.0 wasm32-wasi: hint \"artifact\" is $(python3 -c "import json,sys;print(json.loads(sys.argv[1])['digest'])" "$other")"
expect "and says how to repair it" 1 "'mrecipe registry refresh --resign' rewrites the hints"
run "$MRECIPE" registry refresh --resign -r "$h" -s "$old"
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "refresh --resign rewrites the hints from the manifest" 0 "$h: ok"
short=$(python3 - "$h" "$pack" <<'PY'
import hashlib, json, sys
r, d = sys.argv[1], sys.argv[2]
b = json.dumps(json.load(open(r + '/blobs/sha256/' + d[7:]))[:-1]).encode()
h = hashlib.sha256(b).hexdigest(); open(r + '/blobs/sha256/' + h, 'wb').write(b)
print('{"digest": "sha256:%s", "size": %d}' % (h, len(b)))
PY
)
hedit "e['schemas_pack'] = $short"
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "verify: a pack missing a schema is a problem naming the entry" 1 "index/hello.json: hello@0.1.0 wasm32-wasi: schema pack"
expect "and the counts" 1 "holds 1 document, but the signed manifest lists 2 schemas"
"$MRECIPE" registry refresh --resign -r "$h" -s "$old" >/dev/null
cp "$h/blobs/sha256/${pack:7}" "$T/pack.bak"
python3 - "$h/blobs/sha256/${pack:7}" <<'PY'
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[3] ^= 1; open(p, 'wb').write(b)
PY
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "verify: an altered pack blob is a problem" 1 "schema pack $h/blobs/sha256/${pack:7}: expected"
rm "$h/blobs/sha256/${pack:7}"
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "verify: a missing pack blob is a problem naming it" 1 "schema pack blob $pack missing"
cp "$T/pack.bak" "$h/blobs/sha256/${pack:7}"
hedit "del e['artifact']; del e['schemas_pack']"
run "$MRECIPE" registry verify -r "$h" -k "$oldpub"
expect "an entry without hints (an older registry) verifies" 0 "$h: ok"
run "$MRECIPE" registry refresh --resign -r "$h" -s "$old"
[ "$(hfield "['schemas_pack']['digest']")" = "$pack" ] && ok "refresh --resign adds hints to entries published without" \
  || fail "after resign: $(hent "$h")"
# The pack is a blob like the others: written before the commit point.
pub -r "$T/hc-base" -s "$old" hello >/dev/null
cp -r "$T/hc-base" "$T/hc"
rm -rf "$T/hc"/index "$T/hc"/snapshot.json* "$T/hc/blobs/sha256"/*
run env MRECIPE_FAULT=after-pack-blob "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -s "$old" -r "$T/hc" hello
expect "a crash right after the pack blob is written (fault after-pack-blob)" 99
[ ! -e "$T/hc/index/hello.json" ] && [ -f "$T/hc/blobs/sha256/${pack:7}" ] \
  && ok "the crash left the pack blob and no index entry" || fail "after the crash: $(ls "$T/hc" "$T/hc/blobs/sha256")"
run pub -r "$T/hc" -s "$old" hello
expect "the next publish completes the job" 0 "published hello@0.1.0 (wasm32-wasi)"
run "$MRECIPE" registry verify -r "$T/hc" -k "$oldpub"
expect "and the result verifies with its hints" 0 "$T/hc: ok"

# --- registry verify against a trust policy ---------------------------------
kid=$(sed -n 's/^untrusted comment: minisign public key \([0-9A-F]*\)$/\1/p' "$FIXTURE/dev.pub")
cp "$FIXTURE/dev.pub" "$T/dev.pub"
pol() { printf '{"format": 1, "keys": [{"id": "%s", "pub": "dev.pub", "names": [%s]%s}],\n "thresholds": %s, "snapshot": {"keys": ["%s"], "threshold": 1}}\n' \
  "$kid" "$1" "$2" "$3" "$kid" > "$T/policy.json"; }
pol '"*"' '' '{"*": 1}'
run "$MRECIPE" registry verify --registry "$FIXTURE/registry" -k "$FIXTURE/dev.pub" --policy "$T/policy.json"
expect "a registry that meets its policy verifies" 0 "ok"
MRECIPE_KDF_FAST=1 "$MRECIPE" keygen -W -s "$T/second.key" -p "$T/second.pub" >/dev/null
kid2=$(sed -n 's/^untrusted comment: minisign public key \([0-9A-F]*\)$/\1/p' "$T/second.pub")
printf '{"format": 1, "keys": [{"id": "%s", "pub": "dev.pub", "names": ["*"]}, {"id": "%s", "pub": "second.pub", "names": ["*"]}],\n "thresholds": {"hello": 2}, "snapshot": {"keys": ["%s"], "threshold": 1}}\n' \
  "$kid" "$kid2" "$kid" > "$T/policy.json"
run "$MRECIPE" registry verify --registry "$FIXTURE/registry" -k "$FIXTURE/dev.pub" --policy "$T/policy.json"
expect "one key where the policy wants two for hello is a problem" 1 "trust policy"
printf '%s' "$err" | grep -q 'hello' && ! printf '%s' "$err" | grep -q 'countdown.*trust policy' \
  && ok "only the units the threshold names are reported" || fail "policy report: $err"
pol '"jsoninfo"' '' '{"*": 1}'
run "$MRECIPE" registry verify --registry "$FIXTURE/registry" -k "$FIXTURE/dev.pub" --policy "$T/policy.json"
expect "a key signing names it may not sign is a problem" 1 "trust policy"
pol '"*"' ', "revoked": true' '{"*": 1}'
run "$MRECIPE" registry verify --registry "$FIXTURE/registry" -k "$FIXTURE/dev.pub" --policy "$T/policy.json"
expect "signatures by a revoked key do not count" 1 "trust policy"
printf '{"format": 1, "keys": [}' > "$T/policy.json"
run "$MRECIPE" registry verify --registry "$FIXTURE/registry" -k "$FIXTURE/dev.pub" --policy "$T/policy.json"
expect "a malformed policy is exit 2 with its position" 2 "policy.json:1:"

finish
