#!/usr/bin/env bash
# registry_postgres_test.sh -- the multi-node registry on a real PostgreSQL server, which
# tests/pg/with_postgres.sh starts for this test alone: two nodes, each with its own state
# directory, key and log, serve the same swarm of bots and follow their own logs into one
# database. The shared registry counts each bot once and every contact of both nodes; each node's
# applied index is its own log's size; `sinkd registry rebuild` of both logs into a second
# database gives the same report; a registry that cannot be reached stops serve and report with
# a message that says so (and never echoes the URL, which may hold a password).
if [ -z "${SINKD_PG_URL:-}" ]; then
    exec bash "$(dirname "$0")/../pg/with_postgres.sh" bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"

url=$SINKD_PG_URL
port_a=$(free_port)
start_server "$E2E_DIR/a" "$port_a" --workers 1 --node node-a --registry "$url"
pid_a=$SERVER_PID
port_b=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
start_server "$E2E_DIR/b" "$port_b" --workers 1 --node node-b --registry "$url"
pid_b=$SERVER_PID
grep -q "following the log into the PostgreSQL registry given" "$E2E_DIR/serve.log" ||
    fail "serve does not say it follows into PostgreSQL"

# The same 120 bots (same seed) call both seized addresses at once.
for port in "$port_a" "$port_b"; do
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 120 --seed 7 --duration 4 \
        --concurrency 120 --source-net 127.0.1.0/24 --heartbeat-ms 500 \
        --json "$E2E_DIR/swarm-$port.json" >"$E2E_DIR/swarm-$port.txt" &
    E2E_PIDS+=("$!")
done
wait "${E2E_PIDS[@]: -2}" || fail "a swarm exited non-zero"
for pid in "$pid_a" "$pid_b"; do
    kill -TERM "$pid"
    wait "$pid" || fail "a node exited non-zero after SIGTERM"
done

# Each node's stop line: its follower applied its whole log.
python3 - "$E2E_DIR/serve.log" <<'PY' || fail "a follower did not apply its whole log"
import re, sys
applied = [int(m) for m in re.findall(r"registry: \d+ records .* applied up to (\d+)", open(sys.argv[1]).read())]
assert len(applied) == 2 and min(applied) > 100, applied
PY

"$SINKD_BINARY" report --registry "$url" --format summary-json >"$E2E_DIR/live.json" \
    2>"$E2E_DIR/report.err" || fail "report from PostgreSQL failed: $(cat "$E2E_DIR/report.err")"
for node in a b; do
    "$SINKD_BINARY" report --state "$E2E_DIR/$node" --catch-up --registry "$E2E_DIR/$node.db" \
        --format summary-json >"$E2E_DIR/$node.json" || fail "SQLite report of node $node failed"
done
python3 - "$E2E_DIR/live.json" "$E2E_DIR/a.json" "$E2E_DIR/b.json" <<'PY' ||
import json, sys
live, a, b = (json.load(open(p)) for p in sys.argv[1:4])
t, ta, tb = live, a, b
assert ta["unique_bots"] >= 100 and tb["unique_bots"] >= 100, (ta, tb)
# One bot called both nodes: counted once; every contact of both nodes counted.
assert t["unique_bots"] == max(ta["unique_bots"], tb["unique_bots"]) <= 120
# (The per-day curve counts every contact; "contacts" counts the bots' own, where a hello from an
# address already identified, by either node, counts for the address only: docs/registry.md.)
day = lambda s: sum(d["contacts"] for d in s["days"])
assert day(t) == day(ta) + day(tb) > 1000, (day(t), day(ta), day(tb))
assert t["unique_ips"] == max(ta["unique_ips"], tb["unique_ips"])
PY
    fail "the shared registry's totals are not the union of the nodes': $(cat "$E2E_DIR/live.json")"

