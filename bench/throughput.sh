#!/usr/bin/env bash
# throughput.sh -- bot messages per second end to end at the worm's mix (`sinkd swarm --preset
# worm`: raw TCP, HTTP body and header forms, 2% of an unknown variant, over PROXY v2) against a
# passive server, counted from the evidence log (contact records plus the polls its heartbeats
# roll-ups count), with the swarm's reply latencies; anchored on `openssl speed sha256`, the
# hashing ceiling of the Merkle log on this box. SINKD_OPTS="--heartbeat-interval 0" measures
# the server without the roll-up (a durable record for every poll).
# Usage: bench/throughput.sh [SECONDS] [BOTS] [HEARTBEAT_MS]   (defaults 20 s, 5000, 250)
source "$(dirname "$0")/lib.sh"
DURATION=${1:-20}
BOTS=${2:-5000}
HEARTBEAT=${3:-250}

port=$(free_port)
start_sinkd tp "$port" "${WORKER_OPTS[@]}" --trusted-proxy 127.0.1.0/24 \
    --max-per-ip $((BOTS + 10)) --max-connections $((BOTS + 1000))
cpu0=$(cpu_s "$SINKD_PID")
"$SINKD" swarm --target "127.0.0.1:$port" --bots "$BOTS" --concurrency "$BOTS" \
    --duration "$DURATION" --source-net 127.0.1.0/24 --heartbeat-ms "$HEARTBEAT" \
    --preset worm --json "$B_DIR/tp.json" >"$B_DIR/tp.txt" 2>&1 ||
    die "swarm failed: $(tail -3 "$B_DIR/tp.txt")"
rss=$(rss_kb "$SINKD_PID")
cpu1=$(cpu_s "$SINKD_PID")
stop_sinkd
"$SINKD" contacts --state "$B_DIR/tp/state" --summary >"$B_DIR/tp.summary.json"
contacts=$(json '["contacts"]' <"$B_DIR/tp.summary.json")
records=$(json '["records"]' <"$B_DIR/tp.summary.json")
replies=$(json '["replies_received"]' <"$B_DIR/tp.json")
logsize=$(du -sb "$B_DIR/tp/state" | awk '{print $1}')
echo "throughput: $BOTS bots (the worm's mix: --preset worm, PROXY v2), heartbeat ${HEARTBEAT} ms +-50%, ${DURATION} s, sinkd workers $SINKD_WORKERS_SHOWN ${SINKD_OPTS:-}, $(nproc) cores shared with the swarm"
awk -v c="$contacts" -v n="$records" -v d="$DURATION" -v r="$replies" -v cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{print b-a}')" 'BEGIN {
    printf "  messages in the log %d in %s s = %.0f messages/s, in %d records; replies received %d (%s)\n", c, d, c / d, n, r, (c >= r ? "none lost" : "LOST " r - c)
    printf "  server CPU %.1f s = %.0f us per message\n", cpu, cpu * 1e6 / c }'
echo "  swarm latency us: $(json '["latency_us"]' <"$B_DIR/tp.json"), errors $(json '["errors"]' <"$B_DIR/tp.json")"
echo "  by type: $(json '["by_type"]' <"$B_DIR/tp.summary.json"); group commits: $(json '["server"]["batches"]' <"$B_DIR/tp.summary.json") (max batch $(json '["server"]["max_batch"]' <"$B_DIR/tp.summary.json"))"
echo "  server side: $(grep -h "contact-to-durable" "$B_DIR/tp/serve.log" | sed 's/^sinkd: //')"
echo "  server RSS at end ${rss} kB; state directory $logsize bytes ($((logsize / (contacts > 0 ? contacts : 1))) B/contact)"
# Anchor: one SHA-256 core on this box. A contact costs its leaf hash over the record (~B
# bytes) plus about two 64-byte interior compressions amortised in the tree.
sha=$(openssl speed -seconds 2 -bytes 1024 sha256 2>/dev/null | awk '/^sha256/ {print $NF}')
per=$((logsize / (contacts > 0 ? contacts : 1)))
awk -v s="$sha" -v b="$per" -v c="$contacts" -v d="$DURATION" 'BEGIN {
    sub(/k$/, "", s); bps = s * 1000
    ceil = bps / (b + 128)
    printf "  anchor: openssl sha256 %.0f MB/s (1 KiB blocks) = ceiling ~%.0f contacts/s per core for %d-byte records; sinkd reached %.1f%% of it\n", bps / 1e6, ceil, b, 100 * (c / d) / ceil }'
