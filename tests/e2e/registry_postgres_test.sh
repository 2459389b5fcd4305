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
start_server "$E2E_DIR/a" "$port_a" --workers 1 --node node-a --registry "$url" --heartbeat-interval 1
pid_a=$SERVER_PID
port_b=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
start_server "$E2E_DIR/b" "$port_b" --workers 1 --node node-b --registry "$url" --heartbeat-interval 1
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
# Halfway through, the database drops both followers' connections (a restart, a network cut):
# each node says so at once and goes on serving; nothing it logged is lost to the registry.
sleep 2
psql "$url" -Atc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = 'sinkd' AND pid <> pg_backend_pid()" >"$E2E_DIR/killed.txt"
[ "$(cat "$E2E_DIR/killed.txt")" -ge 2 ] || fail "no follower connection to cut: $(cat "$E2E_DIR/killed.txt")"
wait "${E2E_PIDS[@]: -2}" || fail "a swarm exited non-zero after the registry went away"
[ "$(grep -c "registry follower stopped: .*serving and logging go on" "$E2E_DIR/serve.log")" = 2 ] ||
    fail "the nodes did not both say their follower stopped"
for port in "$port_a" "$port_b"; do
    python3 - "$E2E_DIR/swarm-$port.json" <<'PY' || fail "bots went unanswered after the cut"
import json, sys
s = json.load(open(sys.argv[1]))
e = s["errors"]
# Every bot was answered; a contact still in flight when the swarm's time ran out (at most one
# per bot) has no reply and is no error.
assert s["bots_replied"] == s["bots_run"] == 120, s
assert s["replies_received"] > 300 and 0 <= s["contacts_sent"] - s["replies_received"] <= 120, s
assert e["reset"] == 0 and e["timeout"] == 0 and e["protocol"] == 0, s
PY
done
for pid in "$pid_a" "$pid_b"; do
    kill -TERM "$pid"
    wait "$pid" || fail "a node exited non-zero after SIGTERM"
done
# A registry follower of its own (beside serve --no-registry) that loses its connection exits
# non-zero, saying why, when it next has records to apply.
start_server "$E2E_DIR/a" "$port_a" --workers 1 --node node-a --no-registry
"$SINKD_BINARY" registry follow --state "$E2E_DIR/a" --registry "$url" 2>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
for _ in $(seq 1 50); do
    grep -q "applying" "$E2E_DIR/follow.log" && break
    sleep 0.1
done
psql "$url" -Atc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = 'sinkd' AND pid <> pg_backend_pid()" >/dev/null
"$SINKD_BINARY" swarm --target "127.0.0.1:$port_a" --bots 20 --seed 7 --duration 1 \
    --concurrency 20 --source-net 127.0.1.0/24 >/dev/null || fail "swarm after the cut failed"
for _ in $(seq 1 100); do
    kill -0 "$follower" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$follower" 2>/dev/null && fail "registry follow went on without its database"
wait "$follower" && fail "registry follow exited 0 after losing its database"
grep -q "connection" "$E2E_DIR/follow.log" || fail "registry follow did not say why: $(cat "$E2E_DIR/follow.log")"
stop_server
# Catching up resumes each log from its own applied index.
for node in a b; do
    "$SINKD_BINARY" report --state "$E2E_DIR/$node" --registry "$url" --catch-up \
        --format summary >/dev/null || fail "catch-up of node $node into PostgreSQL failed"
done

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
    "$SINKD_BINARY" report --justification "$E2E_WHY" --state "$E2E_DIR/a" --registry "$url" --format "$fmt" --no-as-names >"$E2E_DIR/live.$fmt"
    "$SINKD_BINARY" report --justification "$E2E_WHY" --state "$E2E_DIR/a" --registry "$url2" --format "$fmt" --no-as-names >"$E2E_DIR/rebuilt.$fmt"
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
