#!/usr/bin/env bash
# The explorer unit (docs/explorer.md), natively: `molt call` against the
# fixture registry (signed, verified) with `run`, and a small libmolt driver
# (recipes/explorer/tests/xdriver.c) for what one command line can't carry:
# handles across calls, and vega-datasets' flights-200k (10 MB of JSON, an
# Arrow file). Expected values are computed independently with python3.
. "$(dirname "$0")/lib.sh"

V=$here/node_modules/vega-datasets/data
REG=(-r "$FIXTURE/registry" -k "$FIXTURE/dev.pub")
call() { run "$MOLT" call "${REG[@]}" "$@" explorer@0.1.0; }
mcall() { local fn=$1 json=$2; shift 2; run "$MOLT" call "${REG[@]}" "$@" explorer@0.1.0 "$fn" "$json"; }

# --- molt call: run, one request, no handles --------------------------------
mcall run '{"dataset":{"format":"csv","text":"a,b\n1,x\n2,y\n3,x\n"},"steps":[{"op":"filter","where":{"nodes":[{"op":"ge","column":"a","int":2}]}},{"op":"aggregate","by":["b"],"aggs":[{"op":"sum","column":"a"}]}]}'
expect "run: csv, filter, aggregate" 0 '"data":[{"string":["y","x"]},{"int":[2,3]}]'
mcall run '{"dataset":{"format":"csv","text":"a,b\n1,\"x\n"},"steps":[]}'
expect "bad CSV: exit 2 (validation) naming the line and what is missing" 2 \
  'validation error 1 at dataset.text: CSV: the quoted field that starts on line 2 (byte 6) is never closed: expected a closing "'
mcall run '{"dataset":{"format":"json","text":"[{\"a\":1},{\"a\":2}"},"steps":[]}'
expect "bad JSON: exit 2 naming where" 2 "JSON row 1: expected ',' or ']' after the object, found the end of the text at byte 16"
mcall run '{"dataset":{"format":"json","text":"[{\"a\":1},{\"a\":2,}]"},"steps":[]}'
expect "invalid JSON in a row: the byte and the row" 2 "JSON row 1: invalid JSON at byte"
mcall run '{"dataset":{"format":"csv","text":"a\n1\nx\ny\n","schema":[{"name":"a","type":"int"}]},"steps":[]}'
expect "validation: the first error and the count" 2 \
  "the dataset does not match its schema: row 1, column 'a': expected int, found \"x\" (2 errors in all)"
mcall run '{"dataset":{"format":"csv","text":"a\n1\n"},"steps":[{"op":"filter","where":{"nodes":[{"op":"col","column":"a"},{"op":"gt","args":[0,5]}]}}]}'
expect "a bad predicate names the node" 2 "at steps[0].where.nodes[1].args[1]: expected the index of an earlier node (0 to 0), found 5"

# --- flights-200k through the driver ----------------------------------------
cc -O1 -I"$here/runtime/include" -o "$T/xdriver" "$here/recipes/explorer/tests/xdriver.c" \
  -L"$(dirname "$MOLT")" -lmolt -Wl,-rpath,"$(dirname "$MOLT")" 2>"$T/cc.err" &&
  ok "the driver builds against libmolt" || fail "xdriver: $(cat "$T/cc.err")"
OUT=${EXPLORER_OUT:-$FIXTURE/out}
U=$OUT/native/explorer-0.1.0
drive() { "$T/xdriver" "$U/libexplorer.so" "$U/manifest.json" "$here/schemas" "$@"; }

python3 - "$V" "$T" <<'PY'
import json, sys
v, t = sys.argv[1], sys.argv[2]
rows = json.load(open(v + '/flights-200k.json'))
json.dump({"format": "json", "text": open(v + '/flights-200k.json').read()}, open(t + '/json.req', 'w'))
g = {}
for r in rows:
    e = g.setdefault(r['distance'], [0, 0])
    e[0] += 1; e[1] += r['delay']
first = list(dict.fromkeys(r['distance'] for r in rows))
srt = sorted(range(len(rows)), key=lambda i: rows[i]['distance'])[1000:1003]
with open(t + '/expect', 'w') as f:
    f.write('%d\n' % sum(1 for r in rows if r['delay'] > 15))
    f.write('%d\n' % len(g))
    f.write(json.dumps([g[k][0] for k in first[:5]], separators=(',', ':')) + '\n')
    f.write('%d\n' % sum(r['delay'] * 2 + 1 for r in rows))
    f.write(json.dumps([rows[i]['delay'] for i in srt], separators=(',', ':')) + '\n')
