#!/usr/bin/env bash
# churn.sh -- accept, PlugX poll, reply, close, as fast as one C client can drive it: sinkd
# (durable log, with and without enrichment) against nginx `stream { return ...; }`, same client,
# same box, in one run. Prints connections/s for each, the ratio, and whether every completed
# exchange is a durable contact in the log. A third server, bench/floor_server.c, does only what
# the exchange itself asks at the socket level (wait for the 16-byte poll, answer, let the bot
# close) in a bare epoll loop with no log: what the exchange itself allows with this client on
# this box. The run also prints sinkd against that floor, and the floor against nginx (nginx
# answers at accept and closes first, which costs the client less per connection; the floor run
# again with --close-first shows how much).
# Usage: bench/churn.sh [SECONDS] [CONCURRENT]   (defaults 10 s, 200 connections)
source "$(dirname "$0")/lib.sh"
DURATION=${1:-10}
CONNS=${2:-200}
client="$TOOLS/churn_client"

# run_client NAME PORT SERVER_CPU_FN [client options]: client JSON in $B_DIR/NAME.json, and the
# CPU seconds the client and the server used, to show which side was the limit.
run_client() {
    local name=$1 port=$2 cpufn=$3
    shift 3
    local before after
    before=$($cpufn)
    local TIMEFORMAT='%U %S'
    { time "$client" --target "127.0.0.1:$port" --duration "$DURATION" --conns "$CONNS" \
        --source-net 127.0.4.0/24 --sources 32 "$@" >"$B_DIR/$name.json"; } 2>"$B_DIR/$name.time"
    after=$($cpufn)
    CLIENT_CPU=$(awk '{print $1 + $2}' "$B_DIR/$name.time")
    SERVER_CPU=$(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.1f", b - a}')
}

sinkd_cpu() { cpu_s "$SINKD_PID"; }

run_sinkd() { # NAME [serve options]
    local name=$1 port
    shift
    port=$(free_port)
    # Per-address rate limit off: 32 client addresses stand for thousands of bots here.
    start_sinkd "$name" "$port" "${WORKER_OPTS[@]}" --conn-rate-per-ip 0 "$@"
    run_client "$name" "$port" sinkd_cpu
    stop_sinkd
    local completed contacts rate
    completed=$(json '["completed"]' <"$B_DIR/$name.json")
    rate=$(json '["per_second"]' <"$B_DIR/$name.json")
    contacts=$(contacts_total "$name")
    printf '%-22s %8s conn/s  completed %8s  durable contacts %8s  %s  p50 %s us p99 %s us  cpu: server %ss client %ss\n' \
        "$name" "$rate" "$completed" "$contacts" \
        "$([ "$contacts" -ge "$completed" ] && echo "none lost" || echo "LOST $((completed - contacts))")" \
        "$(json '["latency_us"]["p50"]' <"$B_DIR/$name.json")" \
        "$(json '["latency_us"]["p99"]' <"$B_DIR/$name.json")" "$SERVER_CPU" "$CLIENT_CPU"
    eval "RATE_${name//-/_}=$rate"
}

echo "churn: ${DURATION} s per server, $CONNS concurrent client connections, 1 client thread,"
echo "       sources 127.0.4.1-32, client closes with RST (SO_LINGER 0: no TIME_WAIT),"
echo "       $(nproc) cores shared by client and server, open-files limit $FD_LIMIT,"
echo "       sinkd workers $SINKD_WORKERS_SHOWN, nginx worker_processes $NGINX_WORKERS"
run_sinkd sinkd-no-enrich --no-enrich
run_sinkd sinkd-enrich
# The group-commit delay under load is on by default (docs/evidence.md); this shows its share.
run_sinkd sinkd-no-commit-delay --commit-delay-us 0

port=$(free_port)
start_nginx nginx "load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
stream { server { listen 127.0.0.1:$port reuseport; return \"0123456789abcdef\"; } }"
run_client nginx "$port" nginx_cpu_s --expect 16
stop_nginx
RATE_nginx=$(json '["per_second"]' <"$B_DIR/nginx.json")
print_anchor() { # LABEL NAME
    printf '%-22s %8s conn/s  completed %8s  p50 %s us p99 %s us  resets %s  cpu: server %ss client %ss\n' \
        "$1" "$(json '["per_second"]' <"$B_DIR/$2.json")" "$(json '["completed"]' <"$B_DIR/$2.json")" \
        "$(json '["latency_us"]["p50"]' <"$B_DIR/$2.json")" \
        "$(json '["latency_us"]["p99"]' <"$B_DIR/$2.json")" \
        "$(json '["resets"]' <"$B_DIR/$2.json")" "$SERVER_CPU" "$CLIENT_CPU"
}
print_anchor nginx-stream-return nginx

run_floor() { # NAME LABEL [floor_server options]
    local name=$1 label=$2 port
    shift 2
    port=$(free_port)
    mkdir -p "$B_DIR/$name"
    "$TOOLS/floor_server" --listen "127.0.0.1:$port" --threads "${WORKERS:-$(nproc)}" \
        --duration $((DURATION + 60)) --ready-file "$B_DIR/$name/ready" "$@" >"$B_DIR/$name/out.json" &
    FLOOR_PID=$!
    B_PIDS+=("$FLOOR_PID")
    for _ in $(seq 1 100); do [ -s "$B_DIR/$name/ready" ] && break; sleep 0.05; done
    [ -s "$B_DIR/$name/ready" ] || die "floor_server did not start"
    run_client "$name" "$port" floor_cpu --expect 16
    kill -TERM "$FLOOR_PID"
    wait "$FLOOR_PID" || true
    print_anchor "$label" "$name"
}
floor_cpu() { cpu_s "$FLOOR_PID"; }
run_floor floor protocol-floor
RATE_floor=$(json '["per_second"]' <"$B_DIR/floor.json")
# The same bare server closing right after its reply, as nginx's `return` does (a PlugX C2 must
# not: the bot keeps its session): shows what leaving the close to the bot costs the client.
run_floor floor-close-first floor-close-first --close-first
RATE_floor_close=$(json '["per_second"]' <"$B_DIR/floor-close-first.json")
awk -v a="$RATE_sinkd_no_enrich" -v b="$RATE_sinkd_enrich" -v c="$RATE_sinkd_no_commit_delay" -v n="$RATE_nginx" 'BEGIN {
    printf "ratio sinkd/nginx: %.2fx without enrichment, %.2fx with enrichment (defaults; goal >= 1.0x), %.2fx with --commit-delay-us 0\n", a / n, b / n, c / n }'
awk -v a="$RATE_sinkd_no_enrich" -v b="$RATE_sinkd_enrich" -v f="$RATE_floor" -v n="$RATE_nginx" -v fc="$RATE_floor_close" 'BEGIN {
    printf "ratio protocol-floor/nginx: %.2fx (a bare server that waits for the poll and lets the bot close); closing first itself: %.2fx\n", f / n, fc / n
    printf "ratio sinkd/protocol-floor: %.2fx without enrichment, %.2fx with enrichment (what sinkd costs beyond the exchange itself)\n", a / f, b / f }'
