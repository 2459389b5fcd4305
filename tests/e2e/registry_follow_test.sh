#!/usr/bin/env bash
# registry_follow_test.sh -- the registry kept by its own process: `serve --no-registry` plus
# `sinkd registry follow` give the same bots as serve's in-process follower; one writer at a
# time (a second follower, a rebuild and serve's own follower are refused while one runs, and a
# report's --catch-up steps aside); SIGTERM stops it with everything durable applied.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 1 --no-registry
"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
sleep 0.5
kill -0 "$follower" || fail "registry follow exited: $(cat "$E2E_DIR/follow.log")"

"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/second.log" &&
    fail "a second follower ran beside the first"
grep -q "registry.lock is held by another writer" "$E2E_DIR/second.log" ||
    fail "the second follower did not say why: $(cat "$E2E_DIR/second.log")"
"$SINKD_BINARY" registry rebuild --state "$state" 2>"$E2E_DIR/rebuild.log" &&
    fail "rebuild ran while a follower was applying"

"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 150 --duration 4 --concurrency 150 \
    --source-net 127.0.1.0/24 --heartbeat-ms 500 --json "$E2E_DIR/swarm.json" \
    >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"
"$SINKD_BINARY" report --state "$state" --catch-up --format summary-json \
    >"$E2E_DIR/during.json" 2>"$E2E_DIR/during.err" || fail "report during follow failed"
grep -q "catch-up skipped" "$E2E_DIR/during.err" || fail "report --catch-up did not step aside"
stop_server
sleep 0.3 # the follower's idle poll is 20 ms: let it read the last durable entries
kill -TERM "$follower"
wait "$follower" || fail "registry follow exited non-zero: $(cat "$E2E_DIR/follow.log")"
grep -q "stopped (SIGTERM)" "$E2E_DIR/follow.log" || fail "no stop line: $(cat "$E2E_DIR/follow.log")"

# serve's own follower is refused while the external one holds the lock
"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/follow2.log" &
follower=$!
E2E_PIDS+=("$follower")
sleep 0.5
port2=$(free_port)
rm -f "$E2E_DIR/ready"
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
"$SINKD_BINARY" serve "${as_root[@]}" --state "$state" --listen "127.0.0.1:$port2" \
    2>"$E2E_DIR/serve2.log" && fail "serve with its follower started beside registry follow"
grep -q "registry.lock is held" "$E2E_DIR/serve2.log" || fail "serve did not say why: $(cat "$E2E_DIR/serve2.log")"
kill -TERM "$follower"
wait "$follower" || fail "second registry follow exited non-zero"

"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/summary.json" ||
    fail "report failed"
total=$("$SINKD_BINARY" contacts --state "$state" --summary)
python3 - "$E2E_DIR/swarm.json" "$E2E_DIR/summary.json" <<PY || fail "registry and log disagree"
import json, sys
swarm = json.load(open(sys.argv[1]))
rep = json.load(open(sys.argv[2]))
log = json.loads('''$total''')
bots = rep.get("bots", rep.get("unique_bots"))
assert bots == swarm["bots_answered"] == log["unique_bots"], (bots, swarm["bots_answered"], log["unique_bots"])
PY
echo "ok: registry follow applied ${total:0:80}... one writer at a time"
