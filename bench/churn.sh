#!/usr/bin/env bash
# churn.sh -- accept, PlugX poll, reply, close, as fast as one C client can drive it: sinkd
# (durable log) against nginx `stream { return ...; }`, same client, same box, in one run.
# Prints connections/s for each and whether every completed exchange is a durable contact in
# the log. A third server, bench/floor_server.c, does only what the exchange itself asks at the
# socket level (wait for the 16-byte poll, answer, let the bot close) in a bare epoll loop with no
# log: what the exchange allows with this client on this box. It runs again with --close-first,
# closing right after its reply as nginx does (a PlugX C2 must not), to show what leaving the
# close to the bot costs the client.
# This VM's speed drifts by 10-20 % over minutes, so every figure is taken in ROUNDS rounds
# (default 3), each running all servers back to back; ratios are computed within a round and
# their median across rounds is the result.
# The client closes with an RST by default (no TIME_WAIT, docs/bench.md); CHURN_CLOSE=fin makes
# it close normally, as a bot's closesocket() does, to show the gap is not an RST artefact.
# Usage: bench/churn.sh [SECONDS] [CONCURRENT]   (defaults 10 s, 200 connections; ROUNDS=N,
#        CHURN_CLOSE=rst|fin)
source "$(dirname "$0")/lib.sh"
DURATION=${1:-10}
CONNS=${2:-200}
ROUNDS=${ROUNDS:-3}
CLOSE_OPTS=()
case "${CHURN_CLOSE:-rst}" in
rst) CLOSE_TEXT="client closes with RST (SO_LINGER 0: no TIME_WAIT)" ;;
fin) CLOSE_OPTS=(--fin) CLOSE_TEXT="client closes normally (FIN; TIME_WAIT on the client)" ;;
*) die "CHURN_CLOSE must be rst or fin" ;;
esac
client="$TOOLS/churn_client"
RATES="$B_DIR/rates.txt" # lines: ROUND NAME CONN_PER_S
: >"$RATES"

# run_client NAME PORT SERVER_CPU_FN [client options]: client JSON in $B_DIR/NAME.json, and the
# CPU seconds the client and the server used, to show which side was the limit.
run_client() {
    local name=$1 port=$2 cpufn=$3
    shift 3
    local before after
    before=$($cpufn)
    local TIMEFORMAT='%U %S'
    { time "$client" --target "127.0.0.1:$port" --duration "$DURATION" --conns "$CONNS" \
        --source-net 127.0.4.0/24 --sources 32 "${CLOSE_OPTS[@]}" "$@" >"$B_DIR/$name.json"; } 2>"$B_DIR/$name.time"
    after=$($cpufn)
    CLIENT_CPU=$(awk '{print $1 + $2}' "$B_DIR/$name.time")
    SERVER_CPU=$(awk -v a="$before" -v b="$after" 'BEGIN{printf "%.1f", b - a}')
}

# record ROUND LABEL NAME [extra text]: prints one server's line and keeps its rate.
record() {
    local round=$1 label=$2 name=$3 extra=${4:-}
    local rate
    rate=$(json '["per_second"]' <"$B_DIR/$name.json")
    echo "$round $label $rate" >>"$RATES"
    printf '%-22s %8s conn/s  completed %8s  %sp50 %s us p99 %s us  resets %s  cpu: server %ss client %ss\n' \
        "$label" "$rate" "$(json '["completed"]' <"$B_DIR/$name.json")" "$extra" \
        "$(json '["latency_us"]["p50"]' <"$B_DIR/$name.json")" \
        "$(json '["latency_us"]["p99"]' <"$B_DIR/$name.json")" \
        "$(json '["resets"]' <"$B_DIR/$name.json")" "$SERVER_CPU" "$CLIENT_CPU"
}

