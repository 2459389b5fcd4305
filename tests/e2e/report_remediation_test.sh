#!/usr/bin/env bash
# report_remediation_test.sh -- the remediation report through the real binary: the demo policy
# enforced against 400 swarm bots of which a quarter ignore the uninstall command; the report's
# commanded bots equal the command-sent records, the bots seen again after the command equal the
# bots that ignored it (within a tolerance, below), only NG and IN appear, a rebuilt registry gives
# the same report; and without --enforce nothing is commanded while dry runs are counted.
source "$(dirname "$0")/lib.sh"
policy="$SINKD_SOURCE_DIR/data/policy/demo.ini"

run() { # NAME [serve options...]
    local name=$1
    shift
    local port
    port=$(free_port)
    start_server "$E2E_DIR/$name" "$port" --policy "$policy" \
        --tags "$SINKD_SOURCE_DIR/data/tags/demo-sectors.csv" "$@"
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 400 --duration 8 \
        --source-net 127.0.1.0/24 --heartbeat-ms 200 --uninstall-fail-share 0.25 \
        --uninstall-command 0xFD01 \
        --json "$E2E_DIR/$name.json" >/dev/null || fail "swarm ($name)"
    stop_server
    "$SINKD_BINARY" report --state "$E2E_DIR/$name" --remediation --format summary-json \
        >"$E2E_DIR/$name-rem.json" || fail "remediation report ($name)"
    "$SINKD_BINARY" report --state "$E2E_DIR/$name" --remediation --format summary \
        >"$E2E_DIR/$name-rem.txt" || fail "remediation text report ($name)"
    "$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$E2E_DIR/$name" --all >"$E2E_DIR/$name-all.jsonl" ||
        fail "contacts ($name)"
}

run enf --enforce
# The registry is a function of the log: a rebuild gives the same report.
cp "$E2E_DIR/enf-rem.json" "$E2E_DIR/enf-rem-before.json"
"$SINKD_BINARY" registry rebuild --state "$E2E_DIR/enf" >/dev/null 2>&1 || fail "rebuild"
"$SINKD_BINARY" report --state "$E2E_DIR/enf" --remediation --format summary-json \
    >"$E2E_DIR/enf-rem-rebuilt.json" || fail "report after rebuild"
cmp -s "$E2E_DIR/enf-rem-before.json" "$E2E_DIR/enf-rem-rebuilt.json" ||
    fail "rebuilt registry gives a different remediation report"
grep -q "^bots commanded: " "$E2E_DIR/enf-rem.txt" || fail "text report: $(cat "$E2E_DIR/enf-rem.txt")"
grep -q "^observation rule: " "$E2E_DIR/enf-rem.txt" || fail "text report states no observation rule"

python3 - "$E2E_DIR/enf-rem.json" "$E2E_DIR/enf.json" "$E2E_DIR/enf-all.jsonl" <<'PY' ||
import json, sys
rep = json.load(open(sys.argv[1]))
swarm = json.load(open(sys.argv[2]))
rows = [json.loads(l) for l in open(sys.argv[3])]
t = rep["totals"]
bad = []
def check(ok, msg):
    if not ok:
        bad.append(msg)
sent = sum(1 for r in rows if r["kind"] == "command-sent")
failed = sum(1 for r in rows if r["kind"] == "command-failed")
ignored = swarm["uninstall_ignored"]
check(sent > 0, "no command-sent record")
check(t["commanded"] == sent, f"commanded {t['commanded']} vs {sent} command-sent records")
check(t["commands_sent"] == sent, f"commands_sent {t['commands_sent']} vs {sent} records")
check(t["commands_failed"] == failed, f"commands_failed {t['commands_failed']} vs {failed}")
check(t["send_decided"] >= t["commanded"], "fewer send decisions than commanded bots")
check(t["silent"] == t["commanded"] - t["seen_after"], "silent != commanded - seen_after")
# Bots that ignored the command keep calling, so they are the ones seen after it. Tolerance:
# an ignoring bot that got the command in reply to its last heartbeat before the swarm's end
# never comes back (fewer seen); an obeying bot whose heartbeat crossed the command on the wire
# (sent before it read the command, received after the command went out) is recorded as a
# contact after the command (more seen). Both are rare at a 200 ms heartbeat: allow 3 bots or
# 5 % of the commanded bots, whichever is more.
tol = max(3, t["commanded"] // 20)
check(ignored > 0, "no bot ignored the command (--uninstall-fail-share 0.25)")
check(abs(t["seen_after"] - ignored) <= tol,
      f"seen after command {t['seen_after']} vs uninstall_ignored {ignored} (tolerance {tol})")
# The swarm ran 8 s: no bot has 1 h of observation, so there is no 1 h / 24 h share.
check(t["observed_1h"] == 0 and t["share_after_1h"] is None, "1 h figures without 1 h of data")
check(t["observed_24h"] == 0 and t["share_after_24h"] is None, "24 h figures without 24 h of data")
check(t["dry_run"] == 0, f"dry runs while enforcing: {t['dry_run']}")
ccs = {c["cc"] for c in rep["countries"]}
check(ccs and ccs <= {"NG", "IN"}, f"countries {ccs}")
check(sum(c["commanded"] for c in rep["countries"]) == t["commanded"], "countries do not add up")
auths = {a["authorisation"]: a for a in rep["authorisations"]}
check(set(auths) <= {"ng-demo", "in-demo"}, f"authorisations {set(auths)}")
check(sum(a["commanded"] for a in auths.values()) == t["commanded"], "authorisations do not add up")
check(sum(d["commands_sent"] for d in rep["days"]) == sent, "per-day commands do not add up")
check("data_end" in rep["window"] and "rule" in rep["window"], "window not stated")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"commanded {t['commanded']}, seen after {t['seen_after']}, ignored {ignored}")
PY
    fail "enforced remediation report does not match the log and the swarm"

# Dry run: the policy says mode = enforce, but without --enforce nothing is commanded.
run dry
python3 - "$E2E_DIR/dry-rem.json" <<'PY' || fail "dry-run remediation report"
import json, sys
rep = json.load(open(sys.argv[1]))
t = rep["totals"]
ok = (t["commanded"] == 0 and t["commands_sent"] == 0 and t["send_decided"] == 0
      and t["dry_run"] > 0 and t["dry_run_decisions"] >= t["dry_run"]
      and {c["cc"] for c in rep["countries"]} <= {"NG", "IN"})
if not ok:
    print(json.dumps(t), file=sys.stderr)
    sys.exit(1)
print(f"dry run: {t['dry_run']} bots would have been commanded")
PY
echo "ok"
