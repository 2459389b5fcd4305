#!/usr/bin/env bash
# commit_delay_test.sh -- the group-commit delay: under the same load, a server that pauses
# before each commit when recent ones were large commits fewer, larger batches than one that
# never pauses, and loses nothing (every reply the swarm received is a durable contact); the
# default pauses under load, never under a light one.
source "$(dirname "$0")/lib.sh"

# run NAME DELAY_US BOTS HEARTBEAT_MS: a 3 s swarm; DELAY_US "default" passes no option.
# Prints "AVG MAX DELAYED" (records per commit, largest commit, commits after a pause).
run() {
    local name=$1 delay=$2 bots=$3 hb=$4 port
    local opts=()
    [ "$delay" = default ] || opts=(--commit-delay-us "$delay")
    port=$(free_port)
    : >"$E2E_DIR/serve.log"
    start_server "$E2E_DIR/$name" "$port" --workers 1 "${opts[@]}" --no-registry --heartbeat-interval 0
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots "$bots" --duration 3 \
        --concurrency "$bots" --source-net 127.0.1.0/24 --heartbeat-ms "$hb" \
        --json "$E2E_DIR/$name.json" >"$E2E_DIR/$name.txt" || fail "swarm failed against $name"
    stop_server
    cp "$E2E_DIR/serve.log" "$E2E_DIR/$name.log"
    local contacts replies
    contacts=$("$SINKD_BINARY" contacts --state "$E2E_DIR/$name" --summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["contacts"])')
    replies=$(json_field "$E2E_DIR/$name.json" 'd["replies_received"]')
    [ "$contacts" -ge "$replies" ] || fail "$name: $replies replies but only $contacts durable contacts"
    sed -n 's/.*group commits: [0-9]* for [0-9]* records (avg \([0-9.]*\), max \([0-9]*\)), \([0-9]*\) after a commit delay.*/\1 \2 \3/p' \
        "$E2E_DIR/$name.log"
}
# 400 bots heartbeating every 20 ms: ~20,000 contacts/s, enough for commits of several records.
read -r avg0 max0 delayed0 < <(run nodelay 0 400 20)
read -r avg5 max5 delayed5 < <(run delay 5000 400 20)
read -r avgd maxd delayedd < <(run default-loaded default 400 20)
# 20 bots every 100 ms: ~200 contacts/s, one or two records per commit.
read -r avgl maxl delayedl < <(run default-light default 20 100)
[ -n "$avg0" ] && [ -n "$avg5" ] && [ -n "$avgd" ] && [ -n "$avgl" ] ||
    fail "no group-commit line in the server logs"
[ "$delayed0" -eq 0 ] || fail "--commit-delay-us 0 paused before $delayed0 commits"
python3 -c "import sys; sys.exit(0 if $avg5 >= 2 * $avg0 else 1)" ||
    fail "with a 5 ms delay batches averaged $avg5 records, without $avg0: the delay did not batch"
[ "$delayedd" -gt 0 ] || fail "the default delay never paused under ~20,000 contacts/s (avg batch $avgd)"
[ "$delayedl" -eq 0 ] || fail "the default delay paused $delayedl times under a light load (avg batch $avgl)"
"$SINKD_BINARY" serve --commit-delay-us 20000 --state "$E2E_DIR/x" 2>"$E2E_DIR/bad.txt" &&
    fail "--commit-delay-us 20000 was accepted"
grep -q "commit-delay-us" "$E2E_DIR/bad.txt" || fail "the error does not name --commit-delay-us"
echo "ok: average batch $avg0 (max $max0) without delay, $avg5 (max $max5) with 5 ms;" \
    "default: $delayedd of its commits paused under load (avg $avgd), none under a light one" \
    "(avg $avgl); none lost"
