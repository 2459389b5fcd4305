#!/usr/bin/env bash
# syn_ban_test.sh -- an address the rate limit keeps refusing has its SYNs dropped at the
# listeners (--syn-ban-after within a second), while other addresses and bots behind a trusted
# proxy are still served; the ban lapses after --syn-ban-s and the address is served again.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 2 --no-enrich --conn-rate-per-ip 5 --conn-burst-per-ip 5 \
    --refuse-hold-ms 0 --syn-ban-after 10 --syn-ban-s 3

python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$port" >"$E2E_DIR/peers.txt" 2>&1 <<'PY' ||
import socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import hostile
port = int(sys.argv[2])
FLOOD, OTHER = "127.0.3.230", "127.0.3.231"

def attempt(src, timeout):
    return hostile.hello_attempt(src, "127.0.0.1", port, timeout)

def proxied_bot(fake_src):
    """A bot behind the trusted proxy 127.0.1.1: the PROXY header names its address."""
    s = socket.socket()
    s.bind(("127.0.1.1", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    hdr = f"PROXY TCP4 {fake_src} 127.0.0.1 40000 {port}\r\n".encode()
    try:
        s.send(hdr + hostile.packet(0x1000))
        return len(s.recv(64)) >= 16
    except ConnectionResetError:
        return False  # refused by the rate limit for fake_src
    finally:
        s.close()

# 5 admitted (the burst), then refusals; the 10th refusal within a second bans the address.
t0 = time.time()
first = []
while len(first) < 40 and "dropped" not in first:
    first.append(attempt(FLOOD, 0.4))
t_drop = time.time() - t0
if first.count("reply") < 5 or first.count("refused") < 10:
    sys.exit(f"the rate limit did not refuse: {first}")
# The worker that bans adds the address to the filter at once: the attempt after the 10th refusal
# within a second is dropped (up to 19 if the first refusals straddle a second boundary), not
# only after the main loop's next once-a-second update.
if "dropped" not in first or first.count("refused") > 19 or t_drop > 1.5:
    sys.exit(f"not dropped right after the 10th refusal ({t_drop:.2f} s): {first}")
# The workers install the filter within a second (their sweep runs every 250 ms).
time.sleep(1.5)
banned = [attempt(FLOOD, 0.4) for _ in range(5)]
if banned != ["dropped"] * 5:
    sys.exit(f"the flooding address was not dropped at the listener: {banned}")
if attempt(OTHER, 2) != "reply":
    sys.exit("another address was not served during the ban")
# Behind the trusted proxy, the banned address is only a name in a header: not dropped (the
# kernel sees the proxy), and a proxied flood never bans the proxy.
if not proxied_bot(FLOOD):
    sys.exit("a proxied bot with the banned address was not served")
proxied = [proxied_bot("198.51.100.7") for _ in range(30)]
if proxied.count(False) < 10:
    sys.exit(f"the proxied flood was not refused: {proxied}")
time.sleep(1.5)
if not proxied_bot("198.51.100.8"):
    sys.exit("the trusted proxy's own address was banned")
print(f"ok: {first.count('refused')} refusals, then dropped {t_drop:.1f} s after the flood "
      "began; others and proxied bots served")
# The ban lapses after 3 s (and the filter is refreshed within a second after that).
deadline = t0 + 10
while time.time() < deadline:
    r = attempt(FLOOD, 0.4)
    if r == "reply":
        print(f"ok: served again {time.time() - t0:.1f} s after the flood began")
        break
    time.sleep(0.3)
else:
    sys.exit("the ban did not lapse")
PY
    fail "$(cat "$E2E_DIR/peers.txt")"
stop_server

grep -q "listeners now drop SYNs from 1 address refused 10+ times in a second (each ban lasts 3 s)" \
    "$E2E_DIR/serve.log" || fail "no log line for the ban"
grep -q "listeners now drop SYNs from 0 addresses" "$E2E_DIR/serve.log" ||
    fail "no log line for the lapse"
grep -q "listener bans: 1 made, 0 in force at the stop" "$E2E_DIR/serve.log" ||
    fail "no stop summary of the bans"

# Off: the same flood is refused, never dropped.
start_server "$E2E_DIR/off" "$port" --workers 1 --no-enrich --conn-rate-per-ip 5 \
    --conn-burst-per-ip 5 --refuse-hold-ms 0 --syn-ban-after 0
python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$port" >>"$E2E_DIR/peers.txt" 2>&1 <<'PY' ||
import socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import hostile
port = int(sys.argv[2])
dropped = 0
for i in range(60):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.bind(("127.0.3.232", 0))
    s.settimeout(0.4)
    try:
        s.connect(("127.0.0.1", port))
    except (socket.timeout, TimeoutError):
        dropped += 1
    s.close()
    if i == 30:
        time.sleep(1.5)
if dropped:
    sys.exit(f"{dropped} connections dropped with --syn-ban-after 0")
print("ok: no drops with --syn-ban-after 0")
PY
    fail "$(cat "$E2E_DIR/peers.txt")"
stop_server

# IPv6: a flood from ::1 to an IPv6 listener is dropped by the IPv6 program; IPv4 is not touched.
port6=$(free_port)
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    start_server "$E2E_DIR/v6" "$port" --listen "[::1]:$port6" --workers 1 --no-enrich \
        --conn-rate-per-ip 5 --conn-burst-per-ip 5 --refuse-hold-ms 0 --syn-ban-after 10
    python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$port" "$port6" >"$E2E_DIR/v6.txt" 2>&1 <<'PY' ||
import socket, struct, sys
sys.path.insert(0, sys.argv[1])
import hostile
port, port6 = int(sys.argv[2]), int(sys.argv[3])

def attempt6():
    return hostile.hello_attempt("::1", "::1", port6, 0.4)

seen = []
while len(seen) < 40 and "dropped" not in seen:
    seen.append(attempt6())
if seen.count("reply") < 5 or "dropped" not in seen or seen.count("refused") > 19:
    sys.exit(f"::1 not dropped after its refusals: {seen}")
s = hostile.connect_from("127.0.3.234", port)
s.send(hostile.packet(0x1000))
if len(s.recv(64)) < 16:
    sys.exit("IPv4 not served while ::1 is banned")
print(f"ok: ::1 dropped after {seen.count('refused')} refusals; IPv4 served")
PY
        fail "IPv6 ban: $(cat "$E2E_DIR/v6.txt")"
    cat "$E2E_DIR/v6.txt"
    stop_server
else
    echo "no IPv6 loopback: the IPv6 check is skipped"
fi

# Without the privilege to load the filter, serve says so and serves without bans.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    SERVE_WRAP="setpriv --bounding-set -bpf,-sys_admin" start_server "$E2E_DIR/nocap" "$port" \
        --workers 1 --no-enrich
    python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$port" <<'PY' || fail "not served without CAP_BPF"
import sys
sys.path.insert(0, sys.argv[1])
import hostile
s = hostile.connect_from("127.0.3.233", int(sys.argv[2]))
s.send(hostile.packet(0x1000))
assert len(s.recv(64)) >= 16
PY
    stop_server
    grep -q "listener bans off: listener filter: cannot create its BPF map: Operation not permitted" \
        "$E2E_DIR/serve.log" || fail "no log line for bans off without CAP_BPF"
else
    echo "not root or no setpriv: the bans-off check is skipped"
fi

for bad in "--syn-ban-after x" "--syn-ban-s 0" "--syn-ban-max 4097"; do
    # shellcheck disable=SC2086
    "$SINKD_BINARY" serve $bad --state "$E2E_DIR/x" 2>"$E2E_DIR/bad.txt" && fail "$bad was accepted"
    opt=${bad%% *}
    grep -q -- "${opt#--}" "$E2E_DIR/bad.txt" || fail "the error for $bad does not name it"
done
cat "$E2E_DIR/peers.txt"
