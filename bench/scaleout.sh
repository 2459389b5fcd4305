#!/usr/bin/env bash
# scaleout.sh -- NODES sinkd nodes, one PostgreSQL registry, BOTS emulated bots with heartbeats,
# on this box (issue 22 item 3): each node on its own loopback address (127.0.0.11, .12, ...) with
# its own state directory, key and node name, following into one throwaway PostgreSQL server
# (tests/pg/with_postgres.sh, durable: fsync, synchronous_commit and full_page_writes on); each
# node called by one `sinkd swarm` process of its own, so every process stays under the
# per-process descriptor limit (20,000 here, not raisable: a node holds at most ~18,500 bots, a
# swarm process as many, so BOTS / NODES must stay below that). Prints, beside the same per-node
# load on one node (the single-node figure): bots held (connections open at the nodes), contacts/s,
# registry lag (max, at the end, catch-up time), CPU per contact (nodes, PostgreSQL, swarms) and
# memory per bot (user: each process's RSS growth per connection; kernel: box-wide slab growth per
# bot). The driver is bench/scaleout.py.
#
# A swarm bot closes its connection after 2-6 heartbeats and calls again about one heartbeat
# later, so about 80 % of BOTS are connected at a time: 125,000 bots hold ~100,000.
# Usage: bench/scaleout.sh NODES BOTS      e.g. bench/scaleout.sh 7 125000
# SCALEOUT_DURATION seconds per run (200; the swarm spreads first calls over its first 40 %),
# SCALEOUT_HEARTBEAT_MS mean heartbeat interval (20000), SCALEOUT_SINGLE=0 skips the single-node
# run, SCALEOUT_SERVE_OPTS adds serve options to every node (e.g. "--heartbeat-interval 0": a
# record per poll instead of the hourly roll-up). No haproxy in front: its own 20,000 descriptors hold ~9,900 bots (two per connection), fewer
# than one node (docs/scale.md).
set -euo pipefail
me=bench/scaleout.sh
usage() {
    echo "usage: $me NODES BOTS   (1 <= NODES <= 40, BOTS / NODES <= 18000)" >&2
    exit 2
}
[ $# -eq 2 ] || usage
nodes=$1 bots=$2
[[ $nodes =~ ^[1-9][0-9]?$ && $bots =~ ^[1-9][0-9]{0,6}$ ]] || usage
((nodes <= 40 && bots >= nodes && (bots + nodes - 1) / nodes <= 18000)) || usage
duration=${SCALEOUT_DURATION:-200}
heartbeat=${SCALEOUT_HEARTBEAT_MS:-20000}
if ! [[ $duration =~ ^[1-9][0-9]*$ ]] || ((duration < 30)); then
    echo "$me: SCALEOUT_DURATION must be >= 30 s" >&2
    exit 2
fi
[[ $heartbeat =~ ^[1-9][0-9]*$ ]] || { echo "$me: SCALEOUT_HEARTBEAT_MS must be ms" >&2; exit 2; }

source "$(dirname "$0")/lib.sh"
single=()
[ "${SCALEOUT_SINGLE:-1}" = 0 ] || single=(--single)
echo "# $(uname -m), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
    "open files $(ulimit -n) per process, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## $nodes nodes, $bots bots ($me $nodes $bots${SCALEOUT_SERVE_OPTS:+, serve $SCALEOUT_SERVE_OPTS})"
SINKD_PG_DURABLE=1 timeout $((4 * duration + 2400)) bash "$ROOT/tests/pg/with_postgres.sh" \
    python3 "$ROOT/bench/scaleout.py" --sinkd "$SINKD" --dir "$B_DIR" --duration "$duration" \
    --heartbeat-ms "$heartbeat" --serve-opts "${SCALEOUT_SERVE_OPTS:-}" "${single[@]}" "$nodes" "$bots"
