#!/usr/bin/env bash
# one_writer_test.sh -- one writer per state directory (issue 19 #3): a second `serve` on the
# same state (even with --no-registry and another port) is refused with one line naming the
# first one's pid, and so are a `registry rebuild` beside serve's follower, a second timestamp
# and a second cosign while one runs; the log stays whole (verify) and the refused commands
# work once the holder is gone. serve --no-registry beside `registry follow` still runs (each
# holds its own lock).
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 1
first=$SERVER_PID
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 20 --duration 2 --concurrency 20 \
    >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"

as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
port2=$(free_port)
status=0
timeout 20 "$SINKD_BINARY" serve "${as_root[@]}" --state "$state" --listen "127.0.0.1:$port2" \
    --no-registry 2>"$E2E_DIR/serve2.log" || status=$?
[ "$status" -eq 1 ] || fail "a second serve on the same state exited $status, not 1: $(cat "$E2E_DIR/serve2.log")"
[ "$(wc -l <"$E2E_DIR/serve2.log")" -eq 1 ] || fail "the refusal is not one line: $(cat "$E2E_DIR/serve2.log")"
grep -q "log.lock is held by pid $first (sinkd serve)" "$E2E_DIR/serve2.log" ||
    fail "the second serve does not name the first one's pid $first: $(cat "$E2E_DIR/serve2.log")"
ss -Htln "sport = :$port2" | grep -q . && fail "the refused serve left a listener on $port2"

status=0
"$SINKD_BINARY" registry rebuild --state "$state" 2>"$E2E_DIR/rebuild.log" || status=$?
[ "$status" -eq 1 ] || fail "registry rebuild beside serve's follower exited $status"
grep -q "registry.lock is held by pid $first (sinkd serve)" "$E2E_DIR/rebuild.log" ||
    fail "rebuild does not name serve's pid: $(cat "$E2E_DIR/rebuild.log")"

# A TSA that accepts and never answers keeps the first timestamp (and its lock) busy.
silent_port=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
conns = []
end = time.time() + 30
while time.time() < end:
    s.settimeout(end - time.time())
    try:
        conns.append(s.accept()[0])
    except OSError:
        break
' "$silent_port" &
E2E_PIDS+=("$!")
for _ in $(seq 1 100); do
    ss -Htln "sport = :$silent_port" | grep -q . && break
    sleep 0.05
done
ss -Htln "sport = :$silent_port" | grep -q . || fail "the silent server is not listening"
for what in timestamp cosign; do
    if [ "$what" = timestamp ]; then
        cmd=(timestamp --state "$state" --tsa-url "http://127.0.0.1:$silent_port/" --timeout 8)
    else
        "$SINKD_BINARY" keygen --name witness.example --out "$E2E_DIR/wkeys" >/dev/null
        # a witness key is type 0x04; the log key format differs only in that byte
        python3 - "$E2E_DIR/wkeys/log.vkey" "$E2E_DIR/witness.vkey" <<'PY'
import base64, hashlib, sys
name, _, key = open(sys.argv[1]).read().strip().split("+", 2)
raw = bytearray(base64.b64decode(key)); raw[0] = 4
kid = hashlib.sha256(name.encode() + b"\n" + bytes(raw)).digest()[:4].hex()
open(sys.argv[2], "w").write("%s+%s+%s\n" % (name, kid, base64.b64encode(bytes(raw)).decode()))
PY
        cmd=(cosign --state "$state" --witness-url "http://127.0.0.1:$silent_port/"
            --witness-key "$E2E_DIR/witness.vkey" --timeout 8)
    fi
    "$SINKD_BINARY" "${cmd[@]}" >/dev/null 2>"$E2E_DIR/$what-1.log" &
    holder=$!
    E2E_PIDS+=("$holder")
    for _ in $(seq 1 100); do
        grep -q "^pid $holder$" "$state/$what.lock" 2>/dev/null && break
        sleep 0.05
    done
    grep -q "^pid $holder$" "$state/$what.lock" || fail "the first $what did not take $what.lock"
    kill -0 "$holder" 2>/dev/null || fail "the first $what is not waiting on the silent server: $(cat "$E2E_DIR/$what-1.log")"
    status=0
    "$SINKD_BINARY" "${cmd[@]}" >/dev/null 2>"$E2E_DIR/$what-2.log" || status=$?
    [ "$status" -eq 1 ] || fail "a second $what beside the first exited $status"
    grep -q "$what.lock is held by pid $holder (sinkd $what)" "$E2E_DIR/$what-2.log" ||
        fail "the second $what does not name the first: $(cat "$E2E_DIR/$what-2.log")"
    kill -TERM "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
done

stop_server
"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" ||
    fail "the log does not verify after the refused writers"
"$SINKD_BINARY" registry rebuild --state "$state" >"$E2E_DIR/rebuild-after.txt" ||
    fail "rebuild refused once serve was gone"

# serve --no-registry and `registry follow` are two writers of two different things.
start_server "$state" "$port" --workers 1 --no-registry
"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
sleep 0.5
kill -0 "$follower" 2>/dev/null || fail "registry follow beside serve --no-registry exited: $(cat "$E2E_DIR/follow.log")"
kill -TERM "$follower"
wait "$follower" || fail "registry follow exited non-zero"
stop_server
echo "one writer: a second serve, rebuild, timestamp and cosign refused naming the holder"
