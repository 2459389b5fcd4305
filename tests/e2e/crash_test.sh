#!/usr/bin/env bash
# crash_test.sh -- kill -9 the server under load, restarting it each time while the swarm keeps
# calling: the log recovers (torn tail cut, never accepted) and verifies offline, and what the
# bots were told survives within the stated bound (docs/evidence.md, "Heartbeats rolled up"):
#   - roll-up off (--heartbeat-interval 0): a reply is sent only after its contact is durable, so
#     every acknowledged contact survives: nothing lost;
#   - roll-up on: a presence's first contact, machine information, decisions and commands are
#     still durable before their reply; a later poll is answered at once and counted into its
#     bot's heartbeats entry, so a kill -9 loses at most the counts of one interval per bot
#     present: lost <= kills x bots x (polls one bot can make in one interval).
source "$(dirname "$0")/lib.sh"

# phase NAME INTERVAL_S HEARTBEAT_MS KILLS: 600 bots for 10 s, a kill -9 every 2 s.
phase() {
    local name=$1 interval=$2 hb=$3 kills=$4
    local state="$E2E_DIR/$name" port
    port=$(free_port)
    start_server "$state" "$port" --workers 2 --checkpoint-ms 200 --heartbeat-interval "$interval"
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 600 --duration 10 --concurrency 600 \
        --source-net 127.0.1.0/24 --heartbeat-ms "$hb" --json "$E2E_DIR/$name.json" \
        >"$E2E_DIR/$name.txt" &
    local swarm=$!
    E2E_PIDS+=("$swarm")
    for round in $(seq 1 "$kills"); do
        sleep 2
        kill -KILL "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
        echo "$name round $round: killed with -9" >>"$E2E_DIR/serve.log"
        start_server "$state" "$port" --workers 2 --checkpoint-ms 200 --heartbeat-interval "$interval"
    done
    wait "$swarm" || fail "$name: swarm failed"
    stop_server
    "$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" 2>&1 ||
        fail "$name: log does not verify after kill -9: $(cat "$E2E_DIR/verify.txt")"
    starts=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all |
        grep -c '"kind":"node-started"')
    [ "$starts" -eq $((kills + 1)) ] || fail "$name: expected $((kills + 1)) node-started records, got $starts"
    # Every message the log vouches for: contact records plus the polls heartbeats records count.
    durable=$("$SINKD_BINARY" contacts --state "$state" --summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["contacts"])')
    replies=$(json_field "$E2E_DIR/$name.json" 'd["replies_received"]')
    [ "$replies" -gt 1000 ] || fail "$name: too little load to mean anything: $replies replies"
    echo "$durable $replies"
}

read -r durable replies < <(phase off 0 100 3)
[ "$durable" -ge "$replies" ] ||
    fail "roll-up off: acknowledged contacts lost: $replies replies received, $durable durable"
echo "roll-up off: $replies replies acknowledged, $durable contacts durable"

# Polls every 200 ms +-50% (at least 100 ms apart): at most 11 in a 1 s interval per bot.
read -r durable2 replies2 < <(phase on 1 200 3)
lost=$((replies2 > durable2 ? replies2 - durable2 : 0))
bound=$((3 * 600 * 11))
[ "$lost" -le "$bound" ] ||
    fail "roll-up on: $lost acknowledged polls lost, more than the bound $bound"
# The roll-up really ran (else this phase tests nothing the first did not).
rolled=$("$SINKD_BINARY" contacts --state "$E2E_DIR/on" --summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["heartbeats_records"])')
[ "$rolled" -gt 0 ] || fail "roll-up on: no heartbeats record was written"
echo "ok: roll-up off lost nothing ($durable >= $replies); roll-up on lost $lost of $replies2 polls (bound $bound), $rolled heartbeats records"
