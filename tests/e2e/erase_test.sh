#!/usr/bin/env bash
# erase_test.sh -- `sinkd erase` (issue 20 #3, #7) on a live node with 20-second epochs: bots of
# an ended epoch are erased while serve runs, bots of the current epoch are kept. Afterwards no
# file of the state directory, the registry included, holds an erased bot's host name or address;
# the kept bots are still there; sinkd verify and the independent Go verifier pass; counts per day
# are the same before and after; contacts shows the erased records with their clear fields only
# and says "erased"; the log holds an erasure record naming the legal basis; prove of an erased
# record says so and when; the erased epoch is never written again; usage errors are refused.
source "$(dirname "$0")/lib.sh"

# A mistyped directory (no evidence log) is refused before anything is written into it: no
# journal/, log/, spool/ or pending erasure record a later serve would make entry 0 of a log.
empty="$E2E_DIR/empty"
mkdir -p "$empty"
status=0
"$SINKD_BINARY" erase --state "$empty" --before 2026-01-01 --legal-basis "court order 2026/17" \
    >"$E2E_DIR/empty.txt" 2>&1 || status=$?
[ "$status" -eq 1 ] || fail "erase on an empty directory: exit $status, not 1: $(cat "$E2E_DIR/empty.txt")"
grep -q "holds no evidence log" "$E2E_DIR/empty.txt" || fail "erase on an empty directory: $(cat "$E2E_DIR/empty.txt")"
[ -z "$(ls -A "$empty")" ] || fail "erase wrote into a directory without a log: $(ls -A "$empty")"

state="$E2E_DIR/state"
mkdir -p "$state/keys/epochs"
echo 20 >"$state/keys/epochs/epoch_seconds"
port=$(free_port)
# Every poll its own record (--heartbeat-interval 0): the counts before and after the erasure are
# compared while serve runs, before a roll-up would have written its pending counts.
start_server "$state" "$port" --workers 1 --heartbeat-interval 0
# First epoch: bots of seed 1, well inside one 20-second epoch.
while [ $(($(date +%s) % 20)) -ge 12 ]; do sleep 0.3; done
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 25 --duration 2 --concurrency 25 --seed 1 --volunteer-share 1 \
    --heartbeat-ms 500 >"$E2E_DIR/swarm1.txt" || fail "swarm 1"
"$SINKD_BINARY" contacts --state "$state" --justification "$E2E_WHY" >"$E2E_DIR/first.jsonl"
first_epoch_end=$(python3 -c 'import json,sys; t=max(json.loads(l)["time"] for l in open(sys.argv[1])); import datetime; s=int(datetime.datetime.strptime(t[:19],"%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()); print(s - s % 20 + 20)' "$E2E_DIR/first.jsonl")
# An erasure inside the first epoch: no epoch is wholly before TIME, so no key goes and nothing
# may be scrubbed: the erasure record's time is 0, the line says nothing was erased.
"$SINKD_BINARY" erase --state "$state" --before "$(date -u '+%Y-%m-%d %H:%M:%S')" \
    --legal-basis "court order 2026/16" >"$E2E_DIR/erase0.txt" 2>&1 || fail "erase inside the epoch: $(cat "$E2E_DIR/erase0.txt")"
grep -q "0 epoch key(s) destroyed; no epoch ended before .* nothing erased, nothing scrubbed" "$E2E_DIR/erase0.txt" ||
    fail "erase inside the first epoch: $(cat "$E2E_DIR/erase0.txt")"
# Wait until that epoch ended (and the grace of 10 s passed), then bots of seed 2.
while [ "$(date +%s)" -lt $((first_epoch_end + 11)) ]; do sleep 0.5; done
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 25 --duration 2 --concurrency 25 --seed 2 --volunteer-share 1 \
    --heartbeat-ms 500 >"$E2E_DIR/swarm2.txt" || fail "swarm 2"
