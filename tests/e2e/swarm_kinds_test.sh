#!/usr/bin/env bash
# swarm_kinds_test.sh -- `sinkd swarm`'s kinds against the real server: unknown-variant bots mixed
# with honest raw and body-form bots are counted apart (kinds, unknown outcomes, text lines a
# script reads with awk) and leave the honest bots unharmed (no errors, every reply durable, no
# machine information sent unasked beyond what the server asked for); bad option values are usage
# errors naming the option.
source "$(dirname "$0")/lib.sh"

for bad in "--http-form foo" "--header-names y" "--header-uri z" "--header-values w" \
    "--header-answer v" "--unknown-share 1.5" "--volunteer-share -1" "--unknown-wait-ms 1" \
    "--uninstall-command 0x10000" "--preset nope"; do
    set +e
    # shellcheck disable=SC2086
    "$SINKD_BINARY" swarm --target 127.0.0.1:1 $bad 2>"$E2E_DIR/err.txt"
    rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "swarm $bad: exit $rc, want 2"
    grep -q -- "${bad%% *}" "$E2E_DIR/err.txt" || fail "swarm $bad: message does not name the option: $(cat "$E2E_DIR/err.txt")"
done

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 300 --duration 6 --concurrency 300 \
    --source-net 127.0.1.0/24 --heartbeat-ms 400 --http-share 0.3 --cipher mix \
    --unknown-share 0.2 --unknown-wait-ms 500 \
    --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"
stop_server
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/summary.json" || fail "summary failed"

python3 - "$E2E_DIR/swarm.json" "$E2E_DIR/summary.json" <<'PY' || fail "numbers do not add up: $(cat "$E2E_DIR/swarm.txt")"
import json, sys
s = json.load(open(sys.argv[1]))
summary = json.load(open(sys.argv[2]))
def check(cond, what):
    if not cond:
        print("check failed:", what, file=sys.stderr)
        sys.exit(1)
k = s["kinds"]
check(s["bots_run"] == 300 and sum(k.values()) == 300, f"kinds {k} sum to bots run")
check(30 <= k["unknown"] <= 95, f"about 20% unknown: {k}")
check(k["http_header"] == 0 and k["raw"] > 0 and k["http_body"] > 0, f"default forms: {k}")
check(sum(s["errors"].values()) == 0, f"honest bots unharmed: errors {s['errors']}")
check(s["bots_replied"] == 300 - k["unknown"], "every honest bot got a reply")
check(s["bots_answered"] == 0, "a passive server asked no bot for machine information")
u = s["unknown"]
check(u["contacts_sent"] >= 2 * k["unknown"], f"unknown bots came back: {u}")
check(u["replied"] + u["closed"] + u["silent"] <= u["contacts_sent"], f"outcomes: {u}")
check(u["replied"] + u["closed"] + u["silent"] + 300 >= u["contacts_sent"], f"outcomes: {u}")
check(summary["contacts"] >= s["replies_received"], "every reply stands for a durable contact")
# The unknown-variant bots are recorded as undecoded callers, one address each.
check(summary["undecoded_source_ips"] == s["addresses_unknown"] and 0 < s["addresses_unknown"] <= k["unknown"],
      f"undecoded callers {summary['undecoded_source_ips']} vs {s['addresses_unknown']} addresses of {k['unknown']} bots")
check(sum(s["contacts_by_kind"].values()) == s["contacts_sent"], "contacts by kind sum up")
mi = s["machine_info"]
check(mi["volunteered"] == 0 and mi["sent"] == mi["requests"], f"machine info only when asked: {mi}")
check(mi["bots_asked"] == s["bots_answered"], f"asked bots are the answered ones: {mi}")
PY

# the text lines scripts read: "name count" pairs
unknown=$(awk '$1 == "kinds:" { for (i = 2; i < NF; i += 2) if ($i == "unknown-variant") print $(i + 1) }' "$E2E_DIR/swarm.txt")
[ "$unknown" = "$(json_field "$E2E_DIR/swarm.json" 'd["kinds"]["unknown"]')" ] ||
    fail "kinds line does not match the JSON: $(grep kinds: "$E2E_DIR/swarm.txt")"
grep -q '^  unknown-variant: sent [0-9]* replied [0-9]* closed [0-9]* silent [0-9]*$' "$E2E_DIR/swarm.txt" ||
    fail "unknown-variant line missing"
echo "ok: $(grep -E 'kinds:|unknown-variant:' "$E2E_DIR/swarm.txt" | tr -s ' ' | tr '\n' ';')"
