#!/usr/bin/env bash
# refuse_hold_test.sh -- peers over the per-address cap, and bad peers, are held unread and reset
# only after --refuse-hold-ms, up to --refuse-hold-max of them; the rest are reset at once. Held peers do not
# count against --max-connections (a bot from another address is still served), nothing they
# sent is recorded, and the admitted ones keep their sessions.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
# One worker, so the hold budget is not split by the kernel's spread of connections.
start_server "$state" "$port" --workers 1 --no-enrich --max-per-ip 30 --conn-rate-per-ip 0 \
    --max-connections 40 --refuse-hold-ms 1500 --refuse-hold-max 50

python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$port" >"$E2E_DIR/peers.txt" 2>&1 <<'PY' ||
import socket, sys, time
sys.path.insert(0, sys.argv[1])
import hostile
port = int(sys.argv[2])

def conn(src):
    return hostile.connect_from(src, port)

ended = {}  # socket -> 'reset' or 'eof': the kernel reports a reset once, then end of file

def state(s):
    """'reset', 'eof', 'reply' (a PlugX reply waiting) or 'open' (nothing yet)."""
    if s in ended:
        return ended[s]
    s.setblocking(False)
    try:
        data = s.recv(64)
        if len(data) >= 16:
            return "reply"
        ended[s] = "eof"
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        ended[s] = "reset"
    return ended[s]

def count(states):
    return {k: states.count(k) for k in ("reset", "eof", "reply", "open")}

t0 = time.time()
socks = [conn("127.0.3.250") for _ in range(100)]
for s in socks:
    s.send(hostile.packet(0x1000))  # a full PlugX hello each
time.sleep(0.7)
first = [state(s) for s in socks]
c = count(first)
# cap 30: 30 answered; 70 refused, of which 50 held (no reply, no reset yet) and 20 reset at once
if c != {"reset": 20, "eof": 0, "reply": 30, "open": 50}:
    sys.exit(f"after 0.7 s: {c}, expected 20 reset, 30 answered, 50 held open")

# Held peers are not connections: a bot from another address is served although 30 + 50 > 40.
other = conn("127.0.3.251")
other.send(hostile.packet(0x1000))
other.settimeout(5)
if len(other.recv(64)) < 16:
    sys.exit("a bot from another address was not served while 50 refusals were held")

held = [s for s, st in zip(socks, first) if st == "open"]
answered = [s for s, st in zip(socks, first) if st == "reply"]
time.sleep(max(0.0, t0 + 1.0 - time.time()))
early = count([state(s) for s in held])
if early["reset"] != 0:
    sys.exit(f"held peers reset before --refuse-hold-ms: {early}")
deadline = t0 + 5
while time.time() < deadline:
    late = count([state(s) for s in held])
    if late["reset"] == 50:
        break
    time.sleep(0.1)
else:
    sys.exit(f"held peers not all reset within 5 s: {late}")
elapsed = time.time() - t0
kept = count([state(s) for s in answered])
if kept["open"] != 30:
    sys.exit(f"the 30 admitted sessions did not stay open: {kept}")
print(f"ok: 20 reset at once, 50 held and reset after {elapsed:.1f} s, 30 kept")

# Bad peers are held the same way (a decompression bomb: a size); callers whose bytes merely do
# not decode (garbage, PROXY from an untrusted peer) are recorded and let go with a FIN, unheld.
bad = {"bomb": hostile.packet(0x1001, hostile.lznt1_bomb(16), decomp_size=100, flags_extra=0)}
undecoded = {
    "garbage": bytes((j * 11) & 0xFF for j in range(200)).replace(b"P", b"Q"),
    "proxy": b"PROXY TCP4 8.8.8.8 127.0.0.1 1234 443\r\n",
}
t1 = time.time()
peers = {}
for i, (name, data) in enumerate(list(bad.items()) + list(undecoded.items())):
    peers[name] = conn(f"127.0.3.{240 + i}")
    peers[name].send(data)
time.sleep(0.7)
early = {name: state(s) for name, s in peers.items()}
if early["bomb"] != "open":
    sys.exit(f"bad peer not held: {early}")
if {early[n] for n in undecoded} != {"eof"}:
    sys.exit(f"undecoded callers not let go with a FIN: {early}")
while time.time() < t1 + 5 and state(peers["bomb"]) != "reset":
    time.sleep(0.1)
late = {name: state(s) for name, s in peers.items()}
if late["bomb"] != "reset":
    sys.exit(f"held bad peer not reset within 5 s: {late}")
print(f"ok: bomb held, reset after {time.time() - t1:.1f} s; garbage and PROXY let go with a FIN")
PY
    fail "$(cat "$E2E_DIR/peers.txt")"
stop_server

# Only the 30 admitted hellos and the other address's are evidence; the held ones were never read.
# (One address, one presence: the first hello is a contact, the other 29 are in its heartbeats.)
n=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all | python3 -c '
import json, sys
print(sum((r["count"] if r["kind"] == "heartbeats" else 1) for r in map(json.loads, sys.stdin)
          if r["kind"] in ("contact", "heartbeats") and r["src_ip"] == "127.0.3.250"))')
[ "$n" -eq 30 ] || fail "$n contacts from the capped address, expected the 30 admitted"
for line in "more than 30 connections from this address" "neither HTTP nor plugx" \
    "PROXY header from a peer that is not a trusted proxy" "plugx: "; do
    grep -q "$line" "$E2E_DIR/serve.log" || fail "no log line: $line"
done
! grep -q "plugx: plugx:" "$E2E_DIR/serve.log" || fail "the family is named twice in a log line"

# The budget comes out of the descriptors left after --max-connections, never before them.
SERVE_NOFILE=300 start_server "$E2E_DIR/fit" "$(free_port)" --workers 1 --no-enrich \
    --max-connections 200
stop_server
# 300 - (64 + 1 x (1 + 4)) = 231 descriptors; 200 for connections, 31 left to hold refusals
grep -q -- "--refuse-hold-max 1024 lowered to 31: no descriptors left beyond --max-connections 200" \
    "$E2E_DIR/serve.log" || fail "hold budget not fitted"

for bad in "--refuse-hold-ms 600001" "--refuse-hold-max x"; do
    # shellcheck disable=SC2086
    "$SINKD_BINARY" serve $bad --state "$E2E_DIR/x" 2>"$E2E_DIR/bad.txt" && fail "$bad was accepted"
    opt=${bad%% *}
    grep -q -- "${opt#--}" "$E2E_DIR/bad.txt" || fail "the error for $bad does not name it"
done
cat "$E2E_DIR/peers.txt"
