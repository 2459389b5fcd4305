#!/usr/bin/env bash
# crash_test.sh -- kill -9 the server under load, three times, restarting it each time while the
# swarm keeps calling: the log recovers (torn tail cut, never accepted), verifies offline, and
# holds at least as many contacts as the swarm received replies (a reply is sent only after its
# contact is durable, so every acknowledged contact must survive).
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 2 --checkpoint-ms 200
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 600 --duration 12 --concurrency 600 \
    --source-net 127.0.1.0/24 --heartbeat-ms 100 --json "$E2E_DIR/swarm.json" \
    >"$E2E_DIR/swarm.txt" &
swarm=$!
E2E_PIDS+=("$swarm")

for round in 1 2 3; do
    sleep 2
    kill -KILL "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    echo "round $round: killed with -9" >>"$E2E_DIR/serve.log"
    start_server "$state" "$port" --workers 2 --checkpoint-ms 200
done
wait "$swarm" || fail "swarm failed"
stop_server

grep -c "evidence log:" "$E2E_DIR/serve.log" | grep -qx 4 || fail "expected four starts"
"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" 2>&1 ||
    fail "log does not verify after kill -9: $(cat "$E2E_DIR/verify.txt")"
contacts=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" | wc -l)
replies=$(json_field "$E2E_DIR/swarm.json" 'd["replies_received"]')
[ "$replies" -gt 1000 ] || fail "too little load to mean anything: $replies replies"
[ "$contacts" -ge "$replies" ] ||
    fail "acknowledged contacts lost: $replies replies received, $contacts contacts in the log"
starts=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all | grep -c '"kind":"node-started"')
[ "$starts" -eq 4 ] || fail "expected 4 node-started records, got $starts"
echo "ok: $replies replies acknowledged, $contacts contacts durable, $(cat "$E2E_DIR/verify.txt")"
