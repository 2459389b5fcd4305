#!/usr/bin/env bash
# checkpoint_retention_test.sh -- serve's checkpoint retention (issue 20): a real server logs
# real bots with a checkpoint every 100 ms; one checkpoint is cosigned by a witness, one is
# proved in a bundle; the checkpoints are then aged two days (touch) and serve restarted with
# the default 24-hour window. After its first publication only the newest old checkpoint and the
# cosigned one are left of the old ones; `sinkd verify` (with the witness), the Go verifier,
# `sinkd prove` and the bundle made before pruning all still check; a bad
# --checkpoint-keep-hours is a usage error naming the switch.
source "$(dirname "$0")/lib.sh"
state="$E2E_DIR/state"
log="$state/log"
swarm() { # PORT
    "$SINKD_BINARY" swarm --target "127.0.0.1:$1" --bots 50 --duration 2 --concurrency 50 \
        --source-net 127.0.1.0/24 --heartbeat-ms 100 >/dev/null || fail "swarm exited non-zero"
}
count_cps() { find "$log/checkpoints" -maxdepth 1 -type f -name '[0-9]*' ! -name '*.tmp' | wc -l; }

for bad in -1 abc 87841 ''; do
    rc=0
    "$SINKD_BINARY" serve --state "$E2E_DIR/none" --checkpoint-keep-hours "$bad" \
        >/dev/null 2>"$E2E_DIR/bad.err" || rc=$?
    [ "$rc" -eq 2 ] || fail "--checkpoint-keep-hours '$bad': exit $rc, want 2"
    grep -q "checkpoint-keep-hours" "$E2E_DIR/bad.err" ||
        fail "--checkpoint-keep-hours '$bad': the error does not name the switch: $(cat "$E2E_DIR/bad.err")"
done
"$SINKD_BINARY" serve --help | grep -q -- "--checkpoint-keep-hours H" || fail "not in serve --help"

port=$(free_port)
# A checkpoint every 20 ms: past 43 files, glibc's qsort (retention sorts the list) asks the
# kernel for the memory size (sysinfo), which the seccomp allow-list must let through; serve
# died 10 minutes after every start before it did (the first run found fewer files).
# And a small journal-compaction threshold: opening then reads only the few checkpoints above the
# journal base, so the first big sort comes after the filter is on (glibc asks only once).
start_server "$state" "$port" --workers 1 --checkpoint-ms 20 --heartbeat-interval 0 \
    --journal-compact-kib 1
python3 "$SINKD_SOURCE_DIR/tests/e2e/witness_server.py" "$E2E_DIR/w.port" "$state/keys/log.vkey" \
    witness.cert.example/w1 "$E2E_DIR/w1.vkey" &
E2E_PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$E2E_DIR/w.port" ] && break; sleep 0.05; done
w1="http://127.0.0.1:$(cat "$E2E_DIR/w.port")/add-checkpoint"
swarm "$port"
stop_server
before=$(count_cps)
[ "$before" -ge 60 ] || fail "only $before checkpoints published: too few to make retention sort a big list"
mapfile -t sizes < <(find "$log/checkpoints" -maxdepth 1 -type f -printf '%f\n' | grep -E '^[0-9]+$' | sort -n)
cosigned=${sizes[$((${#sizes[@]} / 3))]}
proved=${sizes[$((${#sizes[@]} / 2))]}
[ "$cosigned" != "$proved" ] && [ "$proved" != "${sizes[-1]}" ] && [ "$cosigned" -gt 0 ] ||
    fail "sizes too few to choose from: ${sizes[*]}"
"$SINKD_BINARY" cosign --state "$state" --witness-key "$E2E_DIR/w1.vkey" --witness-url "$w1" \
    --size "$cosigned" >/dev/null || fail "cosign --size $cosigned failed"
"$SINKD_BINARY" prove --state "$state" --entry 0 --checkpoint "$proved" --out "$E2E_DIR/bundle" \
    --justification "e2e $(basename "$0")" >/dev/null || fail "prove --checkpoint $proved failed"
# prove's access record may have added a checkpoint
mapfile -t sizes < <(find "$log/checkpoints" -maxdepth 1 -type f -printf '%f\n' | grep -E '^[0-9]+$' | sort -n)
newest=${sizes[-1]}

# Two days old, all in one UTC hour: after the restart's first checkpoint only the newest of
# them and the cosigned one may be left.
old=$(($(date +%s) / 3600 * 3600 - 48 * 3600 + 60))
find "$log/checkpoints" -maxdepth 1 -type f -exec touch -d "@$old" {} +
port=$(free_port)
start_server "$state" "$port" --workers 1 --checkpoint-ms 100 --heartbeat-interval 0
swarm "$port"
kill -0 "$SERVER_PID" 2>/dev/null || fail "serve died under retention: $(tail -3 "$E2E_DIR/serve.log")"
stop_server
grep -q "checkpoint retention" "$E2E_DIR/serve.log" && fail "retention failed: $(grep retention "$E2E_DIR/serve.log")"
left_old=()
for s in "${sizes[@]}"; do
    [ -f "$log/checkpoints/$s" ] && left_old+=("$s")
done
[ "${left_old[*]}" = "$cosigned $newest" ] ||
    fail "old checkpoints left: ${left_old[*]}; want the cosigned $cosigned and the newest $newest"
[ -f "$log/checkpoints/$proved" ] && fail "checkpoints/$proved was not removed"
# Proving against it now says it is not kept, and where the kept sizes are.
status=0
"$SINKD_BINARY" prove --state "$state" --entry 0 --checkpoint "$proved" --out "$E2E_DIR/bundle2" \
    --justification "e2e $(basename "$0")" >/dev/null 2>"$E2E_DIR/prove2.err" || status=$?
[ "$status" -ne 0 ] || fail "prove --checkpoint $proved succeeded after its checkpoint was removed"
grep -q "no checkpoint of size $proved is kept here" "$E2E_DIR/prove2.err" ||
    fail "prove --checkpoint $proved: $(cat "$E2E_DIR/prove2.err")"
after=$(count_cps)
[ "$after" -gt 2 ] || fail "no checkpoint published after the restart"

"$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --witness "$E2E_DIR/w1.vkey" \
    >"$E2E_DIR/v.txt" || fail "sinkd verify fails after pruning: $(cat "$E2E_DIR/v.txt")"
gocheck="$E2E_DIR/tlogcheck"
(cd "$SINKD_SOURCE_DIR/tests/go" && GOCACHE="$E2E_DIR/gocache" GO111MODULE=off GOPATH=/usr/share/gocode \
    go build -o "$gocheck" tlogcheck.go) || fail "building the Go checker"
"$gocheck" log "$log" "$state/keys/log.vkey" >/dev/null || fail "the Go verifier rejects the pruned log"
# The bundle carries its own copy of the checkpoint it proves against: pruning loses nothing.
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" >/dev/null ||
    fail "the bundle made at checkpoint $proved no longer verifies"
"$SINKD_BINARY" prove --state "$state" --entry 0 --out "$E2E_DIR/bundle2" \
    --justification "e2e $(basename "$0")" >/dev/null || fail "prove after pruning failed"
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle2" >/dev/null || fail "the new bundle does not verify"
echo "checkpoint retention: OK ($before checkpoints, then ${#left_old[@]} of them kept; $after now)"