sinkd_cpu() { cpu_s "$SINKD_PID"; }
run_sinkd() { # ROUND LABEL [serve options]
    local round=$1 label=$2 name="$2-r$1" port
    shift 2
    port=$(free_port)
    # Per-address rate limit off: 32 client addresses stand for thousands of bots here.
    start_sinkd "$name" "$port" "${WORKER_OPTS[@]}" --conn-rate-per-ip 0 "$@"
    run_client "$name" "$port" sinkd_cpu
    stop_sinkd
    local completed contacts
    completed=$(json '["completed"]' <"$B_DIR/$name.json")
    contacts=$(contacts_total "$name")
    [ "$contacts" -ge "$completed" ] || LOST=$((LOST + completed - contacts))
    record "$round" "$label" "$name" "durable contacts $contacts, $([ "$contacts" -ge "$completed" ] &&
        echo "none lost" || echo "LOST $((completed - contacts))")  "
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "${B_DIR:?}/$name/state" # ~1 GB over a full run
}

run_nginx() { # ROUND
    local name="nginx-r$1" port
    port=$(free_port)
    start_nginx "$name" "load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
stream { server { listen 127.0.0.1:$port reuseport; return \"0123456789abcdef\"; } }"
    run_client "$name" "$port" nginx_cpu_s --expect 16
    stop_nginx
    record "$1" nginx-stream-return "$name"
}

floor_cpu() { cpu_s "$FLOOR_PID"; }
run_floor() { # ROUND LABEL [floor_server options]
    local round=$1 label=$2 name="$2-r$1" port
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
    record "$round" "$label" "$name"
}

echo "churn: ${DURATION} s per server, $CONNS concurrent client connections, 1 client thread,"
echo "       sources 127.0.4.1-32, $CLOSE_TEXT,"
echo "       $(nproc) cores shared by client and server, open-files limit $FD_LIMIT,"
echo "       sinkd workers $SINKD_WORKERS_SHOWN, nginx worker_processes $NGINX_WORKERS, $ROUNDS rounds"
LOST=0
# Warm-up, not counted: the first seconds after a build run slower whichever server comes first.
DURATION=2 run_floor 0 warm-up >/dev/null
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round"
    run_sinkd "$round" sinkd-defaults
    run_nginx "$round"
    run_floor "$round" protocol-floor
    run_floor "$round" floor-close-first --close-first
    run_sinkd "$round" sinkd-no-enrich --no-enrich
    # The group-commit delay under load is on by default (docs/evidence.md): its share.
    run_sinkd "$round" sinkd-no-commit-delay --commit-delay-us 0
    # The per-address rate limit on (as in a real deployment) but never reached, so the listener
    # drop filter is attached and every segment passes it; with and without the filter: its cost.
    run_sinkd "$round" sinkd-rate-limit-on --conn-rate-per-ip 1000000 --conn-burst-per-ip 1000000
    run_sinkd "$round" sinkd-rate-limit-no-filter --conn-rate-per-ip 1000000 \
        --conn-burst-per-ip 1000000 --syn-ban-after 0
done

# Ratios within each round, then their median over the rounds.
python3 - "$RATES" "$LOST" <<'EOF'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    rnd, name, rate = line.split()
    rates.setdefault(name, {})[rnd] = float(rate)
rounds = sorted(rates["nginx-stream-return"], key=int)
pairs = [("sinkd-defaults", "nginx-stream-return", "sinkd/nginx (goal >= 1.0x)"),
         ("sinkd-no-enrich", "nginx-stream-return", "sinkd --no-enrich/nginx"),
         ("sinkd-no-commit-delay", "nginx-stream-return", "sinkd --commit-delay-us 0/nginx"),
         ("protocol-floor", "nginx-stream-return", "protocol-floor/nginx"),
         ("floor-close-first", "nginx-stream-return", "floor-close-first/nginx"),
         ("sinkd-defaults", "protocol-floor", "sinkd/protocol-floor"),
         ("sinkd-rate-limit-on", "sinkd-rate-limit-no-filter", "listener filter on/off")]
print("ratios per round (servers of one round ran back to back), median last:")
for a, b, label in pairs:
    per = [rates[a][r] / rates[b][r] for r in rounds]
    print("  %-34s %s   median %.2fx" % (label, "  ".join("%.2fx" % x for x in per),
                                          statistics.median(per)))
lost = int(sys.argv[2])
print("durable: " + ("every completed exchange is a contact in the log" if lost == 0
                     else "LOST %d acknowledged exchanges" % lost))
EOF
