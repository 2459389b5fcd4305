#!/usr/bin/env bash
# portal_browser_test.sh -- the authorities' page in headless Chromium against a real server,
# swarm and portal (tests/e2e/portal_browser.js): two authorities, each sees only its own
# victims on the page and in the download, one asks for disinfection, the operator approves,
# the page shows it. Screenshots stay in $SINKD_BUILD_DIR/test-artefacts/portal/.
source "$(dirname "$0")/lib.sh"
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || fail "chromium missing (scripts/deps.sh installs it)"
command -v node >/dev/null || fail "node missing (scripts/deps.sh installs it)"

state="$E2E_DIR/state"
port=$(free_port)
cd "$E2E_DIR"
start_server "$state" "$port"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 200 --duration 3 \
    --source-net 127.0.1.0/24 --json swarm.json >swarm.txt || fail "swarm exited non-zero"
stop_server

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
    -out cert.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
# The browser trusts exactly this certificate's key, nothing else.
spki=$(openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
tok_ng=browser-test-token-ng
tok_in=browser-test-token-in
cat >auth.ini <<EOT
[authority ng-cert]
name = CERT Nigeria
countries = NG
token_sha256 = $(printf %s "$tok_ng" | sha256sum | cut -d' ' -f1)
may = read, request
max_days_old = 30

[authority in-cert]
name = CERT-In
countries = IN
token_sha256 = $(printf %s "$tok_in" | sha256sum | cut -d' ' -f1)
may = read
max_days_old = 30
EOT
cp "$SINKD_SOURCE_DIR/data/policy/demo.ini" policy.ini
pport=$(free_port)
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
"$SINKD_BINARY" portal "${as_root[@]}" --state "$state" --listen "127.0.0.1:$pport" \
    --authorities auth.ini --tls-cert cert.pem --tls-key key.pem --ready-file pready 2>portal.log &
E2E_PIDS+=($!)
for _ in $(seq 1 100); do [ -f pready ] && break; sleep 0.1; done
[ -f pready ] || fail "portal not ready: $(cat portal.log)"

# What each authority must see, from the API (checked against the swarm by portal_test.sh).
C=(curl -s --max-time 20 --cacert cert.pem --resolve "localhost:$pport:127.0.0.1")
for who in ng in; do
    tok=tok_$who
    "${C[@]}" -H "Authorization: Bearer ${!tok}" -H "X-Justification: browser test set-up" \
        "https://localhost:$pport/api/v1/victims?format=csv" >"$who.csv" || fail "api $who"
done
out="${SINKD_BUILD_DIR:-$E2E_DIR}/test-artefacts/portal"
rm -rf "$out"
mkdir -p "$out"
python3 - "$out" "$pport" "$spki" "$tok_ng" "$tok_in" "$SINKD_BINARY" "$state" "$E2E_DIR/policy.ini" <<'PY' >config.json
import csv, json, sys
out, port, spki, tok_ng, tok_in, sinkd, state, policy = sys.argv[1:]
def ips(p):
    return sorted(r["src_ip"] for r in csv.DictReader(open(p)))
ng, inn = ips("ng.csv"), ips("in.csv")
assert ng and inn, "the swarm gave no NG or IN bots"
print(json.dumps({"out": out, "base": f"https://localhost:{port}", "spki": spki, "sinkd": sinkd,
    "state": state, "policy": policy, "authorities": {
    "ng": {"token": tok_ng, "cc": "NG", "ips": ng, "may_request": True},
    "in": {"token": tok_in, "cc": "IN", "ips": inn, "may_request": False}}}))
PY
# localhost must reach the portal's loopback address for the browser too.
grep -q "localhost" /etc/hosts || fail "/etc/hosts has no localhost"
timeout 240 node "$SINKD_SOURCE_DIR/tests/e2e/portal_browser.js" config.json || {
    tail -5 portal.log >&2
    fail "browser test"
}
ls "$out"/portal-ng.png "$out"/portal-in.png "$out"/portal-ng-approved.png >/dev/null || fail "screenshots missing"
"$SINKD_BINARY" policy check policy.ini >/dev/null || fail "approved policy does not check"
grep -q '"operator":"portal:in-cert","what":"GET /api/v1/victims"' portal.log || fail "page reads not recorded"
echo "portal_browser_test: OK (screenshots in $out)"
