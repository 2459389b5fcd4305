#!/usr/bin/env bash
# demo.sh -- run sinkd against a swarm of emulated PlugX bots on loopback and print what happened.
# Usage: scripts/demo.sh path/to/sinkd   (BOTS, DURATION, ENFORCE from the environment)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
bots=${BOTS:-10000}
duration=${DURATION:-20}
export SINKD_DATA_DIR="$here/data"

out="$here/out/demo-$(date -u +%Y%m%dT%H%M%SZ)"
state="$out/state"
mkdir -p "$out"

# A free loopback port (the demo never leaves 127.0.0.0/8).
port=""
for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 20000))
    if ! ss -Htln "sport = :$candidate" | grep -q .; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "demo: no free port found" >&2; exit 1; }

# The swarm presents each bot's public-looking address through PROXY v2 from 127.0.1.0/24,
# which is the only trusted proxy range; anything else on loopback is an ordinary peer.
"$bin" serve --state "$state" --listen "127.0.0.1:$port" --trusted-proxy 127.0.1.0/24 \
    --ready-file "$out/ready" 2>"$out/serve.log" &
server=$!
cleanup() { kill -TERM "$server" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    [ -f "$out/ready" ] && break
    kill -0 "$server" 2>/dev/null || { echo "demo: server failed to start:" >&2; cat "$out/serve.log" >&2; exit 1; }
    sleep 0.1
done
[ -f "$out/ready" ] || { echo "demo: server not ready after 10 s" >&2; exit 1; }

echo "sinkd demo: $bots emulated bots for ${duration}s against 127.0.0.1:$port (state in ${out#"$here"/})"
"$bin" swarm --target "127.0.0.1:$port" --bots "$bots" --duration "$duration" \
    --source-net 127.0.1.0/24 --json "$out/swarm.json" >"$out/swarm.txt"

kill -TERM "$server"
set +e
wait "$server"
serve_status=$?
set -e
trap - EXIT
[ "$serve_status" -eq 0 ] || { echo "demo: server exited with $serve_status" >&2; tail -20 "$out/serve.log" >&2; exit 1; }

"$bin" contacts --state "$state" --summary >"$out/summary.json"

python3 - "$out/swarm.json" "$out/summary.json" "$out/serve.log" <<'PY'
import json, sys
swarm = json.load(open(sys.argv[1]))
server = json.load(open(sys.argv[2]))
srv = server.get("server", {})
bad_lines = sum(1 for line in open(sys.argv[3]) if "bad peer" in line)
lat = swarm.get("latency_us", {})
t = server["by_type"]
print()
print("server (from the evidence log)")
print(f"  contacts recorded     {server['contacts']:>10}")
print(f"  unique bots           {server['unique_bots']:>10}   (by bot identity)")
print(f"  unique source IPs     {server['unique_source_ips']:>10}   (by address after PROXY)")
print(f"  messages by type      hello {t['hello']}, machine-info {t['machine-info']}, heartbeat {t['heartbeat']}, other {t['other']}")
print(f"  transports            tcp {server['by_transport']['tcp']}, http {server['by_transport']['http']}")
print(f"  contacts per second   {server['contacts_per_second']:>10.0f}")
print(f"  connections           {srv.get('connections', 0):>10}   bad peers {srv.get('bad_peers', 0)}, timeouts {srv.get('timeouts', 0)}, commit errors {srv.get('commit_errors', 0)}")
print(f"  writer batches        {srv.get('batches', 0):>10}   largest {srv.get('max_batch', 0)} records")
print()
print("swarm (from the bots' side)")
print(f"  bots run / answered   {swarm['bots_run']:>10} / {swarm['bots_answered']}")
print(f"  contacts sent         {swarm['contacts_sent']:>10}   replies received {swarm['replies_received']}")
print(f"  reply latency         p50 {lat.get('p50', 0)/1000:.2f} ms, p99 {lat.get('p99', 0)/1000:.2f} ms, max {lat.get('max', 0)/1000:.2f} ms")
errs = swarm.get("errors", {})
print(f"  errors                " + ", ".join(f"{k} {v}" for k, v in errs.items()))
print()
problems = []
if swarm["bots_run"] != swarm["bots_answered"]:
    problems.append(f"{swarm['bots_run'] - swarm['bots_answered']} bots ran but were never answered")
if server["unique_bots"] != swarm["bots_answered"]:
    problems.append(f"server saw {server['unique_bots']} unique bots, swarm had {swarm['bots_answered']} answered")
if server["contacts"] < swarm["replies_received"]:
    problems.append(f"swarm got {swarm['replies_received']} replies but only {server['contacts']} contacts are in the log")
if sum(errs.values()) > 0:
    problems.append("the swarm counted errors")
if problems:
    print("NUMBERS DO NOT ADD UP: " + "; ".join(problems))
    sys.exit(1)
print("numbers add up: every bot the swarm ran was seen and recorded by the server,")
print("and every reply a bot received stands for a contact that is durable in the log.")
PY
