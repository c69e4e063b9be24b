#!/usr/bin/env bash
# The TUF attack list (../shared/ANCHORS.md, docs/security.md) against
# `molt fetch`: each hostile registry is a copy of the fixture's, edited and
# re-signed with the stock minisign by regtool (below), so no code under
# test makes the signatures. Each case fails if its check is removed.
. "$(dirname "$0")/lib.sh"

reg=$FIXTURE/registry dev=$FIXTURE/dev.key
# --- regtool: BEGIN (tests/node/attacks.test.mjs extracts this too)
cat > "$T/regtool.py" <<'PY'
#!/usr/bin/env python3
"""Crafts hostile registries for tests/cli/attacks.sh and tests/node/attacks.test.mjs,
signing with the stock minisign (so no code under test makes the signatures).

  regtool.py unit REG NAME VERSION TARGET KEY[,KEY...] [JSON-PATCH]
      re-signs that manifest (after merging JSON-PATCH into it) with each key,
      listing every signature in the index entry's "signatures"
  regtool.py snapshot REG KEY[,KEY...] [VERSION [EXPIRES]]
      rewrites snapshot.json from the index files on disk and signs it with
      each key (snapshot.json.minisig and snapshot.json.<KEYID>.minisig)
  regtool.py set REG NAME VERSION TARGET FIELD JSON   edits an index entry
  regtool.py keyid PUB
A KEY is a minisign secret key file with its .pub beside it (X.key, X.pub)."""
import base64, hashlib, json, os, subprocess, sys

def sha(b): return hashlib.sha256(b).hexdigest()
def keyid(pub):
    raw = base64.b64decode(open(pub).read().splitlines()[1])
    return '%X' % int.from_bytes(raw[2:10], 'little')
