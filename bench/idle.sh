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

# hold NAME PORT PID_RSS_FN DIRTY_FN [client options]: runs the client, waits until every
# connection is set up, lets it settle, reads memory, then ends the client.
hold() {
    local name=$1 port=$2 rssfn=$3 dirtyfn=$4
    shift 4
    sleep 1
    local rss0 dirty0 rss1 dirty1 est slab0 slab1
    rss0=$($rssfn)
    dirty0=$($dirtyfn)
    slab0=$(slab_kb)
    rm -f "$B_DIR/$name.ready"
    "$client" --target "127.0.0.1:$port" --count "$COUNT" --duration $((SETTLE + 120)) \
        --source-net 127.0.5.0/24 --sources 250 --heartbeat-s 60 \
        --ready-file "$B_DIR/$name.ready" "$@" >"$B_DIR/$name.client" &
    local cpid=$!
    B_PIDS+=("$cpid")
    for _ in $(seq 1 1200); do
        [ -s "$B_DIR/$name.ready" ] && break
        sleep 0.1
    done
    [ -s "$B_DIR/$name.ready" ] || die "$name: client did not finish setting up"
    sleep "$SETTLE"
    rss1=$($rssfn)
    dirty1=$($dirtyfn)
    slab1=$(slab_kb)
    est=$(ss -Htn state established "dport = :$port" | wc -l)
    kill -TERM "$cpid"
    wait "$cpid" || true
    local per per_dirty
    per=$(awk -v a="$rss0" -v b="$rss1" -v n="$est" 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')
    per_dirty=$(awk -v a="$dirty0" -v b="$dirty1" -v n="$est" 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')
    printf '%-6s %5s connections held (ss), RSS %6s -> %6s kB, Private_Dirty %6s -> %6s kB: %5s B/conn (RSS), %5s B/conn (dirty)\n' \
        "$name" "$est" "$rss0" "$rss1" "$dirty0" "$dirty1" "$per" "$per_dirty"
    printf '       kernel slab, box-wide: %s -> %s kB = %s B per connection, both ends (client and server socket)\n' \
        "$slab0" "$slab1" "$(awk -v a="$slab0" -v b="$slab1" -v n="$est" 'BEGIN{printf "%.0f", (b - a) * 1024 / n}')"
    printf '       client: %s\n' "$(tail -1 "$B_DIR/$name.client")"
    eval "PER_$name=$per"
}

echo "idle: $COUNT connections from 250 sources in 127.0.5.0/24, settle ${SETTLE} s, open-files limit $FD_LIMIT"
echo "      (one client process and one server process each hold $COUNT descriptors)"

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
