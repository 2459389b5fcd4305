#!/usr/bin/env bash
# defer_accept_test.sh -- TCP_DEFER_ACCEPT on the listeners: connections that say nothing are
# held by the kernel (no descriptor, no state in the server) and are served normally once they
# speak; with --defer-accept 0 the server accepts them at once (one descriptor each).
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 2 --conn-rate-per-ip 0
python3 "$SINKD_SOURCE_DIR/tests/e2e/hostile.py" silent "$port" 200 "$SERVER_PID" deferred ||
    fail "silent connections were not deferred, or not served once they spoke"
stop_server
n=$("$SINKD_BINARY" contacts --state "$state" --summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["contacts"])')
[ "$n" -ge 200 ] || fail "only $n of 200 late polls are in the log"

state2="$E2E_DIR/state2"
port=$(free_port)
start_server "$state2" "$port" --workers 2 --conn-rate-per-ip 0 --defer-accept 0
python3 "$SINKD_SOURCE_DIR/tests/e2e/hostile.py" silent "$port" 200 "$SERVER_PID" accepted ||
    fail "with --defer-accept 0 silent connections were not accepted at once"
stop_server

"$SINKD_BINARY" serve --defer-accept 99999 --state "$E2E_DIR/x" 2>"$E2E_DIR/bad.txt" &&
    fail "--defer-accept 99999 was accepted"
grep -q "defer-accept" "$E2E_DIR/bad.txt" || fail "the error does not name --defer-accept"
echo "ok: silent connections deferred by the kernel, served when they speak; 0 turns it off"