PY
mapfile -t E < "$T/expect"
cat > "$T/script" <<S
loadbin arrow $V/flights-200k.arrow
filter {"handle":\$H,"where":{"nodes":[{"op":"gt","column":"delay","int":15}]},"keep":false}
aggregate {"handle":\$H,"by":["distance"],"aggs":[{"op":"count"},{"op":"mean","column":"delay"}],"format":"msgpack"}
run {"handle":\$H,"steps":[{"op":"map","columns":[{"name":"x","expr":{"nodes":[{"op":"col","column":"delay"},{"op":"mul","args":[0],"int":2},{"op":"add","args":[1],"int":1}]}}]},{"op":"aggregate","aggs":[{"op":"sum","column":"x"}]}]}
paginate {"handle":\$H,"sort":[{"column":"distance"}],"offset":1000,"limit":3,"columns":["delay"],"format":"msgpack"}
drop {"handle":\$H}
describe {"handle":\$H}
load @$T/json.req
filter {"handle":\$H,"where":{"nodes":[{"op":"gt","column":"delay","int":15}]}}
describe {"handle":\$H}
S
drive < "$T/script" > "$T/res" 2>"$T/res.err"
mapfile -t R < "$T/res"
grep -q '"rows":200000,"columns":\[{"name":"delay","type":"int","nullable":false},{"name":"distance","type":"int","nullable":false},{"name":"time","type":"float","nullable":false}\]' <<<"${R[0]:-}" &&
  ok "Arrow file (Int16, Int16, Float32) loads: 200000 rows, widened types" || fail "arrow load: ${R[0]:-} $(cat "$T/res.err")"
[[ "${R[1]:-}" == "{\"handle\":0,\"rows\":${E[0]}}" ]] && ok "filter delay > 15 counts ${E[0]} (python agrees)" || fail "filter: ${R[1]:-}, expected ${E[0]}"
grep -q "\"total\":${E[1]},\"rows\":${E[1]}," <<<"${R[2]:-}" && grep -qF "{\"int\":${E[2]%]}" <<<"${R[2]:-}" &&
  ok "group by distance: ${E[1]} groups, counts in first-seen order" || fail "aggregate: ${R[2]:0:300}; expected ${E[1]} ${E[2]}"
grep -qF "\"data\":[{\"int\":[${E[3]}]}]" <<<"${R[3]:-}" && ok "map delay*2+1, sum = ${E[3]}" || fail "map sum: ${R[3]:-}, expected ${E[3]}"
grep -qF "\"total\":200000,\"rows\":3" <<<"${R[4]:-}" && grep -qF "{\"int\":${E[4]}}" <<<"${R[4]:-}" &&
  ok "stable sort by distance, rows 1000..1002" || fail "paginate: ${R[4]:-}, expected ${E[4]}"
grep -q '"open":0' <<<"${R[5]:-}" && ok "drop" || fail "drop: ${R[5]:-}"
grep -q "error: explorer.describe: validation error 1 at handle: handle [0-9]* is not open (dropped, or never made by this instance)" <<<"${R[6]:-}" &&
  ok "a stale handle is refused, naming it" || fail "stale handle: ${R[6]:-}"
grep -q '"rows":200000,' <<<"${R[7]:-}" && grep -q '"error_count":0' <<<"${R[7]:-}" && ok "flights-200k.json (10 MB) loads" || fail "json load: ${R[7]:0:300}"
grep -q "\"rows\":${E[0]}}" <<<"${R[8]:-}" && ok "... and filters to the same ${E[0]} rows as the Arrow file" || fail "json filter: ${R[8]:-}"
grep -q "\"rows\":${E[0]}," <<<"${R[9]:-}" && ok "the filtered handle lives on across calls" || fail "describe: ${R[9]:-}"

# --- cancel: a long load stopped by the host's timeout ------------------------
start=$(date +%s%N)
printf 'load @%s\n' "$T/json.req" | drive 30 1000 > "$T/cancel" 2>&1
ms=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "runtime error 5" "$T/cancel" && ok "a 30 ms timeout cancels a long load: runtime error 5" || fail "cancel: $(cat "$T/cancel")"
[ "$ms" -lt 5000 ] && ok "... promptly (${ms} ms in all, incl. reading 10 MB)" || fail "cancel took ${ms} ms"
big=$(python3 -c 'print("a,b\\n" + "".join("%d,x%d\\n" % (i, i % 7) for i in range(11000)))')
mcall run "{\"dataset\":{\"format\":\"csv\",\"text\":\"$big\"},\"steps\":[{\"op\":\"paginate\",\"sort\":[{\"column\":\"b\"},{\"column\":\"a\",\"desc\":true}],\"offset\":5000,\"limit\":3}]}" --step-budget 1
expect "molt call: a sliced sort completes with a budget of 1 unit a poll" 0 '"total":11000,"rows":3,'
expect "... b ascending, then a descending, from row 5000" 0 '"data":[{"int":[9005,8998,8991]}'
mcall run "{\"dataset\":{\"format\":\"csv\",\"text\":\"$big\"},\"steps\":[{\"op\":\"paginate\",\"sort\":[{\"column\":\"b\"},{\"column\":\"a\",\"desc\":true}],\"offset\":5000,\"limit\":3}]}" --step-budget 1 --timeout-ms 1
expect "molt call --timeout-ms: the host cancels it, runtime error 5" 1 "explorer.run: runtime error 5: no result after 1 ms"

finish
