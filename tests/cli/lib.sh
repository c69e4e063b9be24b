# Shared helpers for the shell tests: source it, call ok/fail/check_*, end
# with `finish`, which prints "N passed, M failed" and sets the exit status.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MRECIPE=${MRECIPE:-$here/build/mrecipe/mrecipe}
MOLT=${MOLT:-$here/build/runtime/molt}
FIXTURE=${FIXTURE:-$here/build/test}
[ -d "$FIXTURE/registry" ] || "$here/scripts/fixture" "$FIXTURE" || { echo "cannot make the fixture"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"; [ -n "${cleanup:-}" ] && eval "$cleanup"' EXIT
npass=0 nfail=0
out="" err="" code=0

ok() { npass=$((npass + 1)); echo "ok - $*"; }
fail() { nfail=$((nfail + 1)); echo "not ok - $*"; }

# run CMD...: runs it, keeping stdout, stderr and the exit status.
run() {
  "$@" >"$T/out" 2>"$T/err"
  code=$?
  out=$(cat "$T/out")
  err=$(cat "$T/err")
}

# expect NAME STATUS [TEXT]: the last run exited STATUS and said TEXT
# (on stdout or stderr, as a fixed string).
expect() {
  local name=$1 want=$2 text=${3:-}
  if [ "$code" != "$want" ]; then
    fail "$name: exit $code, expected $want; stderr: ${err:0:400}"
  elif [ -n "$text" ] && ! printf '%s\n%s' "$out" "$err" | grep -qF -- "$text"; then
    fail "$name: output lacks '$text'; got: ${out:0:300} ${err:0:400}"
  else
    ok "$name"
  fi
}

finish() {
  echo "$npass passed, $nfail failed"
  [ "$nfail" = 0 ]
}
