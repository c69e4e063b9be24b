#!/usr/bin/env bash
# Crash safety of publishing: a crash (MRECIPE_FAULT=<point> makes mrecipe
# _exit(99) there; or kill -9 at a random moment) at any step leaves a
# registry that verifies and serves what it served before, and a later
# publish completes the job. docs/registry.md lists the points.
. "$(dirname "$0")/lib.sh"

key=$FIXTURE/dev.key pub=$FIXTURE/dev.pub
publish() { "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -s "$key" -r "$@"; }
base=$T/base
publish "$base" hello >/dev/null || { fail "cannot publish the base registry"; finish; exit; }
nunits=$(publish "$T/full" | grep -c '^published ')

# check NAME DIR: the registry after a crash verifies, a client fetches the
# previously published unit, and no partial file sits under a final name.
check() {
  local name=$1 r=$2
  run "$MRECIPE" registry verify -r "$r" -k "$pub"
  err=$(printf '%s\n' "$err" | grep -v '^warning: ')  # orphans and temp files are allowed
  expect "$name: registry verify passes" 0 "$r: ok"
  local bad=""
  for f in "$r"/index/*.json "$r"/snapshot.json "$r"/registry.json; do
    python3 -c "import json,sys;json.load(open(sys.argv[1]))" "$f" 2>/dev/null || bad="$bad $f"
  done
  [ -z "$bad" ] && ok "$name: every metadata file under its final name is whole" || fail "$name: partial:$bad"
  run "$MOLT" fetch -r "$r" --cache "$T/cache-$RANDOM" -k "$pub" -t wasm32-wasi hello@0.1.0
  expect "$name: a client still fetches hello@0.1.0" 0 "verified"
  run publish "$r"
  expect "$name: a normal publish completes the job" 0 "$nunits units in $r"
  run "$MRECIPE" registry verify -r "$r" -k "$pub"
  expect "$name: and the result verifies" 0 "$r: ok"
  local n
  n=$(python3 -c "
import json,sys
s=json.load(open(sys.argv[1]+'/snapshot.json'))
print(sum(len(v) for n in s['indexes'] for v in json.load(open(sys.argv[1]+'/index/'+n+'.json'))['versions'].values()))" "$r")
  [ "$n" = "$nunits" ] && ok "$name: all $nunits units are listed" || fail "$name: $n of $nunits units listed"
}

points="after-lock after-artifact-blob after-schema-blob after-pack-blob after-manifest-blob
after-signature-blob stage:1 stage:2 stage:3 after-journal commit-rename:1
commit-rename:2 commit-rename:3 after-commit after-artifact-blob:3 stage:7"
for p in $points; do
  r=$T/r-${p/:/-}
  cp -r "$base" "$r"
  run env MRECIPE_FAULT="$p" "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -s "$key" -r "$r"
  expect "fault $p: the publish dies with exit 99" 99
  check "fault $p" "$r"
done

# kill -9 at random moments during a publish of everything.
for i in 1 2 3 4 5; do
  r=$T/kill$i
  cp -r "$base" "$r"
  # The binary itself, not a shell function: $! must be mrecipe's pid.
  "$MRECIPE" publish -C "$here" --out "$FIXTURE/out" -s "$key" -r "$r" >/dev/null 2>&1 & victim=$!
  sleep "0.0$((RANDOM % 9))$((RANDOM % 10))"
  kill -9 "$victim" 2>/dev/null
  wait "$victim" 2>/dev/null
  check "kill -9 #$i" "$r"
done
finish
