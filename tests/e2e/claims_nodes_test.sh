#!/usr/bin/env bash
# claims_nodes_test.sh -- issue 22 #4: the remediation once-per-bot rule holds across nodes. Two
# nodes (their own state directories, keys and logs) share one PostgreSQL registry and enforce the
# same policy; the same bots (same seed) call node A, then node B. Each bot is commanded at most
# once in all: node B records already-sent for every bot node A commanded (claimed in the shared
# registry), and sends to none of them. Without the shared registry (each node alone), node B
# would command them again: the test shows that too, so it cannot pass by accident.
if [ -z "${SINKD_PG_URL:-}" ]; then
    exec bash "$(dirname "$0")/../pg/with_postgres.sh" bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
url=$SINKD_PG_URL
policy="$SINKD_SOURCE_DIR/data/policy/demo.ini"
opts=(--policy "$policy" --enforce --tags "$SINKD_SOURCE_DIR/data/tags/demo-sectors.csv")

# run NODE STATE [serve options]: 150 bots of seed 5 for 3 s against that node.
run() {
    local node=$1 state=$2
    shift 2
    local port
    port=$(free_port)
    start_server "$state" "$port" --workers 2 --node "$node" "${opts[@]}" "$@"
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 150 --seed 5 --duration 3 \
        --concurrency 150 --source-net 127.0.1.0/24 --heartbeat-ms 500 --gone-share 0 \
        --uninstall-command none --json "$E2E_DIR/$node.json" >/dev/null || fail "swarm ($node)"
    stop_server
    "$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" >"$E2E_DIR/$node.jsonl"
}
# Bots ignore the command (--uninstall-command none), so they call node B as well.
run node-a "$E2E_DIR/a" --registry "$url"
run node-b "$E2E_DIR/b" --registry "$url"
run node-c "$E2E_DIR/c" # alone: a registry of its own
python3 - "$E2E_DIR" <<'PY' || fail "a bot was commanded twice across nodes"
import json, sys
d = sys.argv[1]
def decisions(node):
    return [json.loads(l) for l in open(f"{d}/{node}.jsonl") if '"kind":"decision"' in l]
def sent(node):
    return {(json.loads(l)["bot_key"], json.loads(l)["authorisation"])
            for l in open(f"{d}/{node}.jsonl") if '"kind":"command-sent"' in l}
a, b, c = sent("node-a"), sent("node-b"), sent("node-c")
assert len(a) > 10, f"node A commanded only {len(a)} bots"
assert not (a & b), f"{len(a & b)} bots commanded by both nodes sharing the registry"
already = {(r["bot_key"], r["authorisation"]) for r in decisions("node-b") if r["verdict"] == "already-sent"}
assert a <= already | b, f"{len(a - already)} of A's bots were not found commanded by node B"
assert not [r for r in decisions("node-b") if r["verdict"] == "claim-failed"], "claims failed"
# The control: a node that shares nothing commands the same bots again.
assert len(a & c) > 10, f"the node alone commanded {len(a & c)} of A's bots: the test proves nothing"
print(f"node A commanded {len(a)}, node B {len(b)} (already-sent {len(already)}), node C alone {len(c)}")
PY
echo "claims_nodes_test: ok"
