#!/usr/bin/env bash
# registry_pause_test.sh -- lag you can see (issue 22 item 5): a node follows into PostgreSQL
# (tests/pg/with_postgres.sh) while a swarm calls it; the whole PostgreSQL server is paused
# (SIGSTOP to the postmaster and every backend: a wedged database, a long failover) for 6 s.
# Meanwhile the node keeps answering and logging every bot, its follower stays up, and /metrics
# shows the registry falling behind (sinkd_registry_lag_entries growing, sinkd_registry_behind_
# seconds counting). Once the server runs again the follower catches up by itself (lag 0), and the
# registry holds every contact of the log exactly once.
if [ -z "${SINKD_PG_URL:-}" ]; then
    exec bash "$(dirname "$0")/../pg/with_postgres.sh" bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"

url=$SINKD_PG_URL
port=$(free_port)
mport=$(free_port)
while [ "$mport" = "$port" ]; do mport=$(free_port); done
start_server "$E2E_DIR/node" "$port" --workers 1 --node node-a --registry "$url" \
    --metrics-listen "127.0.0.1:$mport"

metric() { # NAME: its value on the node's /metrics (summed over labels), or -1
    python3 - "127.0.0.1:$mport" "$1" <<'PY'
import re, sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
except OSError:
    print(-1)
    sys.exit(0)
v = [float(m.group(2)) for m in re.finditer(r"^([a-z_]+)(?:\{[^}]*\})? ([0-9.eE+-]+)$", text, re.M)
     if m.group(1) == sys.argv[2]]
print(int(sum(v)) if v else -1)
PY
}

"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --seed 5 --duration 14 \
    --concurrency 300 --source-net 127.0.1.0/24 --heartbeat-ms 300 \
    --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" &
swarm=$!
E2E_PIDS+=("$swarm")
sleep 3
[ "$(metric sinkd_registry_up)" = 1 ] || fail "the follower is not up before the pause"

# Pause the whole server: the postmaster first (so it starts nothing new), then its children.
postmaster=$(head -n 1 "$SINKD_PG_HOST/../data/postmaster.pid")
pg_pids=("$postmaster" $(pgrep -P "$postmaster"))
resume() { kill -CONT "${pg_pids[@]}" 2>/dev/null || true; }
trap 'resume; e2e_cleanup' EXIT
kill -STOP "${pg_pids[@]}"
contacts0=$(metric sinkd_contacts_total)
lags=()
for _ in $(seq 1 12); do
    sleep 0.5
    lags+=("$(metric sinkd_registry_lag_entries)")
done
contacts1=$(metric sinkd_contacts_total)
behind=$(metric sinkd_registry_behind_seconds)
up=$(metric sinkd_registry_up)
resume
echo "paused 6 s: contacts $contacts0 -> $contacts1, lag ${lags[*]}, behind ${behind} s, follower up $up"
((contacts1 > contacts0 + 100)) || fail "the node did not go on logging while PostgreSQL was paused"
((lags[11] > lags[0] && lags[0] > 0)) || fail "the lag did not grow while PostgreSQL was paused: ${lags[*]}"
((behind >= 4)) || fail "sinkd_registry_behind_seconds was $behind after a 6 s pause"
[ "$up" = 1 ] || fail "the follower stopped during the pause (it must wait, not give up)"

wait "$swarm" || fail "the swarm failed across the pause"
python3 - "$E2E_DIR/swarm.json" <<'PY' || fail "bots went unanswered across the pause"
import json, sys
s = json.load(open(sys.argv[1]))
e = s["errors"]
assert s["bots_replied"] == s["bots_run"] == 300, s
assert e["reset"] == 0 and e["timeout"] == 0 and e["protocol"] == 0, s
PY
# Caught up by itself: lag 0 within 30 s, nothing restarted.
for _ in $(seq 1 60); do
    [ "$(metric sinkd_registry_lag_entries)" = 0 ] && break
    sleep 0.5
done
[ "$(metric sinkd_registry_lag_entries)" = 0 ] || fail "the registry did not catch up after the pause"
[ "$(metric sinkd_registry_behind_seconds)" = 0 ] || fail "behind_seconds is not 0 once caught up"
stop_server
grep -q "registry follower stopped" "$E2E_DIR/serve.log" && fail "the follower stopped: $(grep 'registry follower' "$E2E_DIR/serve.log")"
logged=$("$SINKD_BINARY" contacts --state "$E2E_DIR/node" --summary | json_field /dev/stdin 'd["contacts"]')
in_registry=$(psql "$url" -Atc "SELECT sum(contacts) FROM day_cc")
echo "contacts logged $logged, in the registry $in_registry"
[ "$logged" = "$in_registry" ] || fail "the registry holds $in_registry contacts, the log $logged"
echo "ok: PostgreSQL paused 6 s, the node served, the lag showed and closed by itself"
