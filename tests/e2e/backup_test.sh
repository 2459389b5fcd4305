#!/usr/bin/env bash
# backup_test.sh -- what docs/operations.md tells an operator about copying a live state
# directory: keys and log/ (the checkpoints) first, then journal/, all while holding
# journal/compact.lock shared, gives a copy that opens and serves, holding at least every entry its
# newest checkpoint covers, every one readable and the log verifying; the other order (journal
# first, checkpoints later) gives a copy that refuses to open and says why; and so does the right
# order without the lock when the journal was compacted between the two copies (its base above
# the bundles copied before it).
source "$(dirname "$0")/lib.sh"
state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 2 --checkpoint-ms 100 --heartbeat-interval 0 \
    --journal-compact-kib 16
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --duration 6 --concurrency 300 \
    --source-net 127.0.1.0/24 --heartbeat-ms 100 >/dev/null &
swarm=$!
E2E_PIDS+=("$swarm")
sleep 2.5
good="$E2E_DIR/good" bad="$E2E_DIR/bad" unlocked="$E2E_DIR/unlocked"
mkdir "$good" "$bad" "$unlocked"
[ -f "$state/journal/base" ] || fail "no compaction before the copies: the test would prove less"
# cp may see a partial tile vanish under it (the tile writer replaces them): recovery rebuilds
# tiles from the journal, so that is not an error of the copy.
flock -s "$state/journal/compact.lock" sh -c \
    'cp -a "$1/keys" "$2/" && { cp -a "$1/log" "$2/" 2>/dev/null || true; } && sleep 1 && cp -a "$1/journal" "$2/"' \
    sh "$state" "$good"
cp -a "$state/keys" "$state/journal" "$bad/"
sleep 1 # the log goes on: later checkpoints than the journal copy holds
cp -a "$state/log" "$bad/" 2>/dev/null || true
cp -a "$state/keys" "$unlocked/" && { cp -a "$state/log" "$unlocked/" 2>/dev/null || true; }
sleep 1 # compaction moves the journal base past the bundles just copied
cp -a "$state/journal" "$unlocked/"
wait "$swarm" || fail "swarm failed"
stop_server

covered=$(sed -n 2p "$good/log/checkpoint")
SERVE_LOG="$E2E_DIR/serve.log"
port2=$(free_port)
start_server "$good" "$port2" --no-registry
grep -q "evidence log: [0-9]* entries" "$SERVE_LOG" || fail "no recovery line"
opened=$(grep -o "evidence log: [0-9]* entries" "$SERVE_LOG" | tail -1 | grep -o '[0-9]*')
stop_server
[ "$opened" -ge "$covered" ] || fail "the good copy opened with $opened entries, its checkpoint covers $covered"
"$SINKD_BINARY" verify "$good/log" --key "$good/keys/log.vkey" >"$E2E_DIR/verify.txt" 2>&1 ||
    fail "the good copy does not verify: $(cat "$E2E_DIR/verify.txt")"
read_all=$("$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$good" --all | wc -l) ||
    fail "the good copy's entries do not all read"
[ "$read_all" -ge "$opened" ] || fail "the good copy reads $read_all entries of $opened"

rc=0
timeout 20 "$SINKD_BINARY" serve --allow-root --state "$unlocked" --listen "127.0.0.1:$(free_port)" \
    --no-registry 2>"$E2E_DIR/unlocked.err" || rc=$?
[ "$rc" -eq 1 ] || fail "the copy taken without the lock while compacting: serve exited $rc"
grep -q "journal starts above it" "$E2E_DIR/unlocked.err" ||
    fail "no clear refusal of the unlocked copy: $(cat "$E2E_DIR/unlocked.err")"

rc=0
timeout 20 "$SINKD_BINARY" serve --allow-root --state "$bad" --listen "127.0.0.1:$(free_port)" \
    --no-registry 2>"$E2E_DIR/bad.err" || rc=$?
[ "$rc" -eq 1 ] || fail "the copy with later checkpoints than its journal: serve exited $rc"
grep -q "was published but the journal holds only" "$E2E_DIR/bad.err" ||
    fail "no clear refusal: $(cat "$E2E_DIR/bad.err")"
echo "backup: OK (good copy: $opened entries, checkpoint covers $covered; other order refused)"
