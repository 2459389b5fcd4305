#!/usr/bin/env bash
# seal_test.sh -- victims' personal data sealed in the evidence log (issue 20 #2, #7): after a
# swarm, no file of the state directory but the registry (the derived view reports read, which
# erase scrubs) holds any bot's host name, source address (as text, or as the 4 address bytes
# and port the leaf would carry) or user name; epoch keys are 0600 in a 0700 directory; with the
# keys readers open every record, without them records show their clear fields and the per-epoch
# pseudonym counts exactly the unique bots; a bundle carries per-record keys that open exactly
# its records in sinkd, Go and Python, and a changed key or sealed byte is refused by all three.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 2
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 60 --duration 3 --concurrency 60 --volunteer-share 1 \
    --heartbeat-ms 500 >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"
stop_server
"$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" >"$E2E_DIR/open.jsonl"

# What must not be found: every host name, user name and source address, in the forms a file
# could hold them.
python3 - "$E2E_DIR/open.jsonl" "$state" <<'PY' || fail "personal data found outside the registry"
import ipaddress, json, os, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
hosts = {r["host"] for r in recs if r.get("host")}
users = {r["user"] for r in recs if len(r.get("user", "")) >= 6}
addrs = {(r["src_ip"], r["src_port"]) for r in recs if r.get("src_ip")}
assert len(hosts) >= 30 and len(addrs) >= 30, (len(hosts), len(addrs))
needles = {}
for h in hosts | users:
    needles[h.encode()] = h
    needles[h.encode("utf-16-le")] = h + " (UTF-16LE)"
for ip, port in addrs:
    needles[ip.encode()] = ip
    needles[ipaddress.ip_address(ip).packed + port.to_bytes(2, "big")] = "%s:%d (binary)" % (ip, port)
found = []
for root, dirs, files in os.walk(sys.argv[2]):
    for f in files:
        path = os.path.join(root, f)
        rel = os.path.relpath(path, sys.argv[2])
        if rel.startswith("registry.db"):
            continue
        data = open(path, "rb").read()
        found += ["%s in %s" % (what, rel) for n, what in needles.items() if n in data]
if found:
    print("\n".join(found[:10]), file=sys.stderr)
    sys.exit(1)
print("searched for %d names and addresses: none outside the registry" % len(needles))
PY
# ... and the registry does hold them (the view reports read; erase scrubs it).
python3 - "$state/registry.db" "$E2E_DIR/open.jsonl" <<'PY' || fail "the registry does not hold the hosts (the test would show nothing)"
import json, sys
data = open(sys.argv[1], "rb").read()
hosts = {json.loads(l)["host"] for l in open(sys.argv[2]) if json.loads(l).get("host")}
assert any(h.encode() in data for h in hosts)
PY

