#!/usr/bin/env bash
# threads.sh -- where sinkd's CPU goes under the churn client: CPU time and context switches per
# completed exchange for each named thread (sinkd-worker, -writer, -tiles, -registry).
# Usage: bench/threads.sh [SECONDS] [-- serve options]   (default 8 s; e.g. -- --no-registry)
source "$(dirname "$0")/lib.sh"
DURATION=${1:-8}
[ $# -gt 0 ] && shift
[ "${1:-}" != "--" ] || shift
port=$(free_port)
start_sinkd threads "$port" "${WORKER_OPTS[@]}" --conn-rate-per-ip 0 "$@"
# tid_name cpu_ticks context_switches, one line per thread
snap() {
    local t
    for t in /proc/"$SINKD_PID"/task/*; do
        printf '%s_%s %s %s\n' "$(basename "$t")" "$(cat "$t/comm")" \
            "$(awk '{print $14 + $15}' "$t/stat")" \
            "$(awk '/^voluntary/ {v = $2} /^nonvol/ {n = $2} END {print v + n}' "$t/status")"
    done | sort
}
snap >"$B_DIR/a"
"$TOOLS/churn_client" --target "127.0.0.1:$port" --duration "$DURATION" --conns 200 \
    --source-net 127.0.4.0/24 --sources 32 >"$B_DIR/client.json"
snap >"$B_DIR/b"
stop_sinkd
n=$(json '["completed"]' <"$B_DIR/client.json")
echo "churn $DURATION s, 200 connections: $n exchanges, $(json '["per_second"]' <"$B_DIR/client.json") per second, sinkd workers $SINKD_WORKERS_SHOWN"
# Threads that started after the first reading count from zero.
join -a2 -e0 -o 0,1.2,1.3,2.2,2.3 "$B_DIR/a" "$B_DIR/b" |
    awk -v n="$n" -v hz="$(getconf CLK_TCK)" '{
        d = ($4 - $2) / hz; cs = $5 - $3; tot += d
        printf "%-24s %6.2f s %7.2f us/exchange %6.3f switches/exchange\n", $1, d, d * 1e6 / n, cs / n }
        END { printf "%-24s %6.2f s %7.2f us/exchange\n", "total", tot, tot * 1e6 / n }'
