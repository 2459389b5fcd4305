#!/usr/bin/env bash
# registry_follow_test.sh -- the registry kept by its own process: `serve --no-registry` plus
# `sinkd registry follow` give the same bots as serve's in-process follower; one writer at a
# time (a second follower, a rebuild and serve's own follower are refused while one runs, and a
# report's --catch-up steps aside); SIGTERM stops it with everything durable applied; the page
# cache size given on the command line is the one SQLite uses, and out-of-range sizes are refused.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 1 --no-registry
"$SINKD_BINARY" registry follow --state "$state" --cache-mib 0 2>"$E2E_DIR/bad.log" &&
    fail "registry follow accepted a 0 MiB cache"
grep -q -- "--cache-mib: 0 is out of range" "$E2E_DIR/bad.log" ||
    fail "no range error for --cache-mib: $(cat "$E2E_DIR/bad.log")"
"$SINKD_BINARY" registry follow --state "$state" --cache-mib 5 2>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
sleep 0.5
kill -0 "$follower" || fail "registry follow exited: $(cat "$E2E_DIR/follow.log")"
grep -q "(page cache 5 MiB)" "$E2E_DIR/follow.log" ||
    fail "follower does not use the 5 MiB cache asked for: $(cat "$E2E_DIR/follow.log")"

"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/second.log" &&
    fail "a second follower ran beside the first"
grep -q "registry.lock is held by pid $follower (sinkd registry follow)" "$E2E_DIR/second.log" ||
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
grep -q "(page cache 2 MiB)" "$E2E_DIR/follow2.log" ||
    fail "the default cache is not 2 MiB: $(cat "$E2E_DIR/follow2.log")"

# serve's in-process follower takes --registry-cache-mib, and refuses what is out of range
"$SINKD_BINARY" serve "${as_root[@]}" --state "$state" --listen "127.0.0.1:$port2" \
    --registry-cache-mib 65537 2>"$E2E_DIR/serve3.log" && fail "serve accepted a 65537 MiB cache"
grep -q -- "--registry-cache-mib: 65537 is out of range" "$E2E_DIR/serve3.log" ||
    fail "no range error for --registry-cache-mib: $(cat "$E2E_DIR/serve3.log")"
start_server "$state" "$port2" --workers 1 --registry-cache-mib 3
stop_server
grep -q "registry: following the log into .* (page cache 3 MiB)" "$E2E_DIR/serve.log" ||
    fail "serve's follower does not use the 3 MiB cache asked for: $(grep registry "$E2E_DIR/serve.log")"

"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/summary.json" ||
    fail "report failed"
total=$("$SINKD_BINARY" contacts --state "$state" --summary)
python3 - "$E2E_DIR/swarm.json" "$E2E_DIR/summary.json" <<PY || fail "registry and log disagree"
import json, sys
swarm = json.load(open(sys.argv[1]))
rep = json.load(open(sys.argv[2]))
log = json.loads('''$total''')
bots = rep.get("bots", rep.get("unique_bots"))
# A passive server counts every bot by its address: registry, log and swarm agree on how many.
assert bots == swarm["bots_replied"] == log["unique_bots"], (bots, swarm["bots_replied"], log["unique_bots"])
assert rep["contacts"] == log["contacts"], (rep["contacts"], log["contacts"])
PY
echo "ok: registry follow applied ${total:0:80}... one writer at a time"
