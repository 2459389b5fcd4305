#!/usr/bin/env bash
# flush.sh -- how an attack on a sinkd changes this box's disk flush latency for everyone: the
# p50/p99 of a 4 KiB pwrite + fdatasync loop on a file of its own (nothing to do with sinkd),
# with the box quiet and while each attack runs against a separate sinkd. sinkd acknowledges a
# contact only once it is durable, so its honest p99 under attack follows this figure
# (docs/scale.md, the one-address phase).
# Usage: bench/flush.sh [SECONDS]   (default 8 s per phase)
source "$(dirname "$0")/lib.sh"
DURATION=${1:-8}

# name | attack options (empty: quiet)
PHASES=(
    "quiet|"
    "one-address-500|--mode slowloris --conns 500 --sources 1 --drip-ms 1000"
    "one-address-100|--mode slowloris --conns 100 --sources 1 --drip-ms 1000"
    "garbage|--mode garbage --conns 200 --rst"
    "conn-flood|--mode flood --conns 200 --rst"
)

flush_loop() { # FILE SECONDS: prints "p50 p99 max n" in microseconds
    python3 - "$1" "$2" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
end, buf, off, lat = time.time() + float(sys.argv[2]), b"x" * 4096, 0, []
while time.time() < end:
    t = time.perf_counter()
    os.pwrite(fd, buf, off)
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1e6)
    off += 4096
    time.sleep(0.001)
lat.sort()
print(f"{lat[len(lat) // 2]:.0f} {lat[int(len(lat) * 0.99)]:.0f} {lat[-1]:.0f} {len(lat)}")
PY
}

echo "flush: 4 KiB pwrite + fdatasync every ~1 ms on $(df --output=source "$B_DIR" | tail -1), ${DURATION} s per phase,"
echo "       attacks aimed at a separate sinkd on the same $(nproc)-core box"
printf '%-18s %8s %8s %8s %7s %s\n' phase p50_us p99_us max_us writes attack_attempts
for phase in "${PHASES[@]}"; do
    name=${phase%%|*}
    opts=${phase#*|}
    port=$(free_port)
    start_sinkd "$name" "$port" "${WORKER_OPTS[@]}"
    # shellcheck disable=SC2086
    start_attack "$name" "$port" $((DURATION + 2)) 1 $opts
    apid=$APID
    read -r p50 p99 max n < <(flush_loop "$B_DIR/$name.flush" "$DURATION")
    attempts=-
    if [ -n "$apid" ]; then
        wait "$apid" || true
        attempts=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["attempts"])' "$B_DIR/$name.attack")
    fi
    stop_sinkd
    printf '%-18s %8s %8s %8s %7s %s\n' "$name" "$p50" "$p99" "$max" "$n" "$attempts"
done
