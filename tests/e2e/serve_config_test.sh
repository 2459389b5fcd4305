#!/usr/bin/env bash
# serve_config_test.sh -- issue 19 item 12: every serve option can come from sinkd.conf
# (`serve --config FILE`), the command line overrides it, and a bad file stops serve with one
# line naming FILE:LINE. The shipped contrib/sinkd.conf names every option and starts a server.
source "$(dirname "$0")/lib.sh"

shipped="$SINKD_SOURCE_DIR/contrib/sinkd.conf"
# Every option serve --help lists is a key of the shipped file (set or commented out).
opts=$("$SINKD_BINARY" serve --help | grep -oE '^  --[a-z0-9-]+|, --[a-z0-9-]+' | sed 's/.*--//' |
    grep -vx 'help\|config')
[ "$(wc -l <<<"$opts")" -ge 40 ] || fail "serve --help lists only $(wc -l <<<"$opts") options"
for o in $opts; do
    grep -Eq "^(# )?$o = " "$shipped" || fail "contrib/sinkd.conf does not name serve option '$o'"
done

as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
port=$(free_port)
port2=$(free_port)
mport=$(free_port)
state="$E2E_DIR/state"
conf="$E2E_DIR/sinkd.conf"
cat >"$conf" <<CONF
# a node configured by file only
[serve]
state = $state
listen = 127.0.0.1:$port2
trusted-proxy = 127.0.1.0/24
workers = 1
node = filenode
metrics-listen = 127.0.0.1:$mport
no-registry = false
ready-file = $E2E_DIR/ready
CONF

# The file alone, but for --listen and --workers on the command line: they win, and the
# command line's --listen replaces the file's (port2 stays closed).
rm -f "$E2E_DIR/ready"
"$SINKD_BINARY" serve "${as_root[@]}" --config "$conf" --listen "127.0.0.1:$port" --workers 2 \
    2>>"$E2E_DIR/serve.log" &
SERVER_PID=$!
E2E_PIDS+=("$SERVER_PID")
for _ in $(seq 1 200); do
    [ -f "$E2E_DIR/ready" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || fail "serve --config exited during start"
    sleep 0.05
done
[ -f "$E2E_DIR/ready" ] || fail "serve --config not ready (the file's ready-file)"
grep -q "serving (2 workers)" "$E2E_DIR/serve.log" || fail "--workers on the command line did not override the file"
ss -Htln "sport = :$port" | grep -q . || fail "not listening on the command line's --listen"
ss -Htln "sport = :$port2" | grep -q . && fail "the file's listen was kept beside the command line's"
curl -sf "http://127.0.0.1:$mport/metrics" >/dev/null || fail "the file's metrics-listen is not answering"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 5 --duration 1 --source-net 127.0.1.0/24 \
    >/dev/null 2>&1 || fail "swarm against serve --config failed (the file's trusted-proxy?)"
stop_server
"$SINKD_BINARY" contacts --state "$state" --all --justification "e2e: serve_config_test" | grep -q '"node": *"filenode"' ||
    fail "the file's node name is not in the records"

# Refusals: exit 2, one line, FILE:LINE and what.
refused() { # LINE-TEXT EXPECTED-SUBSTRING
    printf '[serve]\nstate = %s\n%s\n' "$state" "$1" >"$E2E_DIR/bad.conf"
    local status=0
    # (no --listen here: one on the command line would replace, and so skip, the file's)
    timeout 10 "$SINKD_BINARY" serve "${as_root[@]}" --config "$E2E_DIR/bad.conf" \
        >/dev/null 2>"$E2E_DIR/err" || status=$?
    [ "$status" -eq 2 ] || fail "'$1': exit $status, not 2: $(cat "$E2E_DIR/err")"
    [ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] || fail "'$1': not one line: $(cat "$E2E_DIR/err")"
    grep -qF -- "$E2E_DIR/bad.conf:3: $2" "$E2E_DIR/err" || fail "'$1': $(cat "$E2E_DIR/err")"
}
refused "workers = many" "--workers: 'many' is not a number"
refused "node = paris # main" "'#' inside the value of 'node'"
refused "listen = nowhere" "--listen:"
refused "seccomp = sometimes" "--seccomp: 'sometimes'"
refused "max-message = 1" "--max-message: 1 is out of range"
# A leading zero is decimal, not octal (0040 is forty, not 32).
refused "max-message = 0040" "--max-message: 40 is out of range"
refused "enforce = perhaps" "'enforce' is a switch"
refused "enforse = true" "unknown key 'enforse'"
refused "state = /elsewhere" "duplicate key 'state' (first on line 2)"
refused "  workers = 2" "indented line"
refused "config = /etc/other.conf" "unknown key 'config'"
status=0
timeout 10 "$SINKD_BINARY" serve --config "$E2E_DIR/missing.conf" 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 2 ] && grep -q "missing.conf: No such file" "$E2E_DIR/err" || fail "missing config: $(cat "$E2E_DIR/err")"

# The shipped file: its state and listen overridden (port 443 needs privileges), it starts.
start_server "$E2E_DIR/state2" "$port" --config "$shipped" --seccomp off
stop_server
echo "serve config: OK ($(wc -l <<<"$opts") options)"
