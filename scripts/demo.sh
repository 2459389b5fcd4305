#!/usr/bin/env bash
# demo.sh -- run sinkd against a swarm of emulated PlugX bots on loopback and print what happened.
# Usage: scripts/demo.sh path/to/sinkd   (BOTS, DURATION, ENFORCE from the environment)
# Phase 1 is a passive sinkhole against the worm's own mix of callers (raw TCP, HTTP body and
# header forms, a few of a variant no table knows): it asks no bot for anything and counts victims
# by source address; then victims by country/ASN/sector, CERT reports, the signed log verified.
# Phase 2 is an authorised collection (data/policy/demo-collect.ini): only bots it covers are
# asked for their machine information. Phase 3 applies the demo remediation policy with the
# emulated bots' own self-delete id: dry-run unless ENFORCE=1.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
bots=${BOTS:-10000}
duration=${DURATION:-20}
enforce=${ENFORCE:-0}
export SINKD_DATA_DIR="$here/data"

out="$here/out/demo-$(date -u +%Y%m%dT%H%M%SZ)"
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

server=""
cleanup() { [ -z "$server" ] || kill -TERM "$server" 2>/dev/null || true; }
trap cleanup EXIT

# run_phase NAME SWARM_OPTS... -- SERVE_OPTS...
run_phase() {
    local name=$1
    shift
    local swarm_opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do swarm_opts+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    local dir="$out/$name"
    mkdir -p "$dir"
    # The swarm presents each bot's public-looking address through PROXY v2 from
    # 127.0.1.0/24, the only trusted proxy range; anything else on loopback is an ordinary peer.
    local as_root=()
    # As root (a throwaway machine), run as root explicitly; a real node uses --user.
    [ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
    "$bin" serve "${as_root[@]}" --state "$dir/state" --listen "127.0.0.1:$port" --trusted-proxy 127.0.1.0/24 \
        --tags "$here/data/tags/example-sectors.csv" --tags "$here/data/tags/demo-sectors.csv" \
        --ready-file "$dir/ready" "$@" \
        2>"$dir/serve.log" &
    server=$!
    for _ in $(seq 1 100); do
        [ -f "$dir/ready" ] && break
        kill -0 "$server" 2>/dev/null || { echo "demo: server failed to start:" >&2; cat "$dir/serve.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -f "$dir/ready" ] || { echo "demo: server not ready after 10 s" >&2; exit 1; }
    "$bin" swarm --target "127.0.0.1:$port" --bots "$bots" --duration "$duration" \
        --source-net 127.0.1.0/24 --preset worm --uninstall-command 0xFD01 \
        --json "$dir/swarm.json" "${swarm_opts[@]}" >"$dir/swarm.txt"
    kill -TERM "$server"
    local status=0
    wait "$server" || status=$?
    server=""
    [ "$status" -eq 0 ] || { echo "demo: server exited with $status" >&2; tail -20 "$dir/serve.log" >&2; exit 1; }
    "$bin" contacts --state "$dir/state" --summary >"$dir/summary.json"
}

echo "sinkd demo, phase 1: $bots emulated PlugX bots (the worm's mix) for ${duration}s against 127.0.0.1:$port"
echo "a passive sinkhole: it answers polls and asks no bot for anything (no policy loaded)"
echo "(output in ${out#"$here"/})"
run_phase count --

python3 - "$out/count/swarm.json" "$out/count/summary.json" <<'PY'
import json, sys
swarm = json.load(open(sys.argv[1]))
server = json.load(open(sys.argv[2]))
srv = server.get("server", {})
lat = swarm.get("latency_us", {})
t = server["by_type"]
tr = server["by_transport"]
k = swarm["kinds"]
print()
print("server (from the evidence log)")
print(f"  messages recorded     {server['contacts']:>10}   in {server['records']} records ({server['heartbeats_records']} of them heartbeats roll-ups)")
print(f"  bots                  {server['unique_bots']:>10}   (counted by source address: a passive sinkhole asks none for its identity)")
print(f"  undecoded callers     {server['undecoded_source_ips']:>10}   (addresses whose bytes no configured cipher decodes; not counted as bots)")
print(f"  messages by type      hello {t['hello']}, heartbeat {t['heartbeat']}, machine-info {t['machine-info']}, undecoded {t['undecoded']}, other {t['other']}")
print(f"  transports            tcp {tr['tcp']}, http body {tr['http']}, http header {tr['http-header']}")
print(f"  connections           {srv.get('connections', 0):>10}   bad peers {srv.get('bad_peers', 0)}, timeouts {srv.get('timeouts', 0)}, commit errors {srv.get('commit_errors', 0)}")
print(f"  decisions             {sum(srv.get('decisions', {}).values()):>10}   (none without a policy)")
print()
print("swarm (from the bots' side)")
print(f"  bots run              {swarm['bots_run']:>10}   raw {k['raw']}, http body {k['http_body']}, http header {k['http_header']}, unknown variant {k['unknown']}")
print(f"  bots replied to       {swarm['bots_replied']:>10}   asked for machine information: {swarm['machine_info']['bots_asked']}")
print(f"  addresses             {swarm['addresses_replied']:>10}   of the bots replied to ({swarm['addresses_unknown']} of the unknown variant; bots may share one)")
print(f"  contacts sent         {swarm['contacts_sent']:>10}   replies received {swarm['replies_received']}")
print(f"  reply latency         p50 {lat.get('p50', 0)/1000:.2f} ms, p99 {lat.get('p99', 0)/1000:.2f} ms, max {lat.get('max', 0)/1000:.2f} ms")
errs = swarm.get("errors", {})
print("  errors                " + ", ".join(f"{k} {v}" for k, v in errs.items()))
print()
decoded = swarm["bots_run"] - k["unknown"]
problems = []
if swarm["bots_replied"] != decoded:
    problems.append(f"{decoded - swarm['bots_replied']} bots ran but were never answered")
# A passive sinkhole counts bots by source address; the swarm's bots draw theirs independently
# (two may share one, as behind a NAT), so it is compared with the swarm's distinct addresses.
if server["unique_bots"] != swarm["addresses_replied"]:
    problems.append(f"server saw {server['unique_bots']} bots, the swarm's replied bots called from {swarm['addresses_replied']} addresses")
if server["undecoded_source_ips"] != swarm["addresses_unknown"]:
    problems.append(f"server recorded {server['undecoded_source_ips']} undecoded callers, the swarm's unknown bots called from {swarm['addresses_unknown']} addresses")
if server["contacts"] < swarm["replies_received"]:
    problems.append(f"swarm got {swarm['replies_received']} replies but only {server['contacts']} messages are in the log")
if swarm["machine_info"]["bots_asked"] != 0:
    problems.append("a passive server asked bots for machine information")
if sum(errs.values()) > 0:
    problems.append("the swarm counted errors")
if problems:
    print("NUMBERS DO NOT ADD UP: " + "; ".join(problems))
    sys.exit(1)
print("numbers add up: every bot the swarm ran was recorded (by address), every caller of an")
print("unknown variant as undecoded, and every reply a bot received stands for a message the")
print("log vouches for; no bot was asked for anything.")
PY

state="$out/count/state"
reports="$out/count/reports"
echo
echo "victims (registry; top countries, ASNs, flagged sectors):"
"$bin" report --state "$state" --catch-up --format summary --top 8 | sed -n '/^top countries/,$p' | sed 's/^/  /'
mkdir -p "$reports/shadowserver" "$reports/intelmq"
why="demo: per-country reports for the CERTs"
"$bin" report --justification "$why" --state "$state" --format csv --split country --out "$reports/shadowserver" --tag hospital >/dev/null
"$bin" report --justification "$why" --state "$state" --format intelmq --split country --out "$reports/intelmq" --tag hospital >/dev/null
echo
echo "per-country CERT reports: $(ls "$reports/shadowserver" | wc -l) Shadowserver CSV files and $(ls "$reports/intelmq" | wc -l) IntelMQ files in ${reports#"$here"/}"

echo
echo "evidence log:"
"$bin" verify "$state/log" --key "$state/keys/log.vkey" | sed 's/^/  /'
echo "  signed checkpoint (verifier key: $(cat "$state/keys/log.vkey")):"
sed 's/^/    /' "$state/log/checkpoint"

echo
echo "sinkd demo, phase 2: authorised collection (data/policy/demo-collect.ini: NG, hospitals excluded)"
echo "only the bots it covers are asked for their machine information (PlugX 0x1001), each ask"
echo "decided and durable in the log before it leaves; every other bot stays counted by address"
"$bin" policy check "$here/data/policy/demo-collect.ini" --tags "$here/data/tags/example-sectors.csv" \
    --tags "$here/data/tags/demo-sectors.csv" --enforce >"$out/collect-policy-check.txt"
run_phase collect -- --policy "$here/data/policy/demo-collect.ini" --enforce
"$bin" contacts --justification "demo: check the collection records" --state "$out/collect/state" --all >"$out/collect/records.jsonl"
python3 - "$out/collect/records.jsonl" "$out/collect/swarm.json" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
swarm = json.load(open(sys.argv[2]))
cc = {r["src_ip"]: r["cc"] for r in rows if r["kind"] == "contact"}
verdicts = collections.Counter(r["verdict"] for r in rows if r["kind"] == "decision")
asked = [r for r in rows if r["kind"] == "command-sent" and r["action"] == "collect"]
infos = [r for r in rows if r["kind"] == "contact" and r["type"] == "machine-info"]
outside = [r for r in asked if cc.get(r["src_ip"]) != "NG"]
print()
print(f"collection decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
print(f"bots asked: {len(asked)} (all in NG: {'yes' if not outside else 'NO'}); machine information received: {len(infos)}")
print(f"swarm: {swarm['machine_info']['bots_asked']} bots were asked, {swarm['machine_info']['sent']} answered")
if outside or not asked:
    print("COLLECTION WENT WRONG: " + ("a bot outside the authorisation was asked" if outside else "nobody was asked"))
    sys.exit(1)
PY

echo
if [ "$enforce" = 1 ]; then
    mode_text="ENFORCING: the self-delete command (the emulated bots' id 0xFD01) is sent to them"
    enforce_opts=(--enforce)
else
    mode_text="dry-run: decisions are recorded, nothing is sent (make demo ENFORCE=1 sends)"
    enforce_opts=()
fi
echo "sinkd demo, phase 3: remediation policy data/policy/demo.ini (NG and IN); $mode_text"
"$bin" policy check "$here/data/policy/demo.ini" --tags "$here/data/tags/example-sectors.csv" \
    --tags "$here/data/tags/demo-sectors.csv" >"$out/policy-check.txt"
run_phase remediate --uninstall-fail-share 0.1 -- --policy "$here/data/policy/demo.ini" "${enforce_opts[@]}"

"$bin" contacts --justification "demo: check the remediation records" --state "$out/remediate/state" --all >"$out/remediate/records.jsonl"
python3 - "$out/remediate/records.jsonl" "$out/remediate/swarm.json" "$enforce" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
swarm = json.load(open(sys.argv[2]))
enforce = sys.argv[3] == "1"
cc = {}
for r in rows:
    if r["kind"] in ("contact", "heartbeats"):
        cc[r["src_ip"]] = r["cc"] or "??"
verdicts = collections.defaultdict(collections.Counter)
for r in rows:
    if r["kind"] == "decision":
        verdicts[cc.get(r["src_ip"], "??")][r["verdict"]] += 1
print()
print("decisions per country (one per bot presence, bots keyed by address):")
shown = sorted(verdicts, key=lambda c: (-sum(v for k, v in verdicts[c].items() if k != "not-authorised"), -sum(verdicts[c].values())))[:6]
for c in shown:
    print(f"  {c}  " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts[c].items())))
others = sum(sum(v.values()) for c, v in verdicts.items() if c not in shown)
print(f"  other countries: {others} decisions, all not-authorised")
sent = {r["bot_key"]: r["time"] for r in rows if r["kind"] == "command-sent"}
if not enforce:
    assert not sent and swarm["uninstalled"] == 0, "dry-run must send nothing"
    print("dry-run: 0 commands sent, 0 bots uninstalled")
    sys.exit(0)
src_of = {r["bot_key"]: r["src_ip"] for r in rows if r["kind"] == "command-sent"}
# By time, not log position: a heartbeats record is written at its interval's end (or the
# stop), after the command, though the polls it counts may all have come before it.
last_seen = collections.defaultdict(str)
for r in rows:
    if r["kind"] in ("contact", "heartbeats"):
        last_seen[r["src_ip"]] = max(last_seen[r["src_ip"]], r["time"])
again = {b for b in sent if last_seen[src_of[b]] > sent[b]}
per = collections.Counter(cc.get(src_of[b], "??") for b in sent)
print(f"commands sent: {len(sent)} ({', '.join(f'{k} {v}' for k, v in per.most_common())})")
print(f"bots that called again after the command: {len(again)} (the swarm's 10% that ignore it, if they came back in time;")
print("  bots are keyed by address here, so a bot sharing its address with a commanded one, which")
print("  was never sent the command itself, counts as calling again)")
share = 100.0 * (len(sent) - len(again)) / len(sent) if sent else 0.0
print(f"disinfection share: {share:.1f}% of commanded bots fell silent")
print(f"swarm: {swarm['uninstalled']} bots uninstalled themselves, {swarm['uninstall_ignored']} ignored the command")
PY
"$bin" report --state "$out/remediate/state" --remediation --format summary \
    >"$out/remediate/remediation-report.txt"
echo "remediation report (registry): ${out#"$here"/}/remediate/remediation-report.txt"
sed -n '/^bots decided send/,/^dry-run/p' "$out/remediate/remediation-report.txt" | sed 's/^/  /'
echo
echo "demo finished: everything above is in ${out#"$here"/}"
