#!/usr/bin/env bash
# serve_swarm_test.sh -- the real server against real emulated bots: every bot the swarm ran is
# recorded, every reply a bot got stands for a message the log vouches for, `contacts` prints what
# scripts rely on, SIGTERM drains and exits 0, a restart appends to the same log.
# The first run is the worm's own mix (--preset worm: raw, HTTP body and header forms, a few bots
# of a variant no table knows) against a passive server: bots are counted by address, nothing is
# asked of any. The second has every bot volunteer its machine information: identities recorded.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 2
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 400 --duration 6 --concurrency 400 \
    --source-net 127.0.1.0/24 --heartbeat-ms 500 --preset worm \
    --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"
stop_server

"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all >"$E2E_DIR/all.jsonl" || fail "contacts failed"
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/summary.json" || fail "summary failed"

python3 - "$E2E_DIR/swarm.json" "$E2E_DIR/summary.json" "$E2E_DIR/all.jsonl" <<'PY' || fail "numbers do not add up"
import collections, json, sys
swarm = json.load(open(sys.argv[1]))
summary = json.load(open(sys.argv[2]))
recs = [json.loads(l) for l in open(sys.argv[3])]
rows = [r for r in recs if r["kind"] == "contact"]
beats = [r for r in recs if r["kind"] == "heartbeats"]
def check(cond, what):
    if not cond:
        print("check failed:", what, file=sys.stderr)
        sys.exit(1)
unknown = swarm["kinds"]["unknown"]
check(swarm["bots_run"] == 400, f"swarm ran {swarm['bots_run']} of 400 bots")
check(sum(swarm["errors"].values()) == 0, f"swarm errors {swarm['errors']}")
check(0 < unknown < 40 and swarm["kinds"]["http_header"] > 0 and swarm["kinds"]["raw"] > 0,
      f"the worm's mix: {swarm['kinds']}")
# Passive: no bot was asked for anything, no decision was made.
check(swarm["machine_info"]["requests"] == 0, f"machine information asked: {swarm['machine_info']}")
check(not [r for r in recs if r["kind"] in ("decision", "command-sent", "command-failed")],
      "a passive server decided or sent something")
# Every decoded bot counted once, by address; the unknown-variant bots apart, as undecoded.
# (Bots draw their addresses independently, so two may share one: the swarm counts the addresses.)
check(swarm["bots_replied"] == 400 - unknown, f"bots replied to {swarm['bots_replied']} vs {400 - unknown}")
check(summary["unique_bots"] == swarm["addresses_replied"],
      f"server bots {summary['unique_bots']} vs the replied bots' addresses {swarm['addresses_replied']}")
check(summary["undecoded_source_ips"] == swarm["addresses_unknown"],
      f"undecoded callers {summary['undecoded_source_ips']} vs {swarm['addresses_unknown']}")
check(summary["contacts"] >= swarm["replies_received"] + swarm["unknown"]["contacts_sent"]
      - summary["server"]["undecoded_suppressed"], "every reply stands for a durable message")
check(summary["contacts"] == len(rows) + sum(b["count"] for b in beats), "contacts prints every contact")
check(all(summary["by_transport"][t] > 0 for t in ("tcp", "http", "http-header")), "every transport used")
need = {"index", "time", "src_ip", "src_port", "dst_ip", "dst_port", "transport", "family",
        "command", "type", "host", "user", "os", "local_ip", "campaign", "version", "bot_key"}
for r in rows:
    check(need <= r.keys(), f"fields missing: {need - r.keys()}")
    check(r["family"] == "plugx" and r["dst_ip"] == "127.0.0.1", "family and destination")
    check(not r["src_ip"].startswith("127."), "source is the address presented through PROXY v2")
    check(r["host"] == "" and r["type"] != "machine-info", "a passive server learns no host name")
# Enrichment: the country the server derived (MMDB) for each caller's address equals the country
# the swarm drew it from (ip-location-db ranges): two independent paths through the data.
server_cc = collections.Counter()
seen = set()
for r in rows:
    if r["src_ip"] not in seen:
        seen.add(r["src_ip"])
        server_cc[r["cc"]] += 1
