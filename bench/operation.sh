#!/usr/bin/env bash
# operation.sh -- what a six-month operation costs the evidence log (issue 20 #6): 10,000 bots
# with a beacon mix (most polling every 60 s, some every 15 s; 30% over HTTP; all cipher
# families), measured on whatever this tree's main has (it says whether the log rolls
# heartbeats up and seals personal data). Prints, from the state directory's marginal growth once
# every bot has connected: log bytes per bot-day, records/s and fsyncs/s (journal group commits
# and checkpoint publications), and extrapolates to 100k and 1M bots for 180 days, beside the
# figure measured before the roll-up (issue 20: ~607 B per heartbeat, ~874 KB per bot-day at 60 s).
# With the heartbeat roll-up (serve --heartbeat-interval, default one record per bot per hour),
# a two-minute window would see almost no roll-up records: the bench then rolls up every
# INTERVAL seconds (default 60), measures the bytes of one bot-interval, and scales it to the
# default hour (24 records per bot-day), printing both.
# Bytes are counted two ways: as the files' lengths (what a copy of the log carries) and as the
# blocks they occupy on disk (what the operator's disk pays: a journal compacted by punching holes
# is long but small, and a 300-byte checkpoint takes a whole block). Checkpoints are published
# per second, not per record: their cost is counted per day, kept as `serve` keeps them.
# Usage: bench/operation.sh [STEADY_SECONDS] [BOTS]   (defaults 120 s, 10000; env INTERVAL,
# HTTP_SHARE: the share of bots polling over HTTP, default 0.3)
source "$(dirname "$0")/lib.sh"
STEADY=${1:-120}
BOTS=${2:-10000}
INTERVAL=${INTERVAL:-60}
HTTP_SHARE=${HTTP_SHARE:-0.3}
ROLLUP_OPTS=()
serve_help=$("$SINKD" serve --help)
if [[ "$serve_help" == *--heartbeat-interval* ]]; then
    ROLLUP_OPTS=(--heartbeat-interval "$INTERVAL")
fi
# A small compaction threshold keeps the journal's live tail (bounded, not growing) from
# swinging the two samples by up to the default 1 MiB.
COMPACT_OPTS=()
if [[ "$serve_help" == *--journal-compact-kib* ]]; then
    COMPACT_OPTS=(--journal-compact-kib 64)
fi
# Whether serve prunes old checkpoints (how many a day it keeps in the long run).
CP_RETENTION=no
[[ "$serve_help" != *--checkpoint-keep-hours* ]] || CP_RETENTION=yes
SLOW=$((BOTS * 8 / 10))
FAST=$((BOTS - SLOW))

port=$(free_port)
mport=$(free_port)
start_sinkd op "$port" "${WORKER_OPTS[@]}" --trusted-proxy 127.0.1.0/24 --trusted-proxy 127.0.2.0/24 \
    --max-per-ip $((BOTS + 10)) --max-connections $((BOTS + 2000)) --checkpoint-ms 1000 \
    --metrics-listen "127.0.0.1:$mport" "${ROLLUP_OPTS[@]}" "${COMPACT_OPTS[@]}"
