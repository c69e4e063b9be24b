#!/usr/bin/env bash
# Unit bundles end to end: `mrecipe pack` from the fixture registry, then
# `molt verify --bundle` and `molt call --bundle` offline (the registry
# moved away), and every refusal on a bundle rewritten with Python's tarfile.
# With MRECIPE_ASAN/MOLT_ASAN set, runs again through the ASan+UBSan build.
. "$(dirname "$0")/lib.sh"

key=$FIXTURE/dev.pub
native=x86_64-linux-gnu
cp -r "$FIXTURE/registry" "$T/reg"
MRECIPE_KDF_FAST=1 "$MRECIPE" keygen --unencrypted -s "$T/other.key" -p "$T/other.pub" >/dev/null

# retar IN OUT MODE: rewrites a bundle. MODE: tamper (flip a byte of the
# largest blob, keeping its name), dotdot, abs, symlink, hardlink, device,
# dir, extra (an unreferenced blob named by its digest), unknown, big.
retar() {
  python3 - "$@" <<'EOF'
import hashlib, io, sys, tarfile
src, dst, mode = sys.argv[1:4]
with tarfile.open(src) as t:
    items = [(m, t.extractfile(m).read()) for m in t.getmembers()]
out = tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT)
def add(name, data=b"", type=tarfile.REGTYPE, **kw):
    m = tarfile.TarInfo(name); m.type = type; m.size = len(data) if type == tarfile.REGTYPE else 0
    for k, v in kw.items(): setattr(m, k, v)
    out.addfile(m, io.BytesIO(data) if type == tarfile.REGTYPE else None)
big = max(items, key=lambda i: len(i[1]))[0].name
for m, data in items:
    if mode == "tamper" and m.name == big:
        data = bytearray(data); data[len(data) // 2] ^= 0xFF; data = bytes(data)
    add(m.name, data)
if mode == "dotdot": add("../x", b"x")
if mode == "abs": add("/tmp/x", b"x")
if mode == "symlink": add("blobs/sha256/" + "0" * 64, type=tarfile.SYMTYPE, linkname="/etc/passwd")
if mode == "hardlink": add("blobs/sha256/" + "0" * 64, type=tarfile.LNKTYPE, linkname="bundle.json")
if mode == "device": add("blobs/sha256/" + "0" * 64, type=tarfile.CHRTYPE, devmajor=1, devminor=3)
if mode == "dir": add("blobs/", type=tarfile.DIRTYPE)
if mode == "extra": add("blobs/sha256/" + hashlib.sha256(b"extra").hexdigest(), b"extra")
if mode == "unknown": add("README", b"hi")
if mode == "big":
    m = tarfile.TarInfo("blobs/sha256/" + "1" * 64); m.size = (256 << 20) + 1
    out.addfile(m, io.BytesIO(b"\0" * m.size))
out.close()
print(big.split("/")[-1])
EOF
}

