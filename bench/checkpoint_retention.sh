#!/usr/bin/env bash
# checkpoint_retention.sh -- what serve's checkpoint retention (issue 20, docs/evidence.md
# "Checkpoint retention") leaves of two days of checkpoints. A real server with bots publishes
# checkpoints every 10 ms for SECONDS; the files' mtimes are then spread evenly over the last 48
# hours (two days of checkpoints, compressed), the server restarts with the default 24-hour window
# and bots again, and the files and disk blocks of log/checkpoints/ are counted before and after.
# Prints the measured bytes on disk per checkpoint file and what that makes per day at serve's
# default of a checkpoint a second, before and after; checks that `sinkd verify` still passes.
# Then the cost of one retention run and of opening the log on a directory of DIRFILES old
# checkpoints (default 300,000, more than a run looks at; 0 skips it): bench/evidence_tool
# appends DIRFILES entries to a bare log, the newest checkpoint is linked to DIRFILES names
# (hard links, new files every 60,000: ext4 allows 65,000 per inode) aged over one day two days
# back, and the tool opens the log with a 24-hour window and times a checkpoint with its run
# against one without.
# Usage: bench/checkpoint_retention.sh [SECONDS] [BOTS]   (defaults 30, 100; env DIRFILES)
source "$(dirname "$0")/lib.sh"
SECONDS_RUN=${1:-30}
BOTS=${2:-100}
DIRFILES=${DIRFILES:-300000}
state="$B_DIR/cp/state"
cps="$state/log/checkpoints"
files() { find "$cps" -maxdepth 1 -type f -name '[0-9]*' ! -name '*.tmp' | wc -l; }
kib() { du -sk "$cps" | awk '{print $1}'; }
swarm() { # PORT SECONDS
    "$SINKD" swarm --target "127.0.0.1:$1" --bots "$BOTS" --duration "$2" --concurrency "$BOTS" \
        --source-net 127.0.1.0/24 --heartbeat-ms 100 >/dev/null
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
port=$(free_port)
start_sinkd cp "$port" --workers 1 --checkpoint-ms 10 --heartbeat-interval 0 \
    --trusted-proxy 127.0.1.0/24 --no-registry
swarm "$port" "$SECONDS_RUN"
stop_sinkd
before_files=$(files)
before_kib=$(kib)
# Spread the files, oldest size first, over the last 48 hours.
now=$(date +%s)
find "$cps" -maxdepth 1 -type f -printf '%f\n' | grep -E '^[0-9]+$' | sort -n | awk -v n="$before_files" -v now="$now" -v d="$cps" \
    '{ printf "touch -d @%d %s/%s\n", now - 172800 + int(NR * 172800 / (n + 1)), d, $1 }' | sh
in_window=$(find "$cps" -maxdepth 1 -type f -name '[0-9]*' -newermt "@$((now - 86400))" | wc -l)

# Restart on the same state (start_sinkd would make a fresh one): default --checkpoint-keep-hours.
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
port=$(free_port)
rm -f "$B_DIR/cp/ready"
"$SINKD" serve "${as_root[@]}" --state "$state" --listen "127.0.0.1:$port" --workers 1 \
    --heartbeat-interval 0 --trusted-proxy 127.0.1.0/24 --no-registry \
    --ready-file "$B_DIR/cp/ready" 2>>"$B_DIR/cp/serve.log" &
SINKD_PID=$!
B_PIDS+=("$SINKD_PID")
for _ in $(seq 1 400); do [ -s "$B_DIR/cp/ready" ] && break; sleep 0.05; done
[ -s "$B_DIR/cp/ready" ] || die "sinkd did not restart"
swarm "$port" 3
stop_sinkd
grep "checkpoint retention" "$B_DIR/cp/serve.log" >&2 && die "retention reported a failure"
after_files=$(files)
after_kib=$(kib)
new_files=$(find "$cps" -maxdepth 1 -type f -name '[0-9]*' -newermt "@$now" | wc -l)
"$SINKD" verify "$state/log" --key "$state/keys/log.vkey" >/dev/null || die "verify failed"

per_file=$(awk -v k="$before_kib" -v n="$before_files" 'BEGIN { printf "%.0f", k * 1024 / n }')
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "two days of checkpoints (compressed: $before_files files spread over 48 h):"
echo "  before: $before_files files, $before_kib KiB on disk ($per_file B per file)"
echo "  after:  $((after_files - new_files)) of them kept ($in_window inside the 24 h window," \
    "$((after_files - new_files - in_window)) from the older day: the newest of each of its" \
    "hours), plus $new_files published after the restart; $after_kib KiB; sinkd verify OK"
awk -v b="$per_file" 'BEGIN {
    printf "at a checkpoint a second: before %d files, %.0f MB a day, %.1f GB after 180 days;\n",
        86400, 86400 * b / 1e6, 180 * 86400 * b / 1e9
    printf "  with retention: %d files in the window, +24 a day after it (%.2f MB a day);" \
        " after 180 days %d files, %.2f GB\n",
        86400, 24 * b / 1e6, 86400 + 180 * 24, (86400 + 180 * 24) * b / 1e9 }'

[ "$DIRFILES" -gt 0 ] || exit 0
bash "$ROOT/bench/evidence_build_tool.sh" "$BUILD" "$B_DIR/evidence_tool"
big="$B_DIR/big"
"$B_DIR/evidence_tool" gen "$big" bench.example/retention $((DIRFILES + 1000)) 64 10000 0 >/dev/null
python3 - "$big/log/checkpoints" $((DIRFILES + 1000)) "$DIRFILES" <<'PY'
import os, shutil, sys, time
d, newest, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = int(time.time()) // 3600 * 3600 - 48 * 3600
src = None
for i in range(1, n + 1):
    p = os.path.join(d, str(i))
    if src is None or i % 60000 == 0:
        shutil.copyfile(os.path.join(d, newest), p)
        src = p
    else:
        os.link(src, p)
for i in range(1, n + 1):
    t = base + i * 86400 // (n + 1)
    os.utime(os.path.join(d, str(i)), (t, t))
PY
sync
echo "a directory of $DIRFILES old checkpoints (warm cache):"
"$B_DIR/evidence_tool" retention "$big" 86400 | sed 's/^/  /'