[ "$(stat -c %a "$state/keys/epochs")" = 700 ] || fail "keys/epochs is not 0700"
for k in "$state"/keys/epochs/*.key; do
    [ "$(stat -c %a "$k")" = 600 ] || fail "$k is not 0600"
    grep -q "^sinkd epoch key v1$" "$k" || fail "$k: not an epoch key file"
done

# Without the keys: clear fields only, marked sealed; unique bots per epoch from the pseudonym.
mv "$state/keys/epochs" "$E2E_DIR/epochs.away"
"$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" >"$E2E_DIR/sealed.jsonl"
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/sealed-summary.json"
# (its access record was sealed under a new key of the epoch, with another id: it goes here)
rm -rf "$state/keys/epochs"
mv "$E2E_DIR/epochs.away" "$state/keys/epochs"
python3 - "$E2E_DIR/open.jsonl" "$E2E_DIR/sealed.jsonl" <<'PY' || fail "records without their keys are wrong"
import json, sys
opened = [json.loads(l) for l in open(sys.argv[1])]
sealed = [json.loads(l) for l in open(sys.argv[2])]
# the sealed listing also shows the access record the opened listing appended
sealed = [s for s in sealed if s["index"] < len(opened)]
assert len(opened) == len(sealed)
personal = ("src_ip", "host", "user", "local_ip", "bot_key")
bots_by_epoch, refs_by_epoch = {}, {}
for o, s in zip(opened, sealed):
    assert o["index"] == s["index"] and o["kind"] == s["kind"]
    if o["kind"] == "heartbeats" and o.get("described_in"):
        # Names the leaf that describes its bot and holds no personal field: not sealed. With
        # the keys `contacts` fills it in from that (sealed) leaf; without them it cannot.
        assert "sealed" not in s and 0 < s["described_in"] < s["index"], s
        for k in personal + ("family", "dst_ip", "node"):
            assert not s.get(k), (k, s)
        assert o.get("src_ip") and o.get("family"), o
        for k in ("time", "first_time", "count", "cc", "asn", "heartbeats_sha256", "described_in"):
            assert s.get(k) == o.get(k), (k, o.get(k), s.get(k))
        continue
    if o["kind"] in ("contact", "decision", "command-sent", "command-failed", "heartbeats"):
        assert "sealed" in s, s
        for k in personal:
            assert not s.get(k), (k, s)
        for k in ("time", "family", "type", "cc", "asn", "body_sha256", "transport", "dst_ip"):
            assert s.get(k) == o.get(k), (k, o.get(k), s.get(k))
        if o.get("bot_key"):
            ep = s["sealed"]["epoch"]
            bots_by_epoch.setdefault(ep, set()).add(o["bot_key"])
            refs_by_epoch.setdefault(ep, set()).add(s["sealed"]["bot_ref"])
    elif o["kind"] == "access":
        assert "sealed" in s and not s["scope"] and o["scope"], (o, s)
    else:
        assert "sealed" not in s and o == s, (o, s)
assert bots_by_epoch and all(len(bots_by_epoch[e]) == len(refs_by_epoch[e]) for e in bots_by_epoch), \
    ({e: len(b) for e, b in bots_by_epoch.items()}, {e: len(r) for e, r in refs_by_epoch.items()})
PY

# Without the keys the summary knows no address and no bot, yet every poll counts: the polls of
# heartbeats records naming a sealed leaf among the sealed contacts, their transport in the clear.
python3 - "$E2E_DIR/sealed-summary.json" <<'PY' || fail "the summary without keys: $(cat "$E2E_DIR/sealed-summary.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["unique_source_ips"] == 0 and s["unique_bots"] == 0, s
undecoded = s["by_type"].get("undecoded", 0)
assert s["sealed_contacts"] == s["contacts"], s
assert sum(s["by_transport"].values()) == s["contacts"] - undecoded, s
assert s["heartbeats_records"] > 0, s
PY

# A bundle discloses exactly its records: their keys open them in sinkd, Go and Python.
bot=$(python3 -c 'import json,sys; print(next(json.loads(l)["bot_key"] for l in open(sys.argv[1]) if json.loads(l).get("type") == "machine-info"))' "$E2E_DIR/open.jsonl")
"$SINKD_BINARY" prove --state "$state" --bot "$bot" --out "$E2E_DIR/bundle" --justification "$E2E_WHY" >/dev/null ||
    fail "prove"
n=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum("seal_key" in e for e in m["entries"]))' "$E2E_DIR/bundle/bundle.json")
[ "$n" -ge 2 ] || fail "the bundle carries $n seal keys"
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" --key "$state/keys/log.vkey" | grep -q "$n sealed entries opened" ||
    fail "verify-bundle did not open the $n sealed entries"
python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py" "$E2E_DIR/bundle" "$state/keys/log.vkey" >"$E2E_DIR/py.txt" ||
    fail "the Python verifier rejects the sealed bundle"
grep -q "$n sealed entries opened" "$E2E_DIR/py.txt" || fail "Python: $(tail -1 "$E2E_DIR/py.txt")"
host=$(python3 -c 'import json,sys; print(next(json.loads(l)["host"] for l in open(sys.argv[1]) if json.loads(l).get("bot_key") == sys.argv[2] and json.loads(l).get("host")))' "$E2E_DIR/open.jsonl" "$bot")
grep -q "host=$host" "$E2E_DIR/py.txt" || fail "Python did not read the bot's host $host from its sealed record"
gocheck="$E2E_DIR/tlogcheck"
(cd "$SINKD_SOURCE_DIR/tests/go" && GOCACHE="$E2E_DIR/gocache" GO111MODULE=off GOPATH=/usr/share/gocode \
    GOFLAGS=-mod=mod go build -o "$gocheck" tlogcheck.go) || fail "cannot build the Go verifier"
"$gocheck" bundle "$E2E_DIR/bundle" "$state/keys/log.vkey" | grep -q "$n sealed entries opened" ||
    fail "the Go verifier did not open the sealed entries"
# the bundle's files hold the key only for its own records: no epoch key, no other record's key
grep -rq "$(sed -n 's/^key //p' "$state"/keys/epochs/*.key | head -1)" "$E2E_DIR/bundle" && fail "an epoch key is in the bundle"

# A changed seal key, nonce or sealed byte: refused by all three.
tamper() { # what, python that edits (m: bundle.json, e: the first sealed entry, d: bundle dir)
    rm -rf "$E2E_DIR/t" && cp -a "$E2E_DIR/bundle" "$E2E_DIR/t"
    python3 - "$E2E_DIR/t" <<PY
import json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "bundle.json")))
e = next(x for x in m["entries"] if "seal_key" in x)
$2
json.dump(m, open(os.path.join(d, "bundle.json"), "w"), indent=1)
PY
    "$SINKD_BINARY" verify-bundle "$E2E_DIR/t" --key "$state/keys/log.vkey" >/dev/null 2>&1 && fail "sinkd accepted $1"
    python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py" "$E2E_DIR/t" "$state/keys/log.vkey" >/dev/null 2>&1 &&
        fail "Python accepted $1"
    "$gocheck" bundle "$E2E_DIR/t" "$state/keys/log.vkey" >/dev/null 2>&1 && fail "Go accepted $1"
    return 0
}
tamper "a changed seal key" 'e["seal_key"] = ("0" if e["seal_key"][0] != "0" else "1") + e["seal_key"][1:]'
tamper "a changed nonce" 'e["seal_nonce"] = ("0" if e["seal_nonce"][0] != "0" else "1") + e["seal_nonce"][1:]'
tamper "another record's key" 'o = [x for x in m["entries"] if "seal_key" in x and x is not e][0]; e["seal_key"], e["seal_nonce"] = o["seal_key"], o["seal_nonce"]'
echo "seal: no name or address outside the registry; keys open exactly the bundle's records"