"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/before.json" || fail "summary before"
"$SINKD_BINARY" contacts --state "$state" --justification "$E2E_WHY" >"$E2E_DIR/all.jsonl"
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/summary-before.json" || fail "contacts --summary before"

# Usage errors.
for bad in "--before 2999-01-01 --legal-basis court-order-17" "--before 2026-01-01" \
    "--before yesterday --legal-basis court-order-17" "--legal-basis court-order-17" \
    "--before 2026-01-01 --older-than 3 --legal-basis court-order-17" \
    "--before 2026-01-01 --legal-basis short"; do
    status=0
    # shellcheck disable=SC2086
    "$SINKD_BINARY" erase --state "$state" $bad >/dev/null 2>"$E2E_DIR/err" || status=$?
    [ "$status" -eq 2 ] || fail "erase $bad: exit $status, not 2: $(cat "$E2E_DIR/err")"
done
# TIME is now, inside the second epoch (its bots' key stays): the effective erasure time is the
# first epoch's end, and neither the registry nor serve may erase more than that.
before="$(date -u '+%Y-%m-%d %H:%M:%S')"
"$SINKD_BINARY" erase --state "$state" --before "$before" \
    --legal-basis "court order 2026/17" --dry-run >"$E2E_DIR/dry.txt" || fail "dry run"
grep -q "dry run: 1 epoch key(s) would be destroyed" "$E2E_DIR/dry.txt" || fail "dry run: $(cat "$E2E_DIR/dry.txt")"

# The erasure, while serve runs.
"$SINKD_BINARY" erase --state "$state" --before "$before" --legal-basis "court order 2026/17, Art. 16 LED" \
    --operator "dpo@cert.example" >"$E2E_DIR/erase.txt" 2>&1 || fail "erase: $(cat "$E2E_DIR/erase.txt")"
grep -q "1 epoch key(s) destroyed" "$E2E_DIR/erase.txt" || fail "erase: $(cat "$E2E_DIR/erase.txt")"
eff="$(date -u -d "@$first_epoch_end" '+%Y-%m-%dT%H:%M:%S')"
grep -q "personal data recorded before $eff.* stays readable until a later erase" "$E2E_DIR/erase.txt" ||
    fail "erase does not name the effective time $eff: $(cat "$E2E_DIR/erase.txt")"
ls "$state/keys/epochs" | grep -q '\.erased$' || fail "no tombstone"
# serve's writer appends the erasure record (within ~200 ms); its follower applies it, at the
# latest when serve stops (the follower applies everything durable before it exits).
# (The second erasure record: the first is the one inside the first epoch.)
for _ in $(seq 1 100); do
    [ "$("$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" | grep -c '"kind":"erasure"')" -ge 2 ] && break
    sleep 0.2
done
[ "$("$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" | grep -c '"kind":"erasure"')" -ge 2 ] ||
    fail "serve never appended the spooled erasure record"
stop_server

# Nothing of the first epoch's bots anywhere; the second epoch's bots still there.
python3 - "$state" "$E2E_DIR/all.jsonl" "$first_epoch_end" <<'PY' || fail "erased personal data is still in the state directory, or kept data is gone"
import datetime, ipaddress, json, os, sys
state, end = sys.argv[1], int(sys.argv[3])
recs = [json.loads(l) for l in open(sys.argv[2])]
def t(r):
    return int(datetime.datetime.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp())
old = [r for r in recs if t(r) < end]
new = [r for r in recs if t(r) >= end]
assert len(old) > 25 and len(new) > 25, (len(old), len(new))
def needles(rs):
    out = {}
    for r in rs:
        if r.get("host"):
            out[r["host"].encode()] = r["host"]
        if r.get("src_ip"):
            out[r["src_ip"].encode()] = r["src_ip"]
            out[ipaddress.ip_address(r["src_ip"]).packed + r["src_port"].to_bytes(2, "big")] = r["src_ip"] + " (binary)"
    return out
