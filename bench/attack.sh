#!/usr/bin/env bash
# attack.sh -- honest bots' reply latency while sinkd is under attack: a quiet baseline, then the
# same swarm with each attack from bench/attack/attack.c running; prints p50/p99 quiet vs under
# attack, server RSS during each attack, and events lost (replies the swarm received that are
# not durable contacts in the log). p99 is over every reply, including each bot's first hello and
# machine information, which all the bots send at once when a phase starts; hb_p99 is over
# heartbeats on sessions already set up only (the steady state).
# Usage: bench/attack.sh [SECONDS] [BOTS]   (defaults 15 s, 2000 bots)
# ATTACK_PHASES="quiet per-ip-cap" runs only the phases named (quiet first, for the ratio).
source "$(dirname "$0")/lib.sh"
DURATION=${1:-15}
BOTS=${2:-2000}

# name | attack options (empty: quiet baseline)
PHASES=(
    "quiet|"
    "slowloris|--mode slowloris --conns 3000 --drip-ms 1000"
    "per-ip-cap|--mode slowloris --conns 500 --sources 1 --drip-ms 1000"
    "conn-flood|--mode flood --conns 200 --rst"
    "garbage|--mode garbage --conns 200 --rst"
    # An attacker that does not wait for the server: gives up after 20 ms and reconnects, so
    # holding refused peers (--refuse-hold-ms) cannot slow it down.
    "garbage-impatient|--mode garbage --conns 200 --rst --hold-ms 20"
    "oversize|--mode oversize --conns 300 --hold-ms 15000"
    "lznt1-bomb|--mode bomb --conns 200 --rst"
    "proxy-untrusted|--mode proxy --conns 200 --rst"
)

printf 'attack: %s s per phase, %s honest bots (PROXY v2 via 127.0.1.0/24, heartbeat 1 s),\n' "$DURATION" "$BOTS"
printf '        attackers from 127.0.3.0/24 on the same %s-core box; sinkd workers %s, default limits\n' "$(nproc)" "$SINKD_WORKERS_SHOWN"
printf '%-16s %7s %7s %9s %8s %9s %9s %9s %7s %s\n' phase p50_us p99_us p99/quiet hb_p99_us hb/quiet rss_max_kB replies lost attack
quiet_p99=0
quiet_hb=0
for phase in "${PHASES[@]}"; do
    name=${phase%%|*}
    opts=${phase#*|}
    if [ -n "${ATTACK_PHASES:-}" ] && [[ " $ATTACK_PHASES " != *" $name "* ]]; then
        continue
    fi
    port=$(free_port)
    start_sinkd "$name" "$port" "${WORKER_OPTS[@]}" --trusted-proxy 127.0.1.0/24
    # 2 s for the attack to reach full strength before the honest bots start
    # shellcheck disable=SC2086
    start_attack "$name" "$port" $((DURATION + 3)) 2 $opts
    apid=$APID
    "$SINKD" swarm --target "127.0.0.1:$port" --bots "$BOTS" --concurrency "$BOTS" \
        --duration "$DURATION" --source-net 127.0.1.0/24 --heartbeat-ms 1000 --preset worm \
        --json "$B_DIR/$name.swarm.json" >"$B_DIR/$name.swarm.txt" 2>&1 &
    spid=$!
    B_PIDS+=("$spid")
    rss_max=0
    while kill -0 "$spid" 2>/dev/null; do
        r=$(rss_kb "$SINKD_PID" 2>/dev/null || echo 0)
        [ "$r" -gt "$rss_max" ] && rss_max=$r
        sleep 0.5
    done
    wait "$spid" || true
    [ -n "$apid" ] && { wait "$apid" || true; }
    alive=yes
    kill -0 "$SINKD_PID" 2>/dev/null || alive=DIED
    stop_sinkd
    s="$B_DIR/$name.swarm.json"
    [ -s "$s" ] || die "$name: swarm wrote no summary: $(tail -3 "$B_DIR/$name.swarm.txt")"
    p50=$(json '["latency_us"]["p50"]' <"$s")
    p99=$(json '["latency_us"]["p99"]' <"$s")
    hb=$(json '["heartbeat_latency_us"]["p99"]' <"$s")
    replies=$(json '["replies_received"]' <"$s")
    honest=$("$SINKD" contacts --justification "benchmark: count honest contacts" --state "$B_DIR/$name/state" | grep -vc '"src_ip":"127\.0\.3\.' || true)
    lost=$((replies > honest ? replies - honest : 0))
    [ "$name" = quiet ] && { quiet_p99=$p99; quiet_hb=$hb; }
    ratio=$(awk -v a="$p99" -v q="$quiet_p99" 'BEGIN{printf "%.2f", a / q}')
    hb_ratio=$(awk -v a="$hb" -v q="$quiet_hb" 'BEGIN{printf "%.2f", a / q}')
    what="-"
    if [ -n "$apid" ]; then
        what=$(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print("conns %d, refused %d, closed by server %d, by us %d, answered %d, sent %d B" % (d["attempts"], d["refused"]+d["connect_errors"], d["closed_by_server"], d["closed_by_us"], d["answered"], d["bytes_sent"]))' "$B_DIR/$name.attack")
    fi
    errs=$(json '["errors"]' <"$s")
    printf '%-16s %7s %7s %9s %8s %9s %9s %9s %7s %s\n' "$name" "$p50" "$p99" "${ratio}x" "$hb" "${hb_ratio}x" "$rss_max" "$replies" "$lost" "$what"
    [ "$alive" = yes ] || echo "  server DIED during $name"
    [ "$(json '["errors"].values()' <"$s" | tr -cd '1-9')" = "" ] ||
        echo "  honest swarm errors: $errs (replied to $(json '["bots_replied"]' <"$s") of $(json '["bots_run"]' <"$s"))"
    if [ "$name" = per-ip-cap ]; then
        echo "  one-address log lines: cap $(grep -c 'more than 64 connections from this address' "$B_DIR/$name/serve.log" || true), rate $(grep -c 'new connections per second from this address' "$B_DIR/$name/serve.log" || true) (+ suppressed: $(grep -Eo '[0-9]+ more bad peers' "$B_DIR/$name/serve.log" | awk '{s+=$1} END{print s+0}'))"
    fi
done
echo "goal: p99 under attack <= 50 ms and <= 3x quiet p99; lost = replies received - honest contacts in the log"
echo "(p99: every reply, each phase starting with all $BOTS bots connecting at once; hb_p99: heartbeats only)"