state="$B_DIR/op/state"
# "LENGTH DISK" of the journal, of the tiles and bundles, and of the checkpoints.
sizes() {
    local j t c
    j=$(stat -c '%s %b' "$state/journal/wal" | awk '{print $1, $2 * 512}')
    # Full tiles and bundles only: the partial ones (tile/.../N.p/W) of the bundle being filled
    # are rewritten at every checkpoint and removed once it is full, so where the two samples
    # fall in that cycle would swing the count by up to ~0.5 MB.
    t=$(find "$state/log/tile" -type f -not -path '*.p/*' -printf '%s %b\n' | awk '{l += $1; d += $2 * 512} END {print l + 0, d + 0}')
    c=$(find "$state/log/checkpoints" -type f -printf '%s %b\n' | awk '{l += $1; d += $2 * 512} END {print l + 0, d + 0}')
    local nb
    nb=$(find "$state/log/tile/entries" -type f -not -path '*.p/*' 2>/dev/null | wc -l)
    echo "$j $t $c $nb"
}
log_bytes() { sizes | awk '{print $1 + $3 + $5}'; }
metric() { curl -sf "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
checkpoints() { find "$state/log/checkpoints" -type f | wc -l; }

# The swarm starts its bots over the first 40% of its run: the window opens 30 s after the last
# one started (so it holds no first contact), and closes 15 s before the swarm ends.
run=$(((STEADY + 45) * 10 / 6 + 1))
ramp=$((run * 4 / 10 + 30))
"$SINKD" swarm --target "127.0.0.1:$port" --bots "$SLOW" --concurrency "$SLOW" --duration "$run" \
    --source-net 127.0.1.0/24 --seed 11 --heartbeat-ms 60000 --http-share "$HTTP_SHARE" --cipher mix \
    --json "$B_DIR/slow.json" >"$B_DIR/slow.txt" 2>&1 &
slow_pid=$!
B_PIDS+=("$slow_pid")
"$SINKD" swarm --target "127.0.0.1:$port" --bots "$FAST" --concurrency "$FAST" --duration "$run" \
    --source-net 127.0.2.0/24 --seed 12 --heartbeat-ms 15000 --http-share "$HTTP_SHARE" --cipher mix \
    --json "$B_DIR/fast.json" >"$B_DIR/fast.txt" 2>&1 &
fast_pid=$!
B_PIDS+=("$fast_pid")
sleep "$ramp" # every bot has made its first contact and polled
s0=$(sizes)
j0=$(du -sb "$state/journal" | cut -f1)
b0=$(log_bytes); e0=$(metric sinkd_log_entries); c0=$(metric sinkd_log_commits_total); k0=$(checkpoints)
t0=$(date +%s.%N)
sleep "$STEADY"
b1=$(log_bytes); e1=$(metric sinkd_log_entries); c1=$(metric sinkd_log_commits_total); k1=$(checkpoints)
j1=$(du -sb "$state/journal" | cut -f1)
s1=$(sizes)
t1=$(date +%s.%N)
named=$(metric sinkd_heartbeats_named_total)
wait "$slow_pid" "$fast_pid" || true
stop_sinkd
"$SINKD" contacts --state "$state" --summary >"$B_DIR/summary.json"
"$SINKD" contacts --state "$state" --all --justification "bench/operation.sh: record kinds" |
    python3 -c '
import collections, json, sys
lo, hi = int(float(sys.argv[1])), int(float(sys.argv[2]))
run, window = collections.Counter(), collections.Counter()
for l in sys.stdin:
    r = json.loads(l)
    run[r["kind"]] += 1
    if lo <= r["index"] < hi:
        window[r["kind"]] += 1
print(json.dumps({"run": run, "window": window}))' "$e0" "$e1" >"$B_DIR/kinds.json"

# A heartbeats record names the leaf that describes its bot, when there is one of the same seal
# epoch (one UTC day): the first record of each bot-day describes its bot again and costs more.
# The window above holds only naming records, so a second, smaller run measures what a record
# that describes its bot costs: seal epochs of 10 s, shorter than its roll-up interval, so that
# no record finds a leaf of its own epoch to name (bots polling every 20 s +-50%, so that no
# presence ends and the window holds heartbeats records only).
full_rec=0
if [ -n "$named" ]; then
    FULL_BOTS=$((BOTS / 10 > 500 ? BOTS / 10 : 500))
    port2=$(free_port)
    mport=$(free_port)
    B_EPOCH_SECONDS=10 start_sinkd full "$port2" "${WORKER_OPTS[@]}" --trusted-proxy 127.0.1.0/24 \
        --max-per-ip $((FULL_BOTS + 10)) --max-connections $((FULL_BOTS + 2000)) --checkpoint-ms 1000 \
        --metrics-listen "127.0.0.1:$mport" --heartbeat-interval 60 --journal-compact-kib 64
    state="$B_DIR/full/state"
    "$SINKD" swarm --target "127.0.0.1:$port2" --bots "$FULL_BOTS" --concurrency "$FULL_BOTS" \
        --duration 260 --source-net 127.0.1.0/24 --seed 13 --heartbeat-ms 20000 \
        --http-share "$HTTP_SHARE" --cipher mix --json "$B_DIR/full.json" >"$B_DIR/full.txt" 2>&1 &
    full_pid=$!
    B_PIDS+=("$full_pid")
    sleep 134 # the bots start over 104 s; then every one has made its first contact
    f0=$(sizes); fe0=$(metric sinkd_log_entries); fn0=$(metric sinkd_heartbeats_named_total)
    sleep 120
    f1=$(sizes); fe1=$(metric sinkd_log_entries); fn1=$(metric sinkd_heartbeats_named_total)
    wait "$full_pid" || true
    stop_sinkd
    full_rec=$(python3 -c '
import sys
s0 = [int(x) for x in sys.argv[1].split()]
s1 = [int(x) for x in sys.argv[2].split()]
n = max(1, (s1[6] - s0[6]) * 256) # the entries of the full bundles written in the window
assert int(float(sys.argv[6])) == int(float(sys.argv[5])), "records named a leaf in the describing run"
upper = 32 / 256 + 32 / 65536 # hash tiles above level 0, per entry
print("%.1f %.1f" % ((s1[2] - s0[2]) / n + upper, (s1[3] - s0[3]) / n + upper))' "$f0" "$f1" "$fe0" "$fe1" "$fn0" "$fn1")
fi

python3 - "$B_DIR" "$BOTS" "$SLOW" "$FAST" "$b0" "$b1" "$e0" "$e1" "$t0" "$t1" "$ROOT" "$c0" "$c1" "$k0" "$k1" "${#ROLLUP_OPTS[@]}" "$INTERVAL" "$HTTP_SHARE" "$j0" "$j1" "$s0" "$s1" "$CP_RETENTION" "${#COMPACT_OPTS[@]}" "$full_rec" <<'PY'
import json, subprocess, sys
rolling, interval = sys.argv[16] != "0", int(sys.argv[17])
d, bots, slow, fast = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
b0, b1, e0, e1, t0, t1 = int(sys.argv[5]), int(sys.argv[6]), int(float(sys.argv[7])), int(float(sys.argv[8])), float(sys.argv[9]), float(sys.argv[10])
root = sys.argv[11]
c0, c1, k0, k1 = int(float(sys.argv[12])), int(float(sys.argv[13])), int(sys.argv[14]), int(sys.argv[15])
summary = json.load(open(d + "/summary.json"))
k = json.load(open(d + "/kinds.json"))
kinds, window = k["run"], k["window"]
server = summary.get("server", {})
dt = t1 - t0
commit = subprocess.run(["git", "-C", root, "log", "-1", "--format=%h %cs %s"], capture_output=True, text=True).stdout.strip()
rollup = kinds.get("heartbeats", 0) > 0
sealed = subprocess.run(["sh", "-c", "ls %s/op/state/keys/epochs/*.key 2>/dev/null | wc -l" % d], capture_output=True, text=True).stdout.strip() != "0"
polls_per_day = slow * 86400 / 60 + fast * 86400 / 15
s0 = [int(x) for x in sys.argv[21].split()]
s1 = [int(x) for x in sys.argv[22].split()]
cp_retention, compacting = sys.argv[23] == "yes", sys.argv[24] != "0"
records = max(1, e1 - e0)
# Per record: the journal's blocks (its length keeps growing once compaction punches it, so its
# blocks are what it costs), the tiles' and bundles' lengths and blocks (below).
journal = (s1[1] - s0[1]) / records
# Per entry of the full bundles (and their level-0 hash tiles) written in the window, plus the
# hash tiles above level 0 (32 bytes per 256 entries, per 65,536, ...), which fill too slowly to
# be seen whole in a window.
covered = max(1, (s1[6] - s0[6]) * 256)
upper = 32 / 256 + 32 / 65536
tiles_len, tiles_disk = (s1[2] - s0[2]) / covered + upper, (s1[3] - s0[3]) / covered + upper
# Records per bot-day: heartbeats records (one per bot that polled in an interval) scale with the
# interval, measured at `interval` and scaled to the default hour; the others (a session's first
# contact, machine information, ...) do not.
hb = window.get("heartbeats", 0)
other = (e1 - e0) - hb
rec_per_bot_day = (other + hb * (interval / 3600 if rolling else 1)) / dt * 86400 / bots
# Checkpoints come once a second whatever the load: counted per day, as many as serve keeps in
# the long run (all, or with retention one per hour past its window, which holds a constant
# number of files rather than a growing one).
ncp = max(1, k1 - k0)
cp_len, cp_disk = (s1[4] - s0[4]) / ncp, (s1[5] - s0[5]) / ncp
cp_per_day = (k1 - k0) / dt * 86400
cp_kept_per_day = 24 if cp_retention else cp_per_day
# With naming, one record a bot-day (its first of the UTC day) describes its bot: it costs what
# the second run measured instead of what the window's naming records cost.
naming = sys.argv[25] != "0"
if naming:
    full_len, full_disk = (float(x) for x in sys.argv[25].split())
    extra_len, extra_disk = full_len - tiles_len, full_disk - tiles_disk
else:
    extra_len = extra_disk = 0.0
per_bot_day_len = rec_per_bot_day * (journal + tiles_len) + extra_len + cp_kept_per_day * cp_len / bots
per_bot_day = rec_per_bot_day * (journal + tiles_disk) + extra_disk + cp_kept_per_day * cp_disk / bots
print("operation: %d bots (%d polling every 60 s, %d every 15 s, +-50%%; %s of them over HTTP; cipher mix), steady state measured over %.0f s" % (bots, slow, fast, sys.argv[18], dt))
print("  tree: %s" % commit)
print("  heartbeats rolled up: %s (measured every %d s, scaled to the default hour); personal data sealed: %s; journal compacted: %s; old checkpoints pruned: %s" % (
    "yes" if rollup else "no (one record per poll)", interval, "yes" if sealed else "no", "yes" if compacting else "no", "yes" if cp_retention else "no"))
print("  record kinds: %s; in the window: %s" % (json.dumps(kinds), json.dumps(window)))
print("  per record: journal %.0f B on disk; tiles and entry bundles %.0f B (%.0f B on disk)" % (journal, tiles_len, tiles_disk))
if naming:
    print("  records naming the leaf that describes their bot: the window's; a record describing its bot (the first of each bot-day), measured in a second run: %.0f B (%.0f B on disk)" % (full_len, full_disk))
print("  checkpoints: %.0f a day, %.0f B each (%.0f B on disk), %.0f a day kept in the long run" % (cp_per_day, cp_len, cp_disk, cp_kept_per_day))
print("  records per bot-day %.1f: **%.0f B per bot-day on disk** (%.0f B as file lengths); %.2f B per poll at this mix's %.0f polls per bot-day, %.2f B at a 60 s beacon" % (
    rec_per_bot_day, per_bot_day, per_bot_day_len, per_bot_day * bots / polls_per_day, polls_per_day / bots, per_bot_day / 1440))
print("  journal now: %d B long, %d B on disk (its live tail)" % (s1[0], s1[1]))
print("  records/s %.1f; journal fdatasyncs/s %.1f (group commits, %.1f records each); checkpoints/s %.2f (each: one syncfs, three fsyncs)" % (
    (e1 - e0) / dt, (c1 - c0) / dt, (e1 - e0) / max(1, c1 - c0), (k1 - k0) / dt))
for n in (100000, 1000000):
    print("  %7d bots x 180 days: %.2f TB" % (n, per_bot_day * n * 180 / 1e12))
before = 874e3
print("  before the roll-up (issue 20, measured on main then): ~607 B per heartbeat = ~%.0f KB per bot-day at 60 s; 100k bots x 180 days = %.1f TB, 1M = %.0f TB" % (before / 1e3, before * 1e5 * 180 / 1e12, before * 1e6 * 180 / 1e12))
PY
echo "  load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