gone, kept = needles(old), needles(new)
for k in list(gone):
    if k in kept:
        del gone[k]  # an address both swarms drew
blob = {}
for root, dirs, files in os.walk(state):
    for f in files:
        p = os.path.join(root, f)
        blob[os.path.relpath(p, state)] = open(p, "rb").read()
found = ["%s in %s" % (w, f) for n, w in gone.items() for f, d in blob.items() if n in d]
assert not found, found[:10]
reg = blob["registry.db"]
assert any(n in reg for n in kept if not n.endswith(b")")), "the kept bots left the registry"
print("erased: %d names and addresses gone from every file; kept bots still in the registry" % len(gone))
PY

"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" || fail "verify after erase"
gocheck="$E2E_DIR/tlogcheck"
(cd "$SINKD_SOURCE_DIR/tests/go" && GOCACHE="$E2E_DIR/gocache" GO111MODULE=off GOPATH=/usr/share/gocode \
    GOFLAGS=-mod=mod go build -o "$gocheck" tlogcheck.go) || fail "cannot build the Go verifier"
"$gocheck" log "$state/log" "$state/keys/log.vkey" >/dev/null || fail "the Go verifier rejects the log after erase"

# The registry agrees with the log: the second epoch's bots (their key is still there) keep their
# addresses in the victims' rows; only the first epoch's are blank.
"$SINKD_BINARY" report --state "$state" --format csv --justification "$E2E_WHY" >"$E2E_DIR/after.csv" || fail "csv after"
python3 - "$E2E_DIR/after.csv" "$E2E_DIR/all.jsonl" "$first_epoch_end" <<'PY' || fail "the registry erased more than the destroyed key"
import csv, datetime, sys
rows = list(csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#")))
have = {r["src_ip"] for r in rows if r.get("src_ip")}
end = int(sys.argv[3])
def t(r):
    return int(datetime.datetime.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp())
import json
new = {json.loads(l)["src_ip"] for l in open(sys.argv[2]) if json.loads(l).get("src_ip") and t(json.loads(l)) >= end}
assert new and new <= have, (len(new), len(have), sorted(new - have)[:5])
PY

# Counts and times still report.
"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/after.json" || fail "summary after"
python3 - "$E2E_DIR/before.json" "$E2E_DIR/after.json" <<'PY' || fail "counts changed with the erasure"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["days"] == b["days"], (a["days"], b["days"])
for k in ("bots", "unique_ips", "contacts"):
    if k in a:
        assert a[k] == b[k], (k, a[k], b[k])
PY

# contacts: erased records keep their clear fields and say why the rest is missing.
"$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" >"$E2E_DIR/after.jsonl"
python3 - "$E2E_DIR/after.jsonl" "$first_epoch_end" <<'PY' || fail "contacts after erase"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
erased = [r for r in recs if r.get("sealed", {}).get("personal_data") == "erased"]
assert len(erased) > 25, len(erased)
for r in erased:
    assert not r.get("host") and not r.get("src_ip") and not r.get("bot_key"), r
    assert r["time"] and r["kind"] in ("contact", "access"), r
    assert r["kind"] != "contact" or (r["family"] == "plugx" and r["cc"] is not None), r
er = [r for r in recs if r["kind"] == "erasure"]
assert len(er) == 2 and er[0]["before"] == "", er  # the one inside the first epoch: nothing
er = er[1:]
assert er[0]["operator"] == "dpo@cert.example", er
import datetime
eff = datetime.datetime.fromtimestamp(int(sys.argv[2]), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
assert er[0]["before"] == eff, (er, eff)  # the effective time: the first epoch's end
assert er[0]["legal_basis"] == "court order 2026/17, Art. 16 LED", er
assert json.loads(er[0]["detail"])["epoch_keys_destroyed"] == 1, er
kept = [r for r in recs if r["kind"] == "contact" and r.get("host")]
assert len(kept) >= 20, len(kept)
PY

# Totals without any key: the erased contacts still count, their bots once per epoch.
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/summary-after.json"
python3 - "$E2E_DIR/summary-after.json" "$E2E_DIR/summary-before.json" <<'PY' || fail "contacts --summary after erase: $(cat "$E2E_DIR/summary-before.json" "$E2E_DIR/summary-after.json")"
import json, sys
s, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert s["sealed_contacts"] > 25 and s["sealed_bot_epochs"] >= 25, s
# Time, kind, transport and counts are clear fields: the same numbers as before the erasure.
for k in ("contacts", "by_type", "by_transport", "first", "last", "contacts_per_second"):
    assert s[k] == b[k], (k, b[k], s[k])
# Bots of the erased epoch counted through their per-epoch pseudonym instead. Before the
# erasure a bot's first hello (no identity: keyed by its address) folds into the bot once it
# names itself, as in the registry; a sealed record names neither, so an erased bot that named
# itself counts twice (its address's pseudonym and its identity's): every bot here volunteers.
assert b["sealed_contacts"] == 0 and b["sealed_bot_epochs"] == 0, b
erased = b["unique_bots"] - s["unique_bots"]
assert erased > 0 and s["sealed_bot_epochs"] == 2 * erased, (b, s)
PY

# prove an erased record: the bundle verifies, and prove says it was erased, when, on what basis.
idx=$(python3 -c 'import json,sys; print(next(json.loads(l)["index"] for l in open(sys.argv[1]) if json.loads(l).get("sealed",{}).get("personal_data")=="erased" and json.loads(l)["kind"]=="contact"))' "$E2E_DIR/after.jsonl")
"$SINKD_BINARY" prove --state "$state" --entry "$idx" --out "$E2E_DIR/bundle" --justification "$E2E_WHY" \
    >"$E2E_DIR/prove.txt" || fail "prove of an erased entry"
grep -q "entry $idx: its personal data was erased" "$E2E_DIR/prove.txt" || fail "prove: $(cat "$E2E_DIR/prove.txt")"
grep -q "legal basis: court order 2026/17" "$E2E_DIR/prove.txt" || fail "prove names no erasure record: $(cat "$E2E_DIR/prove.txt")"
grep -q '"sealed": "erased"' "$E2E_DIR/bundle/bundle.json" || fail "bundle.json does not mark the entry erased"
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" --key "$state/keys/log.vkey" >/dev/null || fail "verify-bundle"
"$gocheck" bundle "$E2E_DIR/bundle" "$state/keys/log.vkey" >/dev/null || fail "Go verifier on the erased bundle"
python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py" "$E2E_DIR/bundle" "$state/keys/log.vkey" >/dev/null ||
    fail "Python verifier on the erased bundle"

# A second erasure finds nothing left; the registry rebuilt from the log keeps the day counts.
"$SINKD_BINARY" erase --state "$state" --before "$before" --legal-basis "court order 2026/17, Art. 16 LED" \
    >"$E2E_DIR/erase2.txt" || fail "second erase"
grep -q "0 epoch key(s) destroyed" "$E2E_DIR/erase2.txt" || fail "second erase: $(cat "$E2E_DIR/erase2.txt")"
"$SINKD_BINARY" registry rebuild --state "$state" >/dev/null || fail "rebuild after erase"
"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/rebuilt.json" || fail "summary rebuilt"
python3 - "$E2E_DIR/after.json" "$E2E_DIR/rebuilt.json" <<'PY' || fail "the rebuilt registry lost the erased days' contacts"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ca = {d["day"]: d["contacts"] for d in a["days"]}
cb = {d["day"]: d["contacts"] for d in b["days"]}
assert ca == cb, (ca, cb)
PY
echo "erase: an ended epoch erased under a running serve; kept data, counts and proofs stand"
