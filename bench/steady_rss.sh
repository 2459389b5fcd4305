#!/usr/bin/env bash
# steady_rss.sh -- does sinkd's memory grow with the records it logs? Runs the churn client
# against one server for SECONDS and prints the server's RSS every 5 s, then the growth per
# exchange over the run (after the first sample, which includes warming up the pools and rings).
# Usage: bench/steady_rss.sh [SECONDS]   (default 40 s)
source "$(dirname "$0")/lib.sh"
DURATION=${1:-40}
[ "$DURATION" -ge 10 ] || die "run at least 10 s (RSS is sampled every 5 s)"
port=$(free_port)
start_sinkd steady "$port" "${WORKER_OPTS[@]}" --conn-rate-per-ip 0
"$TOOLS/churn_client" --target "127.0.0.1:$port" --duration "$DURATION" --conns 200 \
    --source-net 127.0.4.0/24 --sources 32 >"$B_DIR/client.json" &
cpid=$!
B_PIDS+=("$cpid")
first=
for i in $(seq 1 $((DURATION / 5))); do
    sleep 5
    r=$(rss_kb "$SINKD_PID")
    [ -n "$first" ] || first=$r
    last=$r
    echo "t=$((i * 5)) s  RSS $r kB"
done
wait "$cpid" || true
stop_sinkd
n=$(json '["completed"]' <"$B_DIR/client.json")
echo "exchanges $n in $DURATION s; RSS $first -> $last kB after the first sample:" \
    "$(awk -v a="$first" -v b="$last" -v n="$n" 'BEGIN{printf "%.2f", (b - a) * 1024 / n}') B per exchange (over all exchanges)"