# Rebuilt from both logs into a fresh database (all of a's log, then all of b's): the same bot
# rows, byte for byte, and the same summary. One figure may differ: a bot's own contact count
# leaves out a hello from an address that was already identified when the hello was applied
# (docs/registry.md), and which node's record is applied first differs between the live
# followers and the rebuild. The per-day curve counts every contact and must match.
"$SINKD_PG_BIN/createdb" -h "$SINKD_PG_HOST" -p "$SINKD_PG_PORT" -U sinkd rebuilt
url2="postgresql:///rebuilt?host=$SINKD_PG_HOST&port=$SINKD_PG_PORT&user=sinkd"
"$SINKD_BINARY" registry rebuild --registry "$url2" --state "$E2E_DIR/a" --state "$E2E_DIR/b" \
    >"$E2E_DIR/rebuild.txt" 2>&1 || fail "rebuild of both logs failed: $(cat "$E2E_DIR/rebuild.txt")"
grep -q "from 2 log(s)" "$E2E_DIR/rebuild.txt" || fail "rebuild: $(cat "$E2E_DIR/rebuild.txt")"
grep -q "$SINKD_PG_HOST" "$E2E_DIR/rebuild.txt" && fail "rebuild echoed the registry URL"
for fmt in csv summary-json; do
    "$SINKD_BINARY" report --registry "$url" --format "$fmt" --no-as-names >"$E2E_DIR/live.$fmt"
    "$SINKD_BINARY" report --registry "$url2" --format "$fmt" --no-as-names >"$E2E_DIR/rebuilt.$fmt"
done
cmp -s "$E2E_DIR/live.csv" "$E2E_DIR/rebuilt.csv" ||
    fail "rebuilt CSV report differs: $(diff "$E2E_DIR/live.csv" "$E2E_DIR/rebuilt.csv" | head -5)"
python3 - "$E2E_DIR/live.summary-json" "$E2E_DIR/rebuilt.summary-json" <<'PY' ||
import json, sys
live, rebuilt = (json.load(open(p)) for p in sys.argv[1:3])
assert abs(live.pop("contacts") - rebuilt.pop("contacts")) <= 120
assert live == rebuilt
PY
    fail "rebuilt summary differs: $(diff "$E2E_DIR/live.summary-json" "$E2E_DIR/rebuilt.summary-json" | head -5)"
[ "$(wc -l <"$E2E_DIR/live.csv")" -gt 100 ] || fail "the CSV report has too few rows"
# Several logs need a shared registry: an SQLite file holds one.
"$SINKD_BINARY" registry rebuild --state "$E2E_DIR/a" --state "$E2E_DIR/b" 2>"$E2E_DIR/two.err" &&
    fail "rebuild of two logs into one SQLite file was accepted"
grep -q "several are for rebuilding a shared PostgreSQL registry" "$E2E_DIR/two.err" ||
    fail "no reason given: $(cat "$E2E_DIR/two.err")"

# A registry that cannot be reached: serve does not start, report fails; neither echoes the URL.
bad="postgresql:///nosuchdb?host=$SINKD_PG_HOST&port=$SINKD_PG_PORT&user=sinkd&password=s3cret"
port_c=$(free_port)
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
"$SINKD_BINARY" serve "${as_root[@]}" --state "$E2E_DIR/c" --listen "127.0.0.1:$port_c" \
    --registry "$bad" 2>"$E2E_DIR/bad-serve.log" && fail "serve started with an unreachable registry"
grep -q 'connecting to PostgreSQL: .*"nosuchdb" does not exist' "$E2E_DIR/bad-serve.log" ||
    fail "serve did not say why: $(cat "$E2E_DIR/bad-serve.log")"
"$SINKD_BINARY" report --registry "$bad" --format summary 2>"$E2E_DIR/bad-report.log" &&
    fail "report ran on an unreachable registry"
grep -q "connecting to PostgreSQL" "$E2E_DIR/bad-report.log" ||
    fail "report did not say why: $(cat "$E2E_DIR/bad-report.log")"
grep -q s3cret "$E2E_DIR/bad-serve.log" "$E2E_DIR/bad-report.log" && fail "a password was echoed"
echo "ok: two nodes into one PostgreSQL registry"
