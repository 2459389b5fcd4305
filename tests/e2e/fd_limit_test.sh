#!/usr/bin/env bash
# fd_limit_test.sh -- serve under a small open-files limit (256): --max-connections is lowered so
# that descriptors stay free for the evidence log, and a crowd of bots larger than the limit
# cannot starve it. The excess is reset at the connection cap (never "too many open files" at
# accept), and while the cap is full the log still creates a tile and its checkpoints: every
# answered poll is durable and the log verifies. A limit too small for any connection is refused.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)

# ulimit -n sets the hard limit too, so serve cannot raise it back.
(ulimit -n 40 && exec "$SINKD_BINARY" serve "${as_root[@]}" --state "$E2E_DIR/tiny" \
    --listen "127.0.0.1:$port" --workers 1 2>"$E2E_DIR/tiny.log") &&
    fail "serve started with 40 open files"
grep -q "open-files limit of 40 leaves no room for connections" "$E2E_DIR/tiny.log" ||
    fail "no clear error for a tiny limit: $(cat "$E2E_DIR/tiny.log")"

SERVE_NOFILE=256 start_server "$state" "$port" --workers 1 --no-enrich --checkpoint-ms 200 --heartbeat-interval 0
# 256 - (64 + 1 worker x (1 listener + 4)) = 187
grep -q -- "--max-connections 16000 lowered to 187: the open-files limit is 256" "$E2E_DIR/serve.log" ||
    fail "max-connections not fitted to the limit: $(cat "$E2E_DIR/serve.log")"

# 300 bots from 100 addresses (3 each: under the per-address cap and rate) poll and stay; then
# the 187 that were kept poll twice more, so the log passes 256 entries (a full tile file is
# created) while every connection slot is taken.
python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$port" >"$E2E_DIR/crowd.txt" <<'PY' || fail "crowd: $(cat "$E2E_DIR/crowd.txt")"
import socket, sys, time
sys.path.insert(0, sys.argv[1])
import hostile
port = int(sys.argv[2])
socks = []
for i in range(300):
    s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                 source_address=(f"127.0.3.{1 + i % 100}", 0))
    s.sendall(hostile.packet(0x1000))
    socks.append(s)
kept, reset = [], 0
for s in socks:
    s.settimeout(5)
    try:
        kept.append(s) if len(s.recv(64)) >= 16 else None
    except ConnectionResetError:
        reset += 1
answered = len(kept)
for _ in range(2):
    for s in kept:
        s.sendall(hostile.packet(0x1000))
    for s in kept:
        if len(s.recv(64)) < 16:
            sys.exit("a kept bot's second poll was not answered")
        answered += 1
print(f"kept {len(kept)} reset {reset} answered {answered}")
if len(kept) != 187 or reset != 113:
    sys.exit(f"expected 187 kept and 113 reset, got {len(kept)} and {reset}")
time.sleep(0.5)  # a checkpoint (every 200 ms) while all 187 are still open
PY
stop_server
grep -q "Too many open files\|too many open files" "$E2E_DIR/serve.log" &&
    fail "descriptors ran out: $(grep -i 'too many open files' "$E2E_DIR/serve.log" | head -3)"
grep -q "tile writer" "$E2E_DIR/serve.log" && fail "tile writer failed: $(grep 'tile writer' "$E2E_DIR/serve.log")"
answered=$(awk '{print $NF}' "$E2E_DIR/crowd.txt")
contacts=$("$SINKD_BINARY" contacts --state "$state" --summary |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["contacts"])')
[ "$contacts" -ge "$answered" ] || fail "$answered polls answered but $contacts contacts durable"
ls "$state/log/tile/0/000" >/dev/null 2>&1 || fail "no full level-0 tile was written"
"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" 2>&1 ||
    fail "log does not verify: $(cat "$E2E_DIR/verify.txt")"
echo "ok: limit 256 -> 187 connections, $(cat "$E2E_DIR/crowd.txt"), $contacts contacts durable, log verifies"
