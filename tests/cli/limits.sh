#!/usr/bin/env bash
# molt call's limits (--timeout-ms, --step-budget, --max-output) and the
# status codes a call can end with, on the countdown unit from the fixture
# registry: a sliced task that stays pending across many polls.
. "$(dirname "$0")/lib.sh"

reg=$FIXTURE/registry key=$FIXTURE/dev.pub
c() { run "$MOLT" call -q --cache "$T/cache" -k "$key" -r "$reg" "$@"; }
ms() { date +%s%3N; }

run "$MOLT" call --help
expect "call --help lists --timeout-ms" 0 "--timeout-ms MS"
expect "... --step-budget" 0 "--step-budget N"
expect "... and --max-output" 0 "--max-output BYTES"

# --- results and slicing ---------------------------------------------------
c countdown@0.1.0 count '{"n":10}'
expect "count 10" 0 '{"sum":55,"polls":1}'
c countdown@0.1.0 count '{"n":200000}'
expect "200000 numbers take 4 polls at the default budget (65536)" 0 '{"sum":20000100000,"polls":4}'
c --step-budget 10 countdown@0.1.0 count '{"n":1000}'
expect "--step-budget 10: 1000 numbers take 100 polls" 0 '{"sum":500500,"polls":100}'
c --step-budget 1 countdown@0.1.0 list '{"n":3}'
expect "--step-budget 1: list writes its result a value per poll" 0 '{"values":[3,2,1]}'
c --envelope-hex countdown@0.1.0 count '{"n":3}'
expect "--envelope-hex prints the unit's exact result envelope" 0 \
  93b8636f756e74646f776e2e636f756e745f726573706f6e736501c40d82a373756d06a5706f6c6c7301

# --- 5 Timeout: the host cancels the task between two polls ------------------
t0=$(ms)
c --timeout-ms 50 countdown@0.1.0 count '{"n":1000000000}'
t1=$(ms)
expect "--timeout-ms 50 on a count to 10^9 is runtime error 5, exit 1" 1 \
  "countdown.count: runtime error 5: no result after"
expect "... saying the limit and that the task was cancelled" 1 "(timeout_ms 50, "
expect "... the host cancelled the task" 1 "the host cancelled the task"
[ $((t1 - t0)) -lt 3000 ] && ok "... and it stops promptly ($((t1 - t0)) ms)" ||
  fail "a 50 ms timeout took $((t1 - t0)) ms"
c --timeout-ms 50 --envelope-hex countdown@0.1.0 count '{"n":1000000000}'
expect "a timeout with --envelope-hex has no envelope to print" 1 "runtime error 5"
c --timeout-ms 60000 countdown@0.1.0 count '{"n":100}'
expect "a call within its timeout returns" 0 '{"sum":5050,"polls":1}'

# --- 6 CapabilityDenied: a result over --max-output ---------------------------
c --max-output 100 countdown@0.1.0 list '{"n":1000}'
expect "a result over --max-output is runtime error 6, exit 1" 1 \
  "countdown.list: runtime error 6: the result envelope is 2658 bytes, over the max_output limit of 100 bytes"
[ -z "$out" ] && ok "... and nothing, not a truncated result, is printed" || fail "printed: ${out:0:100}"
c --max-output 2658 countdown@0.1.0 list '{"n":1000}'
expect "a result of exactly --max-output bytes passes" 0 '{"values":[1000,999,'
c --max-output 41 --envelope-hex countdown@0.1.0 count '{"n":3}'
expect "--max-output applies to --envelope-hex too" 1 "42 bytes, over the max_output limit of 41"

# --- bad limits are usage errors ------------------------------------------------
for bad in 0 -5 abc 12x 99999999999; do
  c --timeout-ms "$bad" countdown@0.1.0 count '{"n":1}'
  expect "--timeout-ms $bad is exit 2" 2 "--timeout-ms: expected a whole number from 1 to 4294967295, found '$bad'"
done
c --step-budget 0 countdown@0.1.0 count '{"n":1}'
expect "--step-budget 0 is exit 2" 2 "--step-budget: expected a whole number from 1 to 4294967295"
c --max-output "" countdown@0.1.0 count '{"n":1}'
expect "an empty --max-output is exit 2" 2 "--max-output: expected a whole number"

# --- 1 InvalidInput, from the unit and from the host's schema check -----------
c countdown@0.1.0 count '{"n":-1}'
expect "a negative n is the unit's validation error 1 at n, exit 2" 2 \
  "countdown.count: validation error 1 at n: expected 0 to 1000000000, found -1"
c countdown@0.1.0 list '{"n":10000001}'
expect "list refuses more than 10^7 values" 2 "validation error 1 at n: expected 0 to 10000000, found 10000001"
c countdown@0.1.0 count '{}'
expect "a request the schema refuses never reaches the unit" 2 "missing required field"
c countdown@0.1.0 count '{"n":"ten"}'
expect "... nor one of the wrong type" 2 "n: expected"
c countdown@0.1.0 countup '{"n":1}'
expect "an unknown function is named" 2 "countdown@0.1.0 has no function 'countup'"

finish
