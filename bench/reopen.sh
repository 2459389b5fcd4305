#!/usr/bin/env bash
# reopen.sh -- how long opening the evidence log takes: what a restart (after a kill -9, an
# upgrade) waits before it answers bots. Two logs of COUNT entries of 200 B with a checkpoint every
# CP_EVERY entries are written the same way, one with journal compaction (the default: the
# journal's live tail and the checkpoints above its base are what recovery reads) and one without
# (the anchor, sinkd before compaction: recovery re-hashes the whole journal and opens every
# checkpoint). Each is opened three times (warm cache); prints the best of each and the ratio.
# Usage: bench/reopen.sh [COUNT] [CP_EVERY]   (defaults 500000, 25: 20,000 checkpoints)
source "$(dirname "$0")/lib.sh"
COUNT=${1:-500000}
CP_EVERY=${2:-25}
tool="$B_DIR/evidence_tool"
bash "$ROOT/bench/evidence_build_tool.sh" "$BUILD" "$tool"

echo "reopen: $COUNT entries of 200 B, a checkpoint every $CP_EVERY ($((COUNT / CP_EVERY)) checkpoints); load before $(cut -d' ' -f1-3 /proc/loadavg)"
best_open() { # STATE
    local best="" s
    for _ in 1 2 3; do
        s=$("$tool" open "$1" | tee "$B_DIR/open.txt" | sed 's/^open_s=\([0-9.]*\).*/\1/')
        if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $s < $best else 1)"; then
            best=$s
        fi
    done
    echo "$best $(cut -d' ' -f2- "$B_DIR/open.txt")"
}
for mode in compacted whole; do
    kib=1024
    [ "$mode" = compacted ] || kib=0
    "$tool" gen "$B_DIR/$mode" bench.example/reopen "$COUNT" 200 "$CP_EVERY" "$CP_EVERY" "$kib" >/dev/null
    read -r secs rest < <(best_open "$B_DIR/$mode")
    disk=$(du -s -B1 "$B_DIR/$mode/journal" | cut -f1)
    echo "  $mode: open $secs s ($rest); journal on disk $disk B"
    eval "open_$mode=$secs"
done
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print('  compacted / whole (the anchor): %.3f s / %.3f s = %.2fx the time (%.0fx faster)' % (a, b, a / b, b / max(a, 1e-6)))" \
    "$open_compacted" "$open_whole"
echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
