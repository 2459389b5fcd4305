#!/usr/bin/env bash
# rollup_named_test.sh -- heartbeats records that name the leaf describing their bot instead of
# repeating it (docs/evidence.md "Heartbeats rolled up"), under a real server rolling up every
# second: most records name a leaf and hold no personal field; a registry follower in its own
# process, stopped and started again in the middle (so it meets records naming leaves it never
# saw, and reads those from the log), ends with the same registry as one rebuilt from the log in
# one pass; `contacts` fills named records in with their leaf's address; the log verifies.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
mport=$(free_port)
start_server "$state" "$port" --workers 2 --heartbeat-interval 1 --no-registry \
    --metrics-listen "127.0.0.1:$mport"
"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --duration 8 --concurrency 300 \
    --source-net 127.0.1.0/24 --heartbeat-ms 200 --preset worm --json "$E2E_DIR/swarm.json" \
    >"$E2E_DIR/swarm.txt" &
swarm=$!
E2E_PIDS+=("$swarm")
sleep 4
kill -TERM "$follower"
wait "$follower" || fail "registry follow exited with an error: $(cat "$E2E_DIR/follow.log")"
applied() {
    python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT value FROM meta WHERE key = ?", ("next_index",)).fetchone()[0])' "$state/registry.db"
}
restart_at=$(applied)
"$SINKD_BINARY" registry follow --state "$state" 2>>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
wait "$swarm" || fail "swarm failed"
named=$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1 == "sinkd_heartbeats_named_total" {print $2}')
stop_server
size=$(head -2 "$state/log/checkpoint" | tail -1)
for _ in $(seq 1 200); do
    [ "$(applied)" -ge "$size" ] && break
    sleep 0.1
done
[ "$(applied)" -ge "$size" ] || fail "the follower did not catch up: $(applied) of $size entries"
kill -TERM "$follower"
wait "$follower" || fail "registry follow exited with an error: $(cat "$E2E_DIR/follow.log")"
[ "${named:-0}" -gt 0 ] || fail "/metrics: sinkd_heartbeats_named_total is '${named:-}'"

"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" 2>&1 ||
    fail "sinkd verify: $(cat "$E2E_DIR/verify.txt")"
"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all >"$E2E_DIR/all.jsonl" ||
    fail "contacts --all failed"
# The log as it is, without filling in: a naming record holds no personal field.
python3 - "$E2E_DIR/all.jsonl" "$restart_at" "$state" <<'PY' || fail "named records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
restart_at = int(sys.argv[2])
by_index = {r["index"]: r for r in recs}
beats = [r for r in recs if r["kind"] == "heartbeats"]
named = [r for r in beats if r.get("described_in")]
assert len(named) >= len(beats) // 2, (len(named), len(beats))
for b in named:
    leaf = by_index[b["described_in"]]
    assert leaf["index"] < b["index"] and leaf["kind"] in ("contact", "heartbeats"), (b, leaf)
    assert b["src_ip"] == leaf["src_ip"] != "" and b["family"] == leaf["family"] == "plugx", (b, leaf)
# The restarted follower met records naming leaves from before its start.
crossing = [b for b in named if b["index"] >= restart_at > b["described_in"]]
assert crossing, ("no record after the follower's restart names a leaf before it", restart_at)
print("%d heartbeats records, %d naming a leaf, %d of them across the follower's restart at %d"
      % (len(beats), len(named), len(crossing), restart_at))
PY

# The follower (restarted) and a registry rebuilt in one pass hold the same rows.
"$SINKD_BINARY" registry rebuild --state "$state" --registry "$E2E_DIR/rebuilt.db" \
    >"$E2E_DIR/rebuild.txt" 2>&1 || fail "registry rebuild: $(cat "$E2E_DIR/rebuild.txt")"
python3 - "$state/registry.db" "$E2E_DIR/rebuilt.db" <<'PY' || fail "the followed and the rebuilt registry differ"
import sqlite3, sys
def rows(path):
    db = sqlite3.connect(path)
    out = {}
    for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta'"):
        out[t] = sorted(db.execute("SELECT * FROM %s" % t).fetchall(), key=repr)
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a.keys() == b.keys(), (a.keys(), b.keys())
for t in a:
    assert a[t] == b[t], (t, len(a[t]), len(b[t]), [r for r in a[t] if r not in b[t]][:3])
bots = sum(len(a[t]) for t in a if t.startswith("bot"))
assert bots > 0, "no bot in the registry"
print("registries agree:", {t: len(a[t]) for t in a})
PY
# What the log vouches for is what the registry counts: every decoded poll (the callers no
# family decodes are counted apart, by address).
durable=$(python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["kind"] == "heartbeats":
        n += r["count"]
    elif r["kind"] == "contact" and r["type"] != "undecoded":
        n += 1
print(n)' "$E2E_DIR/all.jsonl")
counted=$(python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
t = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = ? AND name LIKE ?", ("table", "source_ip%"))][0]
print(db.execute("SELECT SUM(contacts) FROM %s" % t).fetchone()[0])' "$state/registry.db")
[ "$counted" -eq "$durable" ] || fail "the registry counts $counted contacts, the log vouches for $durable"
echo "ok: $named records named their bot's leaf; registry and log agree ($counted contacts)"
