#!/usr/bin/env bash
# compact_test.sh -- journal compaction under a real server (docs/evidence.md "Journal
# compaction"): with a tiny threshold the journal is punched out over and over while a separate
# registry follower reads it and the server is killed with -9 once; afterwards the journal holds
# only its live tail on disk, every entry still reads (from the bundles below the base), the log
# verifies with sinkd and with the independent Go verifier, nothing acknowledged is lost, the
# follower's registry equals one rebuilt from the log, and an entry below the base is proved.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
mport=$(free_port)
opts=(--workers 2 --checkpoint-ms 100 --heartbeat-interval 0 --journal-compact-kib 16 --no-registry
    --metrics-listen "127.0.0.1:$mport")
start_server "$state" "$port" "${opts[@]}"
# A follower in its own process reads the journal while compaction punches it under its feet.
"$SINKD_BINARY" registry follow --state "$state" 2>"$E2E_DIR/follow.log" &
follower=$!
E2E_PIDS+=("$follower")
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --duration 8 --concurrency 300 \
    --source-net 127.0.1.0/24 --heartbeat-ms 100 --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" &
swarm=$!
E2E_PIDS+=("$swarm")
sleep 4
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
start_server "$state" "$port" "${opts[@]}"
wait "$swarm" || fail "swarm failed"
base_metric=$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1 == "sinkd_log_journal_base" {print $2}')
[ "${base_metric:-0}" -gt 0 ] || fail "/metrics: sinkd_log_journal_base is '${base_metric:-}'"
stop_server
grep -q "below the journal base read from the entry bundles" "$E2E_DIR/serve.log" ||
    fail "the restart did not start from a journal base: $(grep 'evidence log' "$E2E_DIR/serve.log")"

[ -f "$state/journal/base" ] || fail "no journal/base: nothing was compacted"
read -r length blocks < <(stat -c '%s %b' "$state/journal/wal")
disk=$((blocks * 512))
[ "$disk" -lt $((length / 4)) ] ||
    fail "the journal still occupies $disk of its $length bytes on disk"
echo "journal: $length bytes long, $disk on disk"

"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >"$E2E_DIR/verify.txt" 2>&1 ||
    fail "sinkd verify: $(cat "$E2E_DIR/verify.txt")"
gocheck="$E2E_DIR/tlogcheck"
(cd "$SINKD_SOURCE_DIR/tests/go" && GOCACHE="$E2E_DIR/gocache" GO111MODULE=off GOPATH=/usr/share/gocode \
    GOFLAGS=-mod=mod go build -o "$gocheck" tlogcheck.go) || fail "cannot build the Go verifier"
"$gocheck" log "$state/log" "$state/keys/log.vkey" >"$E2E_DIR/go.txt" 2>&1 ||
    fail "Go verifier: $(cat "$E2E_DIR/go.txt")"

# Every entry reads, in order, from index 0 (bundles, then the journal's tail).
size=$(head -2 "$state/log/checkpoint" | tail -1)
"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all >"$E2E_DIR/all.jsonl" ||
    fail "contacts --all failed"
python3 - "$E2E_DIR/all.jsonl" "$size" <<'PY' || fail "contacts --all does not read every entry"
import json, sys
idx = [json.loads(l)["index"] for l in open(sys.argv[1])]
size = int(sys.argv[2])
# the access record contacts itself appends may be entry `size` (spooled, not yet in the log)
assert idx == list(range(len(idx))) and len(idx) >= size, (len(idx), size, idx[:3])
PY
# Nothing acknowledged was lost (the roll-up is off: each reply followed its durable contact).
durable=$(durable_messages "$state")
replies=$(json_field "$E2E_DIR/swarm.json" 'd["replies_received"]')
[ "$replies" -gt 5000 ] || fail "too little load to mean anything: $replies replies"
[ "$durable" -ge "$replies" ] || fail "acknowledged contacts lost: $replies replies, $durable durable"

# The follower (which read through the compactions) agrees with a registry rebuilt from the log.
kill -TERM "$follower"
wait "$follower" || fail "registry follow exited with an error: $(cat "$E2E_DIR/follow.log")"
bots_of() {
    "$SINKD_BINARY" report --state "$state" --registry "$1" --format summary-json \
        --justification "$E2E_WHY" >"$2" 2>"$2.err" || fail "report on $1: $(cat "$2.err")"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unique_bots"])' "$2"
}
cp "$state/registry.db" "$E2E_DIR/followed.db"
"$SINKD_BINARY" registry rebuild --state "$state" --registry "$E2E_DIR/rebuilt.db" \
    >"$E2E_DIR/rebuild.txt" 2>&1 || fail "registry rebuild: $(cat "$E2E_DIR/rebuild.txt")"
followed=$(bots_of "$E2E_DIR/followed.db" "$E2E_DIR/followed.json")
rebuilt=$(bots_of "$E2E_DIR/rebuilt.db" "$E2E_DIR/rebuilt.json")
[ "$followed" = "$rebuilt" ] && [ "$rebuilt" -ge 290 ] ||
    fail "follower's registry has $followed bots, the rebuilt one $rebuilt"

# An entry far below the base proves, and the bundle verifies.
"$SINKD_BINARY" prove --state "$state" --entry 3 --out "$E2E_DIR/bundle" \
    --justification "$E2E_WHY" >"$E2E_DIR/prove.txt" 2>&1 || fail "prove: $(cat "$E2E_DIR/prove.txt")"
"$gocheck" bundle "$E2E_DIR/bundle" "$state/keys/log.vkey" >"$E2E_DIR/gobundle.txt" 2>&1 ||
    fail "Go verifier on the bundle: $(cat "$E2E_DIR/gobundle.txt")"
echo "ok: $size entries, $replies replies all durable, $rebuilt bots, journal $disk of $length bytes on disk"