check(dict(server_cc) == swarm["per_country"], f"countries differ: {dict(server_cc)} vs {swarm['per_country']}")
# A few allocated ranges are not announced in BGP, so not every address has an ASN.
with_asn = sum(1 for r in rows if r["asn"] > 0)
check(with_asn >= 0.9 * len(rows), f"only {with_asn} of {len(rows)} bot addresses have an ASN")
idx = [r["index"] for r in recs]
check(idx == sorted(idx) and len(set(idx)) == len(idx), "indices increase")
# Heartbeats records name the earlier leaf that describes their bot instead of repeating it;
# `contacts` fills them in from it: the same address and family as that leaf.
by_index = {r["index"]: r for r in recs}
named = [b for b in beats if b.get("described_in")]
check(len(named) >= len(beats) // 2, f"only {len(named)} of {len(beats)} heartbeats records name a leaf")
for b in named:
    leaf = by_index.get(b["described_in"])
    check(leaf is not None and leaf["index"] < b["index"], f"record {b['index']} names no earlier leaf")
    check(leaf["kind"] in ("contact", "heartbeats") and b["src_ip"] == leaf["src_ip"] != ""
          and b["family"] == leaf["family"] == "plugx", f"record {b['index']} filled in wrongly from {leaf}")
PY

# Bots that volunteer their machine information (not the worm's habit: docs/swarm.md): each is
# recorded under its identity, with host, user and OS.
vstate="$E2E_DIR/volunteer"
start_server "$vstate" "$port" --workers 2
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 100 --duration 3 --concurrency 100 \
    --source-net 127.0.1.0/24 --heartbeat-ms 500 --volunteer-share 1 --http-share 0.3 \
    --cipher mix --json "$E2E_DIR/vswarm.json" >/dev/null || fail "volunteer swarm"
stop_server
"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$vstate" >"$E2E_DIR/v.jsonl" || fail "contacts"
"$SINKD_BINARY" contacts --state "$vstate" --summary >"$E2E_DIR/vsummary.json" || fail "summary"
python3 - "$E2E_DIR/vswarm.json" "$E2E_DIR/vsummary.json" "$E2E_DIR/v.jsonl" <<'PY' || fail "identities"
import json, sys
swarm = json.load(open(sys.argv[1]))
summary = json.load(open(sys.argv[2]))
rows = [json.loads(l) for l in open(sys.argv[3])]
infos = [r for r in rows if r["type"] == "machine-info"]
assert swarm["machine_info"]["volunteered"] >= 100, swarm["machine_info"]
assert infos and all(r["host"] and r["user"] and r["os"] for r in infos), "machine-info carries identity"
assert len({r["bot_key"] for r in infos}) == swarm["bots_run"] == 100, len({r["bot_key"] for r in infos})
assert summary["contacts"] >= swarm["replies_received"], (summary["contacts"], swarm["replies_received"])
# Each connection's hello carries no identity: counted by address until the bot identifies
# itself, then folded into it, as the registry counts (docs/registry.md): 100 bots, not 200.
assert summary["unique_bots"] == 100, summary["unique_bots"]
PY

# poll_answered HOST PORT: one empty PlugX poll to HOST, which must be answered.
poll_answered() {
    python3 - "$SINKD_SOURCE_DIR/tests/e2e" "$1" "$2" <<'PY'
import socket, sys
sys.path.insert(0, sys.argv[1])
import hostile
s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5)
s.sendall(hostile.packet(0x1000))
assert len(s.recv(64)) >= 16
PY
}

# A restart appends to the same log: the contacts of the first run are still there. This time
# the server listens on IPv4 and IPv6 loopback at once, and a bot calls on each.
before=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" | wc -l)
start_server "$state" "$port" --workers 1 --listen "[::1]:$port"
python3 "$SINKD_SOURCE_DIR/tests/e2e/hostile.py" zero-length "$port" || fail "empty poll not answered"
poll_answered "::1" "$port" || fail "empty poll on [::1] not answered"
stop_server
after=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" | wc -l)
[ "$after" -eq $((before + 2)) ] || fail "after restart: $after contacts, expected $((before + 2))"
"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" | tail -2 | grep -q '"dst_ip":"::1"' || fail "no contact recorded on [::1]"

# A wildcard listener has no single address of its own: the contact names the one the bot
# called (asked of the socket), here 127.0.0.2, not 0.0.0.0 or 127.0.0.1. Only loopback is called.
start_server "$state" "$port" --workers 1 --listen "0.0.0.0:$port"
poll_answered 127.0.0.2 "$port" || fail "poll on 127.0.0.2 not answered"
stop_server
"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" | tail -1 | grep -q '"dst_ip":"127.0.0.2","dst_port":'"$port" ||
    fail "wildcard listener: contact does not name 127.0.0.2:$port: $("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" | tail -1)"

# CLI errors: usage errors exit 2 naming the option, runtime errors exit 1 with one line.
set +e
"$SINKD_BINARY" serve --state "$state" --listen nonsense >/dev/null 2>"$E2E_DIR/err.txt"; s1=$?
"$SINKD_BINARY" serve --state "$state" --bogus >/dev/null 2>>"$E2E_DIR/err.txt"; s2=$?
"$SINKD_BINARY" serve --state "$state" --workers 0 >/dev/null 2>>"$E2E_DIR/err.txt"; s3=$?
set -e
[ "$s1" -eq 2 ] && [ "$s2" -eq 2 ] && [ "$s3" -eq 2 ] || fail "usage errors exit 2 (got $s1 $s2 $s3)"
grep -q -- "--listen" "$E2E_DIR/err.txt" && grep -q -- "--bogus" "$E2E_DIR/err.txt" || fail "usage errors name the option"
# Port in use: a socket without SO_REUSEPORT holds it (sinkd's own workers share theirs).
# (SO_REUSEADDR: the server's own closes left TIME_WAIT sockets on the port.)
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(5)' "$port" &
holder=$!
sleep 0.5
set +e
timeout 10 "$SINKD_BINARY" serve $([ "$(id -u)" -ne 0 ] || echo --allow-root) --state "$E2E_DIR/fourth" --listen "127.0.0.1:$port" >/dev/null 2>"$E2E_DIR/inuse.txt"; s5=$?
set -e
kill "$holder" 2>/dev/null || true
[ "$s5" -eq 1 ] || fail "port in use exits 1 (got $s5)"
grep -q "in use" "$E2E_DIR/inuse.txt" || fail "port in use is said clearly: $(cat "$E2E_DIR/inuse.txt")"
echo "ok"
