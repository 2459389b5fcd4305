#!/usr/bin/env bash
# commit_delay_test.sh -- the group-commit delay: under the same load, a server that pauses
# before each commit when the last one was large commits fewer, larger batches than one that
# never pauses, and loses nothing (every reply the swarm received is a durable contact).
source "$(dirname "$0")/lib.sh"

# run NAME DELAY_US: a 3 s swarm of 400 bots heartbeating every 20 ms; prints "AVG MAX"
run() {
    local name=$1 delay=$2 port
    port=$(free_port)
    : >"$E2E_DIR/serve.log"
    start_server "$E2E_DIR/$name" "$port" --workers 1 --commit-delay-us "$delay" --no-registry
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 400 --duration 3 --concurrency 400 \
        --source-net 127.0.1.0/24 --heartbeat-ms 20 --json "$E2E_DIR/$name.json" \
        >"$E2E_DIR/$name.txt" || fail "swarm failed against $name"
    stop_server
    cp "$E2E_DIR/serve.log" "$E2E_DIR/$name.log"
    local contacts replies
    contacts=$("$SINKD_BINARY" contacts --state "$E2E_DIR/$name" --summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["contacts"])')
    replies=$(json_field "$E2E_DIR/$name.json" 'd["replies_received"]')
    [ "$contacts" -ge "$replies" ] || fail "$name: $replies replies but only $contacts durable contacts"
    sed -n 's/.*group commits: [0-9]* for [0-9]* records (avg \([0-9.]*\), max \([0-9]*\)).*/\1 \2/p' \
        "$E2E_DIR/$name.log"
}
read -r avg0 max0 < <(run nodelay 0)
read -r avg5 max5 < <(run delay 5000)
[ -n "$avg0" ] && [ -n "$avg5" ] || fail "no group-commit line in the server logs"
python3 -c "import sys; sys.exit(0 if $avg5 >= 2 * $avg0 else 1)" ||
    fail "with a 5 ms delay batches averaged $avg5 records, without $avg0: the delay did not batch"
"$SINKD_BINARY" serve --commit-delay-us 20000 --state "$E2E_DIR/x" 2>"$E2E_DIR/bad.txt" &&
    fail "--commit-delay-us 20000 was accepted"
grep -q "commit-delay-us" "$E2E_DIR/bad.txt" || fail "the error does not name --commit-delay-us"
echo "ok: average batch $avg0 (max $max0) without delay, $avg5 (max $max5) with 5 ms; none lost"
