#!/usr/bin/env bash
# dashboard_browser_test.sh -- the operator's dashboard in headless Chromium against a real server
# and swarm (tests/e2e/dashboard_browser.js): the map colours the countries the bots came from,
# with their counts, and draws the per-day curves, under the page's CSP; /countries.json agrees
# with the swarm. The screenshot stays in $SINKD_BUILD_DIR/test-artefacts/dashboard/.
source "$(dirname "$0")/lib.sh"
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || fail "chromium missing (scripts/deps.sh installs it)"

state="$E2E_DIR/state"
port=$(free_port)
mport=$(free_port)
start_server "$state" "$port" --metrics-listen "127.0.0.1:$mport"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 200 --duration 3 \
    --source-net 127.0.1.0/24 --json "$E2E_DIR/swarm.json" >"$E2E_DIR/swarm.txt" ||
    fail "swarm exited non-zero"
sleep 1 # the registry follower commits every 50 ms; give it a moment
curl -s --max-time 10 "http://127.0.0.1:$mport/countries.json" >"$E2E_DIR/countries.json" ||
    fail "countries.json"
python3 - "$E2E_DIR/swarm.json" "$E2E_DIR/countries.json" <<'PY' || fail "/countries.json disagrees with the swarm"
import json, sys
want = {cc: n for cc, n in json.load(open(sys.argv[1]))["per_country"].items() if n > 0}
got = json.load(open(sys.argv[2]))
assert got["registry"] is True, got
assert got["countries"] == want, (got["countries"], want)
assert len(got["days"]) == 30 and got["days"][-1]["bots"] == sum(want.values()), got["days"][-1]
PY
out="${SINKD_BUILD_DIR:-$E2E_DIR}/test-artefacts/dashboard"
rm -rf "$out"
mkdir -p "$out"
timeout 120 node "$SINKD_SOURCE_DIR/tests/e2e/dashboard_browser.js" "http://127.0.0.1:$mport/" \
    "$E2E_DIR/swarm.json" "$out" || fail "dashboard in the browser"
stop_server
[ -f "$out/dashboard.png" ] || fail "no screenshot"
echo "dashboard_browser_test: OK (screenshot in $out)"