suite() { # runs every check with $1 = mrecipe, $2 = molt, $3 = label
  local mr=$1 mo=$2 l=$3 b=$T/hello.molt hex
  run "$mr" pack -r "$T/reg" -k "$key" hello@0.1.0 -o "$b"
  expect "$l pack hello@0.1.0" 0 "packed hello@0.1.0 ($native) into $b"
  run "$mr" pack -r "$T/reg" -k "$key" hello@0.1.0 -o "$T/again.molt"
  cmp -s "$b" "$T/again.molt" && ok "$l packing twice gives the same bytes" || fail "$l pack is not deterministic"
  [ "$(tar tf "$b" | sort | tr '\n' ' ')" = "$(tar tf "$b" | tr '\n' ' ')" ] && ok "$l entries are sorted" ||
    fail "$l entries are not sorted: $(tar tf "$b")"
  run "$mr" pack -r "$T/reg" -t wasm32-wasi -k "$key" hello@0.1.0 -o "$T/wasm.molt"
  expect "$l pack the wasm build" 0 "packed hello@0.1.0 (wasm32-wasi)"
  run "$mr" pack -r "$T/reg" -k "$key" nosuch@0.1.0 -o "$T/x.molt"
  expect "$l pack of an unknown unit is exit 2" 2 "no unit named 'nosuch'"
  run "$mr" pack -r "$T/reg" -k "$key" hello@9.9.9 -o "$T/x.molt"
  expect "$l pack of an unknown version is exit 2" 2 "hello@9.9.9 is not in registry"
  run "$mr" pack -r "$T/reg" -k "$T/other.pub" hello@0.1.0 -o "$T/x.molt"
  expect "$l pack re-verifies the signature" 1 "signature"
  [ ! -e "$T/x.molt" ] && ok "$l a failed pack writes nothing" || fail "$l a failed pack left $T/x.molt"
  run "$mr" pack -r "$T/reg" hello@0.1.0
  expect "$l pack without -o is a usage error" 2 "pack needs --registry DIR, -o FILE"

  # Offline from here: the registry is gone.
  mv "$T/reg" "$T/reg.away"
  run "$mo" verify --bundle "$b" -k "$key"
  expect "$l verify --bundle offline" 0 "ok: hello@0.1.0 for $native in $b"
  run "$mo" call --bundle "$b" -k "$key" greet '{"name":"Ada"}'
  expect "$l call --bundle offline" 0 '{"greeting":"Hello, Ada!"}'
  [ "$out" = '{"greeting":"Hello, Ada!"}' ] && ok "$l call prints exactly the result" || fail "$l call printed: $out"
  MOLT_TRUSTED_KEYS=$key run "$mo" call --bundle "$b" greet '{"name":"Grace"}'
  expect "$l keys from \$MOLT_TRUSTED_KEYS" 0 '{"greeting":"Hello, Grace!"}'
  run env TMPDIR="$T/nowhere" "$mo" call --bundle "$b" -k "$key" greet '{"name":"Ada"}'
  expect "$l an unusable TMPDIR is exit 3" 3 "creating a private folder $T/nowhere/molt-bundle-"
  rm -rf "$T/tmp"; mkdir -p "$T/tmp"
  run env TMPDIR="$T/tmp" "$mo" call --bundle "$b" -k "$key" greet '{"name":"Ada"}'
  expect "$l call with TMPDIR set" 0 "Hello, Ada!"
  [ -z "$(ls -A "$T/tmp")" ] && ok "$l the private folder is removed" || fail "$l left behind: $(ls -A "$T/tmp")"
  run "$mo" call --bundle "$b" -k "$key" greet '{"name":""}'
  expect "$l a validation error is exit 2" 2 "expected a non-empty name"
  run "$mo" verify --bundle "$T/wasm.molt" -k "$key"
  expect "$l verify accepts any target" 0 "for wasm32-wasi"
  run "$mo" call --bundle "$T/wasm.molt" -k "$key" greet '{"name":"Ada"}'
  expect "$l call refuses another target" 1 "is built for wasm32-wasi; this host loads $native"
  run "$mo" verify --bundle "$b" -k "$T/other.pub"
  expect "$l wrong key is exit 1" 1 "signature"
  run "$mo" verify --bundle "$b"
  expect "$l no key is exit 2" 2 "--bundle needs trusted keys"
  run "$mo" verify --bundle "$T/none.molt" -k "$key"
  expect "$l a missing bundle is exit 2" 2 "bundle $T/none.molt"

  hex=$(retar "$b" "$T/t.molt" tamper)
  run "$mo" verify --bundle "$T/t.molt" -k "$key"
  expect "$l tampered artifact is exit 1 naming the digest" 1 "blobs/sha256/$hex: digest mismatch: the name says sha256:$hex"
  run "$mo" call --bundle "$T/t.molt" -k "$key" greet '{"name":"Ada"}'
  expect "$l and is never loaded" 1 "digest mismatch"
  for mode in dotdot abs symlink hardlink device dir extra unknown; do
    retar "$b" "$T/t.molt" $mode >/dev/null
    run "$mo" verify --bundle "$T/t.molt" -k "$key"
    expect "$l $mode entry is refused" 1 "refusing"
  done
  retar "$b" "$T/t.molt" big >/dev/null
  run "$mo" verify --bundle "$T/t.molt" -k "$key"
  expect "$l an entry over the cap is refused before it is read" 1 "over the 268435456-byte cap"
  rm -f "$T/t.molt"
  for n in 100 1000 3000 $(($(stat -c %s "$b") - 2000)); do
    head -c "$n" "$b" >"$T/t.molt"
    run "$mo" verify --bundle "$T/t.molt" -k "$key"
    [ "$code" = 1 ] || [ "$code" = 2 ] && printf '%s' "$err" | grep -qE "truncated|cut short|bundle.json is missing" &&
      ok "$l truncated at $n bytes: exit $code" || fail "$l truncated at $n bytes: exit $code: $err"
  done
  : >"$T/t.molt"
  run "$mo" verify --bundle "$T/t.molt" -k "$key"
  [ "$code" = 2 ] && ok "$l an empty file is exit 2" || fail "$l empty file: exit $code: $err"
  mv "$T/reg.away" "$T/reg"
}

suite "$MRECIPE" "$MOLT" ""
if [ -n "${MRECIPE_ASAN:-}" ] && [ -n "${MOLT_ASAN:-}" ] && [ -x "$MRECIPE_ASAN" ] && [ -x "$MOLT_ASAN" ]; then
  suite "$MRECIPE_ASAN" "$MOLT_ASAN" "(asan)"
fi
finish
