#!/usr/bin/env bash
# haproxy_nodes_test.sh -- nodes behind one address (issue 22 item 2): Debian's haproxy, run with
# contrib/haproxy.cfg (addresses and ports replaced), on loopback in front of two sinkd nodes,
# each with its own state directory, key, log and node name, trusting haproxy's address
# (--trusted-proxy 127.0.0.0/8), both following into one PostgreSQL (tests/pg/with_postgres.sh).
# A swarm calls haproxy. Checks: haproxy's health checks (the nodes' metrics listeners) mark both
# nodes up; both nodes serve; every contact is in exactly one node's log (each connection, named
# by the bot's address and port from its PROXY header, is in one log only) and was answered;
# every contact is in the registry once (its per-day contacts are the two logs' sum, its bots the
# two logs' distinct keys, each log applied to its end); the addresses recorded are the bots'
# own, which haproxy carried in PROXY v2, with haproxy's as the TCP peer, in the logs and in the
# registry.
if [ -z "${SINKD_PG_URL:-}" ]; then
    exec bash "$(dirname "$0")/../pg/with_postgres.sh" bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
command -v haproxy >/dev/null || {
    echo "haproxy is not installed (scripts/deps.sh installs it)" >&2
    exit 1
}

url=$SINKD_PG_URL
# Two nodes: the bot port and the metrics port of each.
ports=()
while [ ${#ports[@]} -lt 5 ]; do
    p=$(free_port)
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
pa=${ports[0]} pb=${ports[1]} ma=${ports[2]} mb=${ports[3]} ph=${ports[4]}
start_server "$E2E_DIR/a" "$pa" --workers 1 --node node-a --trusted-proxy 127.0.0.0/8 \
    --metrics-listen "127.0.0.1:$ma" --registry "$url"
pid_a=$SERVER_PID
start_server "$E2E_DIR/b" "$pb" --workers 1 --node node-b --trusted-proxy 127.0.0.0/8 \
    --metrics-listen "127.0.0.1:$mb" --registry "$url"
pid_b=$SERVER_PID
cmp -s "$E2E_DIR/a/keys/log.vkey" "$E2E_DIR/b/keys/log.vkey" && fail "the two nodes share a key"

# contrib/haproxy.cfg on loopback: haproxy connects to the nodes from 127.0.0.2 (their peer), and
# its bind accepts a PROXY header itself, because the swarm's bots announce their emulated public
# address in one (docs/swarm.md); a haproxy facing the Internet has no accept-proxy.
cfg=$E2E_DIR/haproxy.cfg
sed -e "s|^    bind 203.0.113.10:443\$|    bind 127.0.0.1:$ph accept-proxy|" \
    -e "s|^    source 10.0.0.10\$|    source 127.0.0.2|" \
    -e "s|^    server node-a 10.0.0.11:443\$|    server node-a 127.0.0.1:$pa port $ma|" \
    -e "s|^    server node-b 10.0.0.12:443\$|    server node-b 127.0.0.1:$pb port $mb|" \
    -e "s|^global\$|global\n    stats socket $E2E_DIR/haproxy.sock|" \
    "$SINKD_SOURCE_DIR/contrib/haproxy.cfg" >"$cfg"
for want in "bind 127.0.0.1:$ph accept-proxy" "source 127.0.0.2" "127.0.0.1:$pa port $ma" \
    "127.0.0.1:$pb port $mb" "stats socket"; do
    grep -qF "$want" "$cfg" || fail "contrib/haproxy.cfg no longer has the line the test replaces with '$want'"
done
haproxy -c -q -f "$SINKD_SOURCE_DIR/contrib/haproxy.cfg" || fail "contrib/haproxy.cfg does not parse"
haproxy -c -q -f "$cfg" || fail "the test's haproxy.cfg does not parse"
haproxy -db -f "$cfg" >"$E2E_DIR/haproxy.log" 2>&1 &
E2E_PIDS+=("$!")

haproxy_cmd() { # one stats-socket command, its answer on stdout
    python3 - "$E2E_DIR/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
PY
}
# Both nodes healthy by their metrics (rise 2, every 2 s): at most ~10 s.
for _ in $(seq 1 100); do
    up=$(haproxy_cmd "show stat" 2>/dev/null | awk -F, '$1 == "sinkd_nodes" && $2 ~ /^node-/ && $18 == "UP"' | wc -l) || up=0
    [ "$up" = 2 ] && break
    sleep 0.2
done
[ "$up" = 2 ] || fail "haproxy's health checks did not mark both nodes up: $(haproxy_cmd 'show stat' 2>&1 | cut -d, -f1,2,18,37 | head)"

"$SINKD_BINARY" swarm --target "127.0.0.1:$ph" --bots 300 --seed 11 --duration 5 \
    --concurrency 300 --source-net 127.0.1.0/24 --heartbeat-ms 400 \
    --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" || fail "swarm through haproxy failed"
for pid in "$pid_a" "$pid_b"; do
    kill -TERM "$pid"
    wait "$pid" || fail "a node exited non-zero after SIGTERM"
done

for node in a b; do
    "$SINKD_BINARY" contacts --state "$E2E_DIR/$node" --all --justification "$E2E_WHY" \
        >"$E2E_DIR/$node.jsonl" || fail "contacts of node $node"
done
"$SINKD_BINARY" report --registry "$url" --format summary-json >"$E2E_DIR/registry.json" \
    2>"$E2E_DIR/report.err" || fail "report from the registry: $(cat "$E2E_DIR/report.err")"
# Rows of victims' data: read with a justification, the access record into node a's log.
"$SINKD_BINARY" report --justification "$E2E_WHY" --state "$E2E_DIR/a" --registry "$url" \
    --format csv --no-as-names >"$E2E_DIR/registry.csv" 2>"$E2E_DIR/report.err" ||
    fail "csv report from the registry: $(cat "$E2E_DIR/report.err")"
"$SINKD_BINARY" report --justification "$E2E_WHY" --state "$E2E_DIR/a" --registry "$url" \
    --format intelmq --no-as-names >"$E2E_DIR/registry.jsonl" 2>"$E2E_DIR/report.err" ||
    fail "intelmq report from the registry: $(cat "$E2E_DIR/report.err")"
psql "$url" -Atc "SELECT key, value FROM meta WHERE key LIKE 'next_index:%' ORDER BY key" \
    >"$E2E_DIR/applied.txt"

python3 - "$E2E_DIR" <<'PY' || fail "contacts through haproxy: see above"
import csv, ipaddress, json, sys
d = sys.argv[1]
swarm = json.load(open(f"{d}/swarm.json"))
logs, applied = {}, {}
for node in ("a", "b"):
    logs[node] = [json.loads(l) for l in open(f"{d}/{node}.jsonl")]
contacts = {n: [r for r in recs if r.get("kind") == "contact"] for n, recs in logs.items()}
beats = {n: [r for r in recs if r.get("kind") == "heartbeats"] for n, recs in logs.items()}
print("contacts per node:", {n: len(c) for n, c in contacts.items()}, "swarm:",
      {k: swarm[k] for k in ("bots_run", "bots_replied", "contacts_sent", "replies_received")})
# Both nodes served (haproxy spread the bots by address).
assert all(len(contacts[n]) + sum(b["count"] for b in beats[n]) > 100 for n in contacts), \
    "one node got (almost) nothing"
# Every bot answered, nothing refused, reset or timed out on the way through haproxy.
e = swarm["errors"]
assert swarm["bots_replied"] == swarm["bots_run"] == 300, swarm
assert e["reset"] == 0 and e["timeout"] == 0 and e["protocol"] == 0, e
# Every answered contact is in a log, and every logged contact was one the swarm sent (a reply
# stands for a durable contact; a contact in flight when the swarm stopped may have no reply).
# (A bot's later polls are rolled up into heartbeats records: they count too.)
total = sum(len(c) for c in contacts.values()) + sum(b["count"] for bs in beats.values() for b in bs)
assert swarm["replies_received"] <= total <= swarm["contacts_sent"], (total, swarm)
# The addresses recorded are the bots' own from PROXY v2, the peer is haproxy's (127.0.0.2).
for n, cs in contacts.items():
    for c in cs:
        src = ipaddress.ip_address(c["src_ip"])
        assert not src.is_loopback and not src.is_private, ("not a bot's address", n, c)
        assert c.get("peer_ip") == "127.0.0.2", ("the TCP peer is not haproxy", n, c)
        assert c["node"] == f"node-{n}", (n, c)
# Exactly one node's log holds each connection (the bot's address and port in its PROXY header).
conns = {n: {(c["src_ip"], c["src_port"]) for c in cs} for n, cs in contacts.items()}
both = conns["a"] & conns["b"]
assert not both, f"{len(both)} connections are in both nodes' logs, e.g. {sorted(both)[:3]}"
# The registry: each log applied to its end, every contact counted once, each bot once.
reg = json.load(open(f"{d}/registry.json"))
rows = list(csv.DictReader(open(f"{d}/registry.csv")))
# A passive sinkhole knows its bots by address (bot_key is empty): one bot per source address.
keys = {c["src_ip"] for cs in list(contacts.values()) + list(beats.values()) for c in cs}
applied = sorted(int(l.split("|")[1]) for l in open(f"{d}/applied.txt") if l.strip())
print("registry:", {k: reg[k] for k in ("unique_bots", "unique_ips", "contacts")},
      "days:", sum(x["contacts"] for x in reg["days"]), "applied:", applied, "bot rows:", len(rows))
assert len(applied) == 2, applied
assert sum(x["contacts"] for x in reg["days"]) == total, (reg["days"], total)
assert reg["unique_bots"] == len(rows) == len(keys), (reg["unique_bots"], len(rows), len(keys))
for r in rows:
    src = ipaddress.ip_address(r["src_ip"])
    assert not src.is_loopback and not src.is_private, ("registry holds haproxy's address", r)
# Cross-node views: each bot row names the node of its latest contact (IntelMQ's
# extra.sinkd.node), and the summary counts bots per node; both agree with the logs.
# (A bot without identity, every bot of a passive sinkhole, is keyed by its address:
# event_bot_key = the first 16 bytes of SHA-256 over "<family>\nip:<address>".)
import hashlib
def key_of(c):
    if c.get("bot_key"):
        return c["bot_key"]
    return hashlib.sha256(f"{c['family']}\nip:{c['src_ip']}".encode()).hexdigest()[:32]
last = {}
for n in contacts:
    for c in contacts[n] + beats[n]:
        k = key_of(c)
        if k not in last or c["time"] >= last[k][0]:
            last[k] = (c["time"], c["node"])
events = [json.loads(l) for l in open(f"{d}/registry.jsonl")]
assert len(events) == len(rows), (len(events), len(rows))
for e in events:
    assert e["extra.sinkd.node"] == last[e["extra.sinkd.bot_key"]][1], e
per_node = {x["node"]: x["bots"] for x in reg["nodes"]}
want = {}
for t, node in last.values():
    want[node] = want.get(node, 0) + 1
assert per_node == want and set(per_node) == {"node-a", "node-b"}, (per_node, want)
print("bots by node of their latest contact:", per_node)
PY
for node in node-a node-b; do
    grep -q "sinkd_nodes/$node" "$E2E_DIR/haproxy.log" || fail "haproxy's log shows no connection to $node"
done

# Cross-node verification: both logs checked, and the totals the shared registry claims
# recounted from their verified entries.
verify_nodes() {
    "$SINKD_BINARY" verify "$E2E_DIR/a/log" --key "$E2E_DIR/a/keys/log.vkey" \
        "$E2E_DIR/b/log" --key "$E2E_DIR/b/keys/log.vkey" "$@" >"$E2E_DIR/verify.out" 2>&1
}
verify_nodes --registry "$url" || fail "verify of both logs and the registry: $(cat "$E2E_DIR/verify.out")"
grep -q "OK: 2 logs, and the registry's cross-node totals agree" "$E2E_DIR/verify.out" ||
    fail "verify: $(cat "$E2E_DIR/verify.out")"
grep -q "bots: 300 in the logs, 300 in the registry" "$E2E_DIR/verify.out" ||
    fail "verify does not name the bots: $(cat "$E2E_DIR/verify.out")"
grep -q "$SINKD_PG_HOST" "$E2E_DIR/verify.out" && fail "verify echoed the registry URL"
# One log left out: the registry's totals cannot be checked without it.
rc=0
"$SINKD_BINARY" verify "$E2E_DIR/a/log" --key "$E2E_DIR/a/keys/log.vkey" --registry "$url" \
    >"$E2E_DIR/verify.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "also holds log" "$E2E_DIR/verify.out" ||
    fail "verify of one log against the shared registry: rc $rc: $(cat "$E2E_DIR/verify.out")"
# A key given twice, or a LOG_DIR without its key, is a usage error.
rc=0
"$SINKD_BINARY" verify "$E2E_DIR/a/log" --key "$E2E_DIR/a/keys/log.vkey" "$E2E_DIR/b/log" \
    --registry "$url" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "a LOG_DIR without --key: rc $rc"
rc=0
"$SINKD_BINARY" verify "$E2E_DIR/a/log" --key "$E2E_DIR/a/keys/log.vkey" "$E2E_DIR/a/log" \
    --key "$E2E_DIR/a/keys/log.vkey" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "the same log twice: rc $rc"
# The registry altered behind the logs' back: one more contact on a day, one bot row fewer.
psql "$url" -qc "UPDATE day_cc SET contacts = contacts + 1 WHERE ctid = (SELECT min(ctid) FROM day_cc)"
rc=0
verify_nodes --registry "$url" || rc=$?
[ "$rc" = 1 ] && grep -q "contacts: .* <- MISMATCH" "$E2E_DIR/verify.out" ||
    fail "a registry counting one contact too many passed verify: rc $rc: $(cat "$E2E_DIR/verify.out")"
psql "$url" -qc "UPDATE day_cc SET contacts = contacts - 1 WHERE ctid = (SELECT min(ctid) FROM day_cc)"
verify_nodes --registry "$url" || fail "verify after the repair: $(cat "$E2E_DIR/verify.out")"
psql "$url" -qc "DELETE FROM bot WHERE id = (SELECT max(id) FROM bot)"
rc=0
verify_nodes --registry "$url" || rc=$?
[ "$rc" = 1 ] && grep -q "bots: 300 in the logs, 299 in the registry  <- MISMATCH" "$E2E_DIR/verify.out" ||
    fail "a registry missing a bot passed verify: rc $rc: $(cat "$E2E_DIR/verify.out")"
echo "ok: haproxy -> 2 nodes -> PostgreSQL"
