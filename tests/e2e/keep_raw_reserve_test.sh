#!/usr/bin/env bash
# keep_raw_reserve_test.sh -- `--keep-raw` never takes the space the evidence log needs: on a
# small tmpfs the test makes itself, a filler that leaves less than --keep-raw-reserve-mib free
# stops the capture (bodies counted as not kept, sinkd_raw_full 1) while every contact is still
# recorded and answered; capture resumes by itself once the space returns. Where mounting is not
# allowed it says SKIP and why.
source "$(dirname "$0")/lib.sh"

mnt="$E2E_DIR/mnt"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=96m tmpfs "$mnt" 2>/dev/null; then
    echo "SKIP: cannot mount a tmpfs here (needs root and mount rights); the disk reserve not tested"
    exit 77
fi
umount_mnt() { umount -l "$mnt" 2>/dev/null || true; }
trap 'umount_mnt; e2e_cleanup' EXIT

state="$mnt/state"
port=$(free_port)
mport=$(free_port)
start_server "$state" "$port" --workers 2 --keep-raw --keep-raw-reserve-mib 48 \
    --metrics-listen "127.0.0.1:$mport"
# HTTP bots: every POST is a session of its own, so new machine-info bodies keep coming.
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 100 --duration 15 --concurrency 100 \
    --source-net 127.0.1.0/24 --heartbeat-ms 100 --http-share 1 --volunteer-share 1 \
    --json "$E2E_DIR/swarm.json" \
    >"$E2E_DIR/swarm.txt" &
swarm=$!
E2E_PIDS+=("$swarm")

raw_metric() { # NAME -> value
    python3 - "$mport" "$1" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
print(dict(l.rsplit(" ", 1) for l in text.splitlines() if not l.startswith("#"))[sys.argv[2]])
PY
}

sleep 3
kept1=$(raw_metric sinkd_raw_bodies_kept_total)
[ "$kept1" -gt 100 ] || fail "only $kept1 bodies kept before the filler"
[ "$(raw_metric sinkd_raw_full)" = 0 ] || fail "capture stopped with the disk empty"
# Leave ~20 MiB free: enough for the log, less than the 48 MiB reserve.
avail_mib=$(df -m --output=avail "$mnt" | tail -1 | tr -d ' ')
dd if=/dev/zero of="$mnt/filler" bs=1M count=$((avail_mib - 20)) 2>/dev/null
sleep 4
skipped=$(raw_metric sinkd_raw_bodies_skipped_total)
[ "$skipped" -gt 0 ] || fail "no body skipped with the disk short of its reserve"
[ "$(raw_metric sinkd_raw_full)" = 1 ] || fail "sinkd_raw_full is not 1 below the reserve"
kept2=$(raw_metric sinkd_raw_bodies_kept_total)
sleep 2
kept3=$(raw_metric sinkd_raw_bodies_kept_total)
[ "$kept3" -eq "$kept2" ] || fail "bodies kept below the reserve ($kept2 -> $kept3)"
rm -f "$mnt/filler"
sleep 4
kept4=$(raw_metric sinkd_raw_bodies_kept_total)
[ "$kept4" -gt "$kept3" ] || fail "capture did not resume when space returned ($kept3 -> $kept4)"
[ "$(raw_metric sinkd_raw_full)" = 0 ] || fail "sinkd_raw_full still 1 after space returned"
wait "$swarm" || fail "swarm failed"
stop_server
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["bots_replied"]==100 and sum(d["errors"].values())==0 else 1)' \
    "$E2E_DIR/swarm.json" || fail "bots not all answered: $(cat "$E2E_DIR/swarm.json")"
# Every contact recorded; the ones whose body was skipped are the only ones without it.
"$SINKD_BINARY" raw check --state "$state" >"$E2E_DIR/check.txt" || fail "raw check: $(cat "$E2E_DIR/check.txt")"
python3 - "$E2E_DIR/check.txt" "$skipped" <<'PY' || fail "raw check figures: $(cat "$E2E_DIR/check.txt")"
import json, sys
c = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert c["damaged"] == 0 and c["stray"] == 0, c
assert c["distinct_missing"] > 0 and int(sys.argv[2]) > 0, c
assert c["contacts_with_body"] < c["contacts"], c
PY
echo "keep_raw_reserve_test: ok (kept $kept1 -> $kept3 held at the reserve -> $kept4, skipped >= $skipped)"
