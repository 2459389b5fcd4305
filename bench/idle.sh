#!/usr/bin/env bash
# idle.sh -- user-space memory per idle bot connection (and the kernel's slab growth, both ends of
# each connection, box-wide): sinkd holding N connections that have
# done hello + machine-info and heartbeat every 60 s, against nginx holding N idle HTTP
# keep-alive connections, in one run. Bounded by the 20,000 open-files hard limit per process.
# Usage: bench/idle.sh [CONNECTIONS] [SETTLE_SECONDS]   (defaults 18000, 10)
source "$(dirname "$0")/lib.sh"
COUNT=${1:-18000}
SETTLE=${2:-10}
client="$TOOLS/idle_client"
[ "$COUNT" -le $((FD_LIMIT - 500)) ] || die "$COUNT connections do not fit the open-files limit $FD_LIMIT"

# start_client NAME PORT COUNT SOURCE_NET [client options]: starts an idle client in the
# background, waits until all COUNT connections are set up; its pid in CLIENT_PID.
start_client() {
    local name=$1 port=$2 count=$3 net=$4
    shift 4
    rm -f "$B_DIR/$name.ready"
    "$client" --target "127.0.0.1:$port" --count "$count" --duration $((2 * SETTLE + 180)) \
        --source-net "$net" --sources 250 --heartbeat-s 60 \
        --ready-file "$B_DIR/$name.ready" "$@" >"$B_DIR/$name.client" &
    CLIENT_PID=$!
    B_PIDS+=("$CLIENT_PID")
    for _ in $(seq 1 1200); do
        [ -s "$B_DIR/$name.ready" ] && return 0
        sleep 0.1
    done
    die "$name: client did not finish setting up"
}
# hold NAME PORT PID_RSS_FN DIRTY_FN [client options]: opens COUNT/2 connections, lets them
# settle and reads memory, then the other half (from other source addresses) and reads again,
# then ends both clients. Two figures per server: bytes per connection over all COUNT (from the
# server before any connection: includes what the first connections pay once, such as caches
# filling to their bound) and the marginal cost of the second half (what each further
# connection costs once those are paid).
hold() {
    local name=$1 port=$2 rssfn=$3 dirtyfn=$4
    shift 4
    sleep 1
    local rss0 dirty0 rss1 dirty1 rssm est estm slab0 slab1 half=$((COUNT / 2))
    rss0=$($rssfn)
    dirty0=$($dirtyfn)
    slab0=$(slab_kb)
    start_client "$name.a" "$port" "$half" 127.0.5.0/24 "$@"
    local cpa=$CLIENT_PID
    sleep "$SETTLE"
    rssm=$($rssfn)
    estm=$(ss -Htn state established "dport = :$port" | wc -l)
    start_client "$name.b" "$port" $((COUNT - half)) 127.0.6.0/24 "$@"
    local cpb=$CLIENT_PID
    sleep "$SETTLE"
    rss1=$($rssfn)
    dirty1=$($dirtyfn)
    slab1=$(slab_kb)
    est=$(ss -Htn state established "dport = :$port" | wc -l)
    kill -TERM "$cpa" "$cpb"
    wait "$cpa" || true
    wait "$cpb" || true
    local per per_dirty marginal
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$est" 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')
    per_dirty=$(awk -v a="$dirty0" -v b="$dirty1" -v n="$est" 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')
    marginal=$(awk -v a="$rssm" -v b="$rss1" -v n=$((est - estm)) 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')
    printf '%-6s %5s connections held (ss), RSS %6s -> %6s kB, Private_Dirty %6s -> %6s kB: %5s B/conn (RSS), %5s B/conn (dirty)\n' \
        "$name" "$est" "$rss0" "$rss1" "$dirty0" "$dirty1" "$per" "$per_dirty"
    printf '       marginal: RSS %s kB at %s connections -> %s kB at %s = %s B per further connection\n' \
        "$rssm" "$estm" "$rss1" "$est" "$marginal"
    printf '       kernel slab, box-wide: %s -> %s kB = %s B per connection, both ends (client and server socket)\n' \
        "$slab0" "$slab1" "$(awk -v a="$slab0" -v b="$slab1" -v n="$est" 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')"
    printf '       clients: %s | %s\n' "$(tail -1 "$B_DIR/$name.a.client")" "$(tail -1 "$B_DIR/$name.b.client")"
    eval "PER_$name=$per"
    eval "MARG_$name=$marginal"
}
echo "idle: $COUNT connections, half from 250 sources in 127.0.5.0/24 then half from 127.0.6.0/24,"
echo "      settle ${SETTLE} s after each half, open-files limit $FD_LIMIT"
echo "      (two client processes hold half each; the server process holds all $COUNT)"

sinkd_rss() { rss_kb "$SINKD_PID"; }
sinkd_dirty() { private_dirty_kb "$SINKD_PID"; }
# Cold: a fresh server. Its writer rings (16,384 slots per worker, calloc'd, paged in as records
# pass through) grow with the first ~33k records, whoever sends them: a fixed cost that lands
# in the cold per-connection figure.
port=$(free_port)
start_sinkd sinkd "$port" "${WORKER_OPTS[@]}" --max-connections $((COUNT + 1000)) \
    --max-per-ip 200 --conn-rate-per-ip 0 --idle-timeout 600000
hold sinkd "$port" sinkd_rss sinkd_dirty
stop_sinkd
echo "       sinkd contacts logged: $(contacts_total sinkd) (2 per connection + heartbeats)"
# Warm: the same, after 60,000 short poll exchanges (50 at a time, so few connections' worth of
# memory is left behind) have cycled the rings once: what each further connection costs.
port=$(free_port)
start_sinkd sinkdw "$port" "${WORKER_OPTS[@]}" --max-connections $((COUNT + 1000)) \
    --max-per-ip 200 --conn-rate-per-ip 0 --idle-timeout 600000
"$TOOLS/churn_client" --target "127.0.0.1:$port" --duration 30 --conns 50 --max-conns 60000 \
    --source-net 127.0.4.0/24 --sources 32 >"$B_DIR/warmup.json"
echo "       warm-up: $(cat "$B_DIR/warmup.json")"
hold sinkdw "$port" sinkd_rss sinkd_dirty
stop_sinkd

# The registry in its own process (`serve --no-registry` + `registry follow`): the serve figure
# is what holding connections costs; the follower's growth is what learning 18,000 new bots
# costs (its SQLite page cache, bounded at 64 MiB), reported per bot.
port=$(free_port)
start_sinkd sinkds "$port" "${WORKER_OPTS[@]}" --max-connections $((COUNT + 1000)) \
    --max-per-ip 200 --conn-rate-per-ip 0 --idle-timeout 600000 --no-registry
"$SINKD" registry follow --state "$B_DIR/sinkds/state" 2>"$B_DIR/sinkds/follow.log" &
FOLLOW_PID=$!
B_PIDS+=("$FOLLOW_PID")
sleep 1
follow_rss0=$(rss_kb "$FOLLOW_PID")
hold sinkds "$port" sinkd_rss sinkd_dirty
follow_rss1=$(rss_kb "$FOLLOW_PID")
kill -TERM "$FOLLOW_PID"
wait "$FOLLOW_PID" || true
stop_sinkd
awk -v a="$follow_rss0" -v b="$follow_rss1" -v n="$COUNT" 'BEGIN {
    printf "       registry follow process (separate): RSS %d -> %d kB = %.0f B per new bot\n", a, b, (b - a) * 1024 / n }'

port=$(free_port)
start_nginx nginx "worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$port reuseport;
        keepalive_timeout 600s;
        keepalive_requests 1000000;
        location / { return 204; }
    }
}"
hold nginx "$port" nginx_workers_rss_kb nginx_workers_dirty_kb --http
stop_nginx
awk -v s="$PER_sinkd" -v w="$PER_sinkdw" -v n="$PER_nginx" 'BEGIN {
    printf "ratio sinkd/nginx bytes per idle connection: cold %.2fx, warm %.2fx (registry follower in-process)\n", s / n, w / n }'
awk -v s="$PER_sinkds" -v n="$PER_nginx" 'BEGIN {
    printf "ratio sinkd/nginx bytes per idle connection, serve with the registry in its own process: %.2fx (goal <= 1.0x)\n", s / n }'
awk -v s="$MARG_sinkd" -v w="$MARG_sinkdw" -v r="$MARG_sinkds" -v n="$MARG_nginx" 'BEGIN {
    printf "ratio sinkd/nginx marginal bytes per further idle connection: cold %.2fx, warm %.2fx, registry in its own process %.2fx\n", s / n, w / n, r / n }'
