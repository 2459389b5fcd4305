#!/usr/bin/env bash
# fidelity_test.sh -- issue 18: every caller recorded, nothing asked of a bot, by an independent bot
# (tests/e2e/plugx_bot.py, written from public descriptions): header-form HTTP check-ins in every
# naming and both paths are answered with a poll in the response body and counted by source
# address; raw packets are answered 0x1000 (never 0x1001); an unknown variant, garbage and a
# browser's GET are recorded as undecoded contacts (not reset as attackers), within the
# per-address bound, with the bytes kept under --keep-raw.
. "$(dirname "$0")/lib.sh"
bot="$SINKD_SOURCE_DIR/tests/e2e/plugx_bot.py"
port=$(free_port)
start_server "$E2E_DIR/state" "$port" --keep-raw --undecoded-per-ip 3 --undecoded-window-s 600
run_bot() { python3 "$bot" "$@" 127.0.0.1 "$port" >>"$E2E_DIR/bot.jsonl" || fail "bot $*"; }

# 1. Header form, each naming, both paths; keep-alive and one connection per check-in.
i=10
for names in x hhv digit; do
    for url in hex24 update; do
        i=$((i + 1))
        run_bot header --names "$names" --url "$url" --count 3 --keep-alive --source "127.0.2.$i"
        i=$((i + 1))
        run_bot header --names "$names" --url "$url" --count 2 --source "127.0.2.$i"
    done
done
# 2. Raw packets: answered with polls only.
run_bot body --count 4 --source 127.0.2.50
# 3. Callers no table decodes: 5 of each from one address (the bound records 3 per address).
for _ in 1 2 3 4 5; do run_bot unknown --source 127.0.2.60; done
run_bot garbage --source 127.0.2.61
run_bot get --source 127.0.2.62
stop_server

python3 - "$E2E_DIR/bot.jsonl" <<'PY' || fail "what the bot saw"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
headers = [l for l in lines if l["mode"] == "header"]
assert len(headers) == 12, len(headers)
for h in headers:
    for r in h["responses"]:
        # A 200 whose body is exactly one family-A packet: poll 0x1000, never 0x1001.
        assert r["status"] == 200, h
        assert [p[0] for p in r["packets"]] == [0x1000], h
body = [l for l in lines if l["mode"] == "body"][0]
assert all([p[0] for p in rep] == [0x1000] for rep in body["replies"]), body
for l in lines:
    if l["mode"] in ("unknown", "garbage"):
        assert l["closed"] and l["reply"] == "", l   # a gentle close, nothing said
    if l["mode"] == "get":
        assert l["reply"].startswith("485454502f312e3120343034"), l  # "HTTP/1.1 404"
PY

"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$E2E_DIR/state" --all >"$E2E_DIR/all.jsonl" || fail "contacts"
python3 - "$E2E_DIR/all.jsonl" "$E2E_DIR/state" <<'PY' || fail "the log"
import hashlib, json, os, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
contacts = [r for r in recs if r["kind"] == "contact"]
beats = [r for r in recs if r["kind"] == "heartbeats"]
# Header form: 12 bots at 12 addresses, each counted; 3+2 check-ins per naming/path pair.
hdr = [c for c in contacts if c["transport"] == "http-header"]
hdr_ips = {c["src_ip"] for c in hdr} | {b["src_ip"] for b in beats if b["transport"] == "http-header"}
assert len(hdr_ips) == 12, sorted(hdr_ips)
polls = len(hdr) + sum(b["count"] for b in beats if b["transport"] == "http-header")
assert polls == 6 * (3 + 2), polls
assert all(c["type"] in ("hello", "heartbeat") and c["host"] == "" for c in hdr)
# No bot was asked for anything: no decision, no command record at all.
assert not [r for r in recs if r["kind"] in ("decision", "command-sent", "command-failed")]
# Undecoded: 3 of the 5 unknown-variant contacts recorded (the bound), the 4th and 5th counted
# into none yet (they come after the last record), garbage and GET once each.
und = [c for c in contacts if c["type"] == "undecoded"]
by_ip = {}
for c in und:
    by_ip.setdefault(c["src_ip"], []).append(c)
assert len(by_ip.get("127.0.2.60", [])) == 3, by_ip.keys()
assert len(by_ip["127.0.2.61"]) == 1 and len(by_ip["127.0.2.62"]) == 1
get = by_ip["127.0.2.62"][0]
assert get["transport"] == "http" and "GET" in get["reason"], get
for c in und:
    assert c["size"] > 0 and 0 < c["head_len"] <= c["size"], c
    # --keep-raw keeps the bytes themselves, named by the digest the record carries.
    h = c["head_sha256"]
    path = os.path.join(sys.argv[2], "raw", h[:2], h)
    data = open(path, "rb").read()
    assert hashlib.sha256(data).hexdigest() == h and len(data) == c["head_len"], c
stopped = [r for r in recs if r["kind"] == "node-stopped"][-1]
d = json.loads(stopped["detail"])
assert d["undecoded"] == 5 and d["undecoded_suppressed"] == 2, d
assert d["bad_peers"] == 0 and d["held"] == 0, d   # nobody was treated as an attacker
PY

# Reports count undecoded callers apart from the bots.
"$SINKD_BINARY" report --justification "$E2E_WHY" --state "$E2E_DIR/state" --format summary-json >"$E2E_DIR/summary.json" ||
    fail "report"
[ "$(json_field "$E2E_DIR/summary.json" 'd["undecoded_ips"]')" = 3 ] || fail "undecoded ips in the summary"
[ "$(json_field "$E2E_DIR/summary.json" 'd["undecoded_contacts"]')" = 5 ] || fail "undecoded contacts"
[ "$(json_field "$E2E_DIR/summary.json" 'd["unique_bots"]')" = 13 ] || fail "bots: 12 header-form + 1 raw"
[ "$(json_field "$E2E_DIR/summary.json" 'd["identified_bots"]')" = 0 ] || fail "identified"
echo "fidelity_test: ok"