def pub_of(key): return key[:-4] + '.pub' if key.endswith('.key') else key + '.pub'
def sign(key, data, comment, n):
    p = '/tmp/regtool.%d.%d' % (os.getpid(), n)
    open(p, 'wb').write(data)
    subprocess.run(['minisign', '-S', '-l', '-s', key, '-m', p, '-x', p + '.sig', '-t', comment,
                    '-c', 'signature %d' % n], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    b = open(p + '.sig', 'rb').read(); os.remove(p); os.remove(p + '.sig'); return b
def put(reg, b):
    d = sha(b); open('%s/blobs/sha256/%s' % (reg, d), 'wb').write(b); return 'sha256:' + d
def load(p): return json.load(open(p))
def dump(p, v): open(p, 'w').write(json.dumps(v, indent=1))

cmd, reg = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
if cmd == 'keyid':
    print(keyid(reg))
elif cmd == 'unit':
    name, ver, tgt, keys = sys.argv[3:7]
    ip = '%s/index/%s.json' % (reg, name); ix = load(ip); e = ix['versions'][ver][tgt]
    m = load('%s/blobs/sha256/%s' % (reg, e['manifest'][7:]))
    if len(sys.argv) > 7: m.update(json.loads(sys.argv[7]))
    mb = json.dumps(m).encode(); md = put(reg, mb)
    keys = keys.split(',')
    sigs = [put(reg, sign(k, mb, 'molt unit %s@%s %s %s' % (name, ver, tgt, md), i)) for i, k in enumerate(keys)]
    e.update(manifest=md, size=len(mb), signature=sigs[0], signatures=sigs)
    dump(ip, ix)
elif cmd == 'set':
    name, ver, tgt, field, val = sys.argv[3:8]
    ip = '%s/index/%s.json' % (reg, name); ix = load(ip)
    ix['versions'][ver][tgt][field] = json.loads(val); dump(ip, ix)
elif cmd == 'snapshot':
    keys = sys.argv[3].split(',')
    sp = reg + '/snapshot.json'; s = load(sp)
    if len(sys.argv) > 4: s['version'] = int(sys.argv[4])
    if len(sys.argv) > 5: s['expires'] = sys.argv[5]
    for n in s['indexes']:
        b = open('%s/index/%s.json' % (reg, n), 'rb').read()
        s['indexes'][n] = {'digest': 'sha256:' + sha(b), 'size': len(b)}
    ids = [keyid(pub_of(k)) for k in keys]
    s['signers'] = ids
    b = json.dumps(s, indent=1).encode(); open(sp, 'wb').write(b)
    c = 'molt snapshot %d sha256:%s' % (s['version'], sha(b))
    for f in os.listdir(reg):
        if f.startswith('snapshot.json.') and f.endswith('.minisig'): os.remove(reg + '/' + f)
    for i, k in enumerate(keys):
        sig = sign(k, b, c, i)
        if i == 0: open(sp + '.minisig', 'wb').write(sig)
        open('%s.%s.minisig' % (sp, ids[i]), 'wb').write(sig)
else:
    sys.exit(__doc__)
PY
# --- regtool: END
rt() { python3 "$T/regtool.py" "$@"; }
native=x86_64-linux-gnu
m() { run "$MOLT" fetch --cache "$T/cache" -q "$@"; }
fresh() { rm -rf "$T/r" "$T/cache"; cp -r "$reg" "$T/r"; }
minisign -G -W -f -p "$T/k2.pub" -s "$T/k2.key" >/dev/null 2>&1 || fail "minisign -G"
minisign -G -W -f -p "$T/k3.pub" -s "$T/k3.key" >/dev/null 2>&1 || fail "minisign -G"
cp "$FIXTURE/dev.pub" "$T/dev.pub"
D=$(rt keyid "$T/dev.pub") K2=$(rt keyid "$T/k2.pub") K3=$(rt keyid "$T/k3.pub")
# policy NAME KEYS-JSON [THRESHOLDS-JSON [SNAPSHOT-JSON]]: writes $T/NAME.json
policy() {
  printf '{"format": 1,\n "keys": %s,\n "thresholds": %s,\n "snapshot": %s}\n' "$2" "${3:-{\}}" \
    "${4:-{\"keys\": [\"$D\"]\}}" > "$T/$1.json"
}
dk() { printf '{"id": "%s", "pub": "dev.pub", "names": ["*"]%s}' "$D" "${1:-}"; }
k2() { printf '{"id": "%s", "pub": "k2.pub", "names": [%s]%s}' "$K2" "${1:-\"*\"}" "${2:-}"; }

# --- the trust policy --------------------------------------------------------
policy p1 "[$(dk)]"
fresh; m -r "$T/r" --policy "$T/p1.json" hello@0.1.0
expect "policy: a unit signed by an allowed key is fetched" 0 "hello@0.1.0 $native verified"
printf '{"format": 1,\n "keys": [{"id": "%s", "pub": "dev.pub", "nmes": ["*"]}]}' "$D" > "$T/bad.json"
m -r "$T/r" --policy "$T/bad.json" hello@0.1.0
expect "policy: an unknown member is reported with file:line:col" 2 "$T/bad.json:2:$((40 + ${#D})): unknown member \"nmes\""
policy p2 "[{\"id\": \"ABC\", \"pub\": \"dev.pub\"}]"
m -r "$T/r" --policy "$T/p2.json" hello@0.1.0
expect "policy: an id that is not the .pub's key is refused" 2 "id is ABC, but dev.pub holds key $D"

# --- key compromise below threshold -----------------------------------------
policy th2 "[$(dk), $(k2)]" '{"hello": 2}'
fresh; m -r "$T/r" --policy "$T/th2.json" hello@0.1.0
expect "threshold 2, one key signs: refused" 1 "hello needs signatures by 2 distinct trusted key(s); found 1 ($D)"
fresh; rt unit "$T/r" hello 0.1.0 $native "$dev,$dev"; rt snapshot "$T/r" "$dev"
m -r "$T/r" --policy "$T/th2.json" hello@0.1.0
expect "threshold 2, the same key's signature twice: counted once, refused" 1 "another signature by key $D, already counted (each key counts once)"
fresh; rt unit "$T/r" hello 0.1.0 $native "$dev,$T/k2.key"; rt snapshot "$T/r" "$dev"
m -r "$T/r" --policy "$T/th2.json" hello@0.1.0
expect "threshold 2, two distinct keys sign: fetched" 0 "hello@0.1.0 $native verified"
m -r "$T/r" --policy "$T/th2.json" countdown@0.1.0
expect "threshold 2 applies only to the names it matches" 0 "countdown@0.1.0 $native verified"
policy th2b "[$(dk), $(k2 '"other-*"')]" '{"hello": 2}'
m -r "$T/r" --policy "$T/th2b.json" hello@0.1.0
expect "a key not allowed for the name does not count" 1 "key $K2 may not sign hello under the trust policy"

# --- revoked and expired keys ------------------------------------------------
policy rv "[$(dk ', "revoked": true')]"
fresh; m -r "$T/r" --policy "$T/rv.json" hello@0.1.0
expect "a revoked key is refused" 1 "key $D is revoked by the trust policy"
policy ex "[$(dk ', "expires": "2020-01-01T00:00:00Z"')]"
m -r "$T/r" --policy "$T/ex.json" hello@0.1.0
expect "an expired key is refused" 1 "key $D expired at 2020-01-01T00:00:00Z"

# --- snapshot threshold ---------------------------------------------------------
policy st "[$(dk), $(k2)]" '{}' "{\"keys\": [\"$D\", \"$K2\"], \"threshold\": 2}"
fresh; m -r "$T/r" --policy "$T/st.json" hello@0.1.0
expect "snapshot threshold 2, one signer: refused" 1 "the snapshot needs signatures by 2 distinct trusted key(s); found 1"
fresh; rt snapshot "$T/r" "$dev,$dev"
m -r "$T/r" --policy "$T/st.json" hello@0.1.0
expect "snapshot threshold 2, one key listed twice: refused" 1 "the snapshot needs signatures by 2 distinct trusted key(s); found 1"
fresh; rt snapshot "$T/r" "$dev,$T/k2.key"
m -r "$T/r" --policy "$T/st.json" hello@0.1.0
expect "snapshot threshold 2, two keys sign: fetched" 0 "hello@0.1.0 $native verified"

# --- rollback -------------------------------------------------------------------
v=$(python3 -c "import json;print(json.load(open('$reg/snapshot.json'))['version'])")
fresh; rt snapshot "$T/r" "$dev" $((v + 2))
m -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "rollback: a current snapshot is fetched" 0 "verified"
h=$(printf '%s' "file://$(realpath "$T/r")/" | sha256sum | cut -d' ' -f1)
[ -f "$T/cache/state/$h.json" ] && grep -q "\"version\":	$((v + 2))" "$T/cache/state/$h.json" \
  && ok "rollback: the version seen is kept in <cache>/state/<sha256 of URL>.json" \
  || fail "rollback: no state file $T/cache/state/$h.json: $(ls "$T/cache/state" 2>&1)"
rt snapshot "$T/r" "$dev" $((v + 1))
run "$MOLT" fetch --cache "$T/cache" -q -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "rollback: an older, validly signed snapshot is refused" 1 "rollback: version $((v + 1)) is older than version $((v + 2)) this client has already seen"
rm -rf "$T/cache/state"
run "$MOLT" fetch --cache "$T/cache" -q -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "rollback: without the remembered state it is accepted (the state is the defence)" 0 "verified"

# --- fast-forward ---------------------------------------------------------------
rt snapshot "$T/r" "$dev" 1000000000000
run "$MOLT" fetch --cache "$T/cache" -q -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "fast-forward: a version absurdly far ahead is refused" 1 "fast-forward: version 1000000000000 is more than 1000000 ahead of version $((v + 1))"
rt snapshot "$T/r" "$dev" $((v + 5))
run "$MOLT" fetch --cache "$T/cache" -q -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "fast-forward: an ordinary step forward is fine" 0 "verified"
policy rot "[$(k2)]" '{}' "{\"keys\": [\"$K2\"]}"
rt unit "$T/r" hello 0.1.0 $native "$T/k2.key"; rt snapshot "$T/r" "$T/k2.key" 2
run "$MOLT" fetch --cache "$T/cache" -q -r "$T/r" --policy "$T/rot.json" hello@0.1.0
expect "rotating the snapshot keys resets the remembered version (TUF's recovery)" 0 "verified"

# --- malicious mirror -------------------------------------------------------------
fresh; cp -r "$reg" "$T/bad"
a=$(python3 -c "import json;i=json.load(open('$reg/index/hello.json'));m=json.load(open('$reg/blobs/sha256/'+i['versions']['0.1.0']['$native']['manifest'][7:]));print(m['artifact']['digest'][7:])")
printf 'X' | dd of="$T/bad/blobs/sha256/$a" bs=1 seek=200 conv=notrunc 2>/dev/null
m -r "file://$T/nowhere" --mirror "$T/bad" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "mirror: tampered bytes from a mirror are refused, naming the mirror" 1 "file://$T/bad/blobs/sha256/$a: digest mismatch"
m -r "$T/bad" --mirror "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "mirror: a bad primary falls back to a mirror with the signed bytes" 0 "verified"
[ "$(sha256sum < "$T/cache/blobs/sha256/$a" | cut -d' ' -f1)" = "$a" ] && ok "mirror: exactly the signed bytes are cached" || fail "mirror: cached bytes differ"
rm -rf "$T/cache"; m -r "file://$T/nowhere" --mirror "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "mirror: a good mirror alone gives the same verified unit" 0 "manifest sha256:$(python3 -c "import json;print(json.load(open('$reg/index/hello.json'))['versions']['0.1.0']['$native']['manifest'][7:])")"

# --- arbitrary installation ------------------------------------------------------
fresh; cp "$T/r/index/hello.json" "$T/r/index/evil.json"
m -r "$T/r" -k "$FIXTURE/dev.pub" evil@0.1.0
expect "arbitrary installation: an index no signed snapshot names is never used" 2 "no unit named 'evil'"
mkdir -p "$T/cache/blobs/sha256"; printf 'planted' > "$T/cache/blobs/sha256/$a"
m -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "arbitrary installation: a planted cache blob is re-verified, not used" 0 "verified"
[ "$(sha256sum < "$T/cache/blobs/sha256/$a" | cut -d' ' -f1)" = "$a" ] && ok "the planted blob was replaced by the signed bytes" || fail "planted bytes survived"

# --- extraneous dependencies -------------------------------------------------------
fresh; rt unit "$T/r" hello 0.1.0 $native "$dev" '{"depends": ["evil@6.6.6"]}'; rt snapshot "$T/r" "$dev"
m -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "extraneous dependencies: a dependency is reported, not fetched" 0 "hello@0.1.0 depends on evil@6.6.6, which was not asked for: not fetched"
[ ! -e "$T/cache/blobs/sha256" ] || ! grep -rq evil "$T/cache/state" 2>/dev/null && ok "nothing was fetched for evil" || fail "evil fetched"

# --- yanked -------------------------------------------------------------------------
fresh; rt set "$T/r" hello 0.1.0 $native yanked true; rt snapshot "$T/r" "$dev"
m -r "$T/r" -k "$FIXTURE/dev.pub" hello@0.1.0
expect "yanked: refused by default" 2 "was yanked from"
m -r "$T/r" -k "$FIXTURE/dev.pub" --allow-yanked hello@0.1.0
expect "yanked: fetched with --allow-yanked (a lockfile pins it)" 0 "verified"

finish
