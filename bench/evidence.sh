#!/bin/bash
# evidence.sh -- evidence log figures: durable appends/s of 200-byte records in group-commit
# batches vs the SHA-256 limit of `openssl speed -evp sha256` measured in the same run,
# evlog_commit latency for small batches (what a bot's reply waits for), and `sinkd verify`
# throughput on a large log; and what sealing personal data costs per record.
# Usage: bench/evidence.sh [BUILD_DIR] ; env COUNT (appends per run, default 1000000: fits the
# tile writer's 256 MiB queue), RUNS (default 3), VERIFY_COUNT (default 10000000), BATCH
# (default 10000), WORK (scratch dir, default /tmp).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build/Release}
count=${COUNT:-1000000}
runs=${RUNS:-3}
vcount=${VERIFY_COUNT:-10000000}
batch=${BATCH:-10000}
work=$(mktemp -d "${WORK:-/tmp}/sinkd-evidence-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
SINKD_SOURCE_DIR=$src bash "$src/bench/evidence_build_tool.sh" "$build" "$work/tool"

echo "== openssl speed -evp sha256 (3 s per size)"
speed=$(openssl speed -seconds 3 -bytes 64 -evp sha256 2>/dev/null | awk '/^sha256/ {print $2}')
speed256=$(openssl speed -seconds 3 -bytes 256 -evp sha256 2>/dev/null | awk '/^sha256/ {print $2}')
# bytes/s figures end in 'k' (1000s of bytes/s)
b64=$(echo "$speed" | sed 's/k$//'); b256=$(echo "$speed256" | sed 's/k$//')
# The tree needs per 200-byte record one leaf hash of 201 bytes (hashed as a 256-byte-class
# message: 4 blocks) and, amortised, one node hash of 65 bytes (2 blocks, the 64-byte class).
limit=$(python3 -c "
t_leaf = 256 / ($b256 * 1000)   # seconds per 256-byte message
t_node = 64 / ($b64 * 1000)     # seconds per 64-byte message
print(int(1 / (t_leaf + t_node)))")
echo "sha256 64B: ${b64}k B/s, 256B: ${b256}k B/s -> tree hashing limit ~ $limit records/s"

echo "== hashing only (leaf + frontier), 200-byte records"
"$work/tool" hashbench 200 2000000

echo "== durable appends: $count x 200 B, batches of $batch (write + fdatasync per batch), $runs runs"
# appends_per_s: the commit path (hash + journal write + fdatasync), what bots wait for.
# close_s: the tile writer catching up afterwards (tiles/bundles are created in the background);
# with_tiles_per_s counts it in.
best=0
for r in $(seq 1 "$runs"); do
    out=$("$work/tool" gen "$work/a$r" bench.example/log "$count" 200 "$batch" 1000000)
    rate=$(echo "$out" | sed -n 's/.*appends_per_s=\([0-9]*\).*/\1/p')
    secs=$(echo "$out" | sed -n 's/.* seconds=\([0-9.]*\).*/\1/p')
    close=$(echo "$out" | sed -n 's/.*close_s=\([0-9.]*\).*/\1/p')
    echo "$out with_tiles_per_s=$(python3 -c "print(int($count / ($secs + $close)))") load=$(cut -d' ' -f1 /proc/loadavg)"
    [ "$rate" -gt "$best" ] && best=$rate
done
python3 -c "print('best appends/s = $best = %.1f%% of the SHA-256 limit ($limit/s)' % (100.0 * $best / $limit))"

echo "== evlog_commit latency, 200-byte records, server checkpoint policy (100000 entries / 1 s)"
for b in 1 10 100; do
    "$work/tool" latency "$work/lat$b" "$b" 3000
done

echo "== sealing personal data (evidence/seal.h): CPU per record on the writer, and leaf bytes"
"$work/tool" seal "$work/seal" "${SEAL_COUNT:-200000}"

echo "== verify throughput: $vcount entries of 200 B"
free=$(df -Pk "$work" | awk 'NR==2 {print $4}')
need=$(( vcount * 240 * 2 / 1024 ))
if [ "$free" -lt "$need" ]; then
    vcount=$(( free * 1024 / 240 / 3 ))
    echo "(only ${free} KiB free: verifying $vcount entries instead)"
fi
"$work/tool" gen "$work/v" bench.example/verify "$vcount" 200 100000 1000000 >/dev/null
start=$(date +%s.%N)
"$work/tool" verify "$work/v/log" --key "$work/v/keys/log.vkey"
end=$(date +%s.%N)
python3 -c "print('verify: %d entries in %.2f s = %.0f entries/s' % ($vcount, $end - $start, $vcount / ($end - $start)))"
