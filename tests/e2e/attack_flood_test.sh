#!/usr/bin/env bash
# attack_flood_test.sh -- a connection flood, a slowloris crowd and one address over its
# per-address cap, all while a small honest swarm runs: every honest bot answered, the server
# alive and bounded, the excess connections from the one address closed at once and logged,
# slowloris peers cut off by the header timeout, and no acknowledged contact missing.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
# The cap alone (the rate limit has its own tests), refusals reset at once (refuse_hold_test.sh
# holds them).
start_server "$state" "$port" --workers 2 --header-timeout 2000 --max-per-ip 30 \
    --conn-rate-per-ip 0 --refuse-hold-ms 0
rss_before=$(rss_kb "$SERVER_PID")

"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 200 --duration 10 --concurrency 200 \
    --source-net 127.0.1.0/24 --heartbeat-ms 500 --json "$E2E_DIR/swarm.json" \
    >"$E2E_DIR/swarm.txt" &
swarm=$!
E2E_PIDS+=("$swarm")
sleep 1

# Hostile peers from 127.0.3.0/24 (untrusted), bounded in count and time.
cat >"$E2E_DIR/peers.py" <<'PY'
import os, socket, sys, time
sys.path.insert(0, os.path.join(os.environ["SINKD_SOURCE_DIR"], "tests", "e2e"))
import hostile
mode, port = sys.argv[1], int(sys.argv[2])

def conn(src):
    return hostile.connect_from(src, port)

def closed(s, wait):
    s.settimeout(wait)
    try:
        return s.recv(64) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

if mode == "flood":  # open and drop 600 connections as fast as Python can
    deadline = time.time() + 15
    for i in range(600):
        conn(f"127.0.3.{1 + i % 100}").close()
        if time.time() > deadline:
            break
elif mode == "slowloris":  # 200 peers drip a PlugX-sized header one byte every 0.5 s
    socks = [conn(f"127.0.3.{101 + i % 50}") for i in range(200)]
    cut = 0
    deadline = time.time() + 10
    while socks and time.time() < deadline:
        for s in list(socks):
            try:
                s.send(b"\x11")
            except OSError:
                socks.remove(s); cut += 1
        time.sleep(0.5)
    for s in socks:
        cut += closed(s, 5)
    if cut != 200:
        sys.exit(f"slowloris: only {cut} of 200 drips were cut off")
elif mode == "per-ip":  # 100 connections from one address, cap 30: 70 reset at once
    socks = [conn("127.0.3.250") for _ in range(100)]
    for s in socks:  # a first header byte: the listener defers accept until a peer speaks
        s.send(b"\x11")
    time.sleep(0.7)  # well inside the 2 s header timeout, so only the cap has closed any
    reset = eof = 0
    for s in socks:
        s.setblocking(False)
        try:
            eof += s.recv(64) == b""
        except BlockingIOError:
            pass
        except ConnectionResetError:
            reset += 1
    if reset != 70 or eof != 0:
        sys.exit(f"per-ip: {reset} of 100 reset at once and {eof} closed, expected 70 reset (cap 30)")
PY
pids=()
for mode in flood slowloris per-ip; do
    python3 "$E2E_DIR/peers.py" "$mode" "$port" & pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || fail "a hostile peer saw the server misbehave (pid $p)"
done
kill -0 "$SERVER_PID" || fail "server died under attack"
rss_during=$(rss_kb "$SERVER_PID")
wait "$swarm" || fail "swarm failed"
stop_server

log="$E2E_DIR/serve.log"
grep -q "bad peer 127.0.3.250:[0-9]*: more than 30 connections from this address" "$log" ||
    fail "no log line for the connections over the per-address cap"
grep -q "header timeout" "$log" || fail "no log line for slowloris peers"
python3 - "$E2E_DIR/swarm.json" <<'PY' || fail "honest bots were hurt"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["bots_run"] == 200 and s["bots_replied"] == 200, s
assert sum(s["errors"].values()) == 0, s["errors"]
PY
honest=$(durable_messages "$state" 127.0.3.)
replies=$(json_field "$E2E_DIR/swarm.json" 'd["replies_received"]')
[ "$honest" -ge "$replies" ] || fail "honest contacts in log $honest < replies received $replies"
growth=$((rss_during - rss_before))
[ "$growth" -lt 102400 ] || fail "server RSS grew by ${growth} kB under attack"
echo "ok: $honest honest contacts for $replies replies, RSS growth ${growth} kB"
