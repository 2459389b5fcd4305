#!/usr/bin/env bash
# listen_claim_test.sh -- issue 19 #4, one server per bot address: with SO_REUSEPORT a second
# `serve` (another state directory) on the same address used to start silently and take half the
# bots into its own log. Now it is refused with one line naming the first's pid; so is one on an
# overlapping address (0.0.0.0 over 127.0.0.1) and one on an address another program listens on;
# once the first stops, the address is free again.
. "$(dirname "$0")/lib.sh"
port=$(free_port)
start_server "$E2E_DIR/a" "$port"
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
second() { # LISTEN STATE -> exit status; stderr in $E2E_DIR/second.err
    local rc=0
    timeout 10 "$SINKD_BINARY" serve "${as_root[@]}" --state "$2" --listen "$1" \
        2>"$E2E_DIR/second.err" || rc=$?
    return $rc
}
rc=0; second "127.0.0.1:$port" "$E2E_DIR/b" || rc=$?
[ "$rc" -eq 1 ] || fail "a second serve on the same address exited $rc (expected 1)"
grep -q "another sinkd serve (pid $SERVER_PID) already serves this address" "$E2E_DIR/second.err" ||
    fail "the refusal does not name the first server's pid: $(cat "$E2E_DIR/second.err")"
[ "$(wc -l <"$E2E_DIR/second.err")" -eq 1 ] || fail "the refusal is not one line"
[ ! -e "$E2E_DIR/b/log" ] || fail "the refused server wrote a log"
rc=0; second "0.0.0.0:$port" "$E2E_DIR/c" || rc=$?
[ "$rc" -eq 1 ] && grep -q "address in use by another process" "$E2E_DIR/second.err" ||
    fail "an overlapping wildcard listener was not refused ($rc): $(cat "$E2E_DIR/second.err")"
# Every bot still reaches the first server's log (no connection was taken by a second one).
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 50 --duration 3 --concurrency 50 \
    --source-net 127.0.1.0/24 --heartbeat-ms 500 --json "$E2E_DIR/swarm.json" >/dev/null ||
    fail "swarm"
stop_server
[ "$(json_field "$E2E_DIR/swarm.json" 'sum(d["errors"].values())')" = 0 ] || fail "swarm errors"
# Another program on a port.
other=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(20)' "$other" &
E2E_PIDS+=($!)
sleep 0.5
rc=0; second "127.0.0.1:$other" "$E2E_DIR/d" || rc=$?
[ "$rc" -eq 1 ] && grep -q "address in use by another process" "$E2E_DIR/second.err" ||
    fail "a port another program listens on was not refused ($rc)"
# The address is free once the first server is gone.
start_server "$E2E_DIR/e" "$port"
stop_server
echo "listen_claim_test: ok"
