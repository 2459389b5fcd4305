#!/usr/bin/env bash
# portal_postgres_test.sh -- the portal on the shared PostgreSQL registry (--registry URL) that
# tests/pg/with_postgres.sh starts for this test alone: serve follows its log into PostgreSQL,
# the portal reads it through its connection made before the sandbox, each authority gets
# exactly its swarm bots, and the URL (which may hold a password) is never printed.
if [ -z "${SINKD_PG_URL:-}" ]; then
    exec bash "$(dirname "$0")/../pg/with_postgres.sh" bash "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"

url=$SINKD_PG_URL
state="$E2E_DIR/state"
port=$(free_port)
cd "$E2E_DIR"
start_server "$state" "$port" --registry "$url"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 200 --duration 3 \
    --source-net 127.0.1.0/24 --json swarm.json >swarm.txt || fail "swarm exited non-zero"
stop_server

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
    -out cert.pem -days 2 -subj /CN=localhost 2>/dev/null
cat >auth.ini <<EOT
[authority ng-cert]
name = CERT Nigeria
countries = NG
token_sha256 = $(printf %s pg-token-ng | sha256sum | cut -d' ' -f1)
may = read
max_days_old = 30

[authority in-cert]
name = CERT-In
countries = IN
token_sha256 = $(printf %s pg-token-in | sha256sum | cut -d' ' -f1)
may = read
max_days_old = 30
EOT
pport=$(free_port)
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
"$SINKD_BINARY" portal "${as_root[@]}" --state "$state" --registry "$url" \
    --listen "127.0.0.1:$pport" --authorities auth.ini --tls-cert cert.pem --tls-key key.pem \
    --ready-file pready 2>portal.log &
portal_pid=$!
E2E_PIDS+=("$portal_pid")
for _ in $(seq 1 100); do [ -f pready ] && break; sleep 0.1; done
[ -f pready ] || fail "portal not ready: $(cat portal.log)"
grep -q "registry the PostgreSQL registry given" portal.log || fail "portal: $(head -3 portal.log)"
C=(curl -s --max-time 20 -k)
for who in ng in; do
    "${C[@]}" -H "Authorization: Bearer pg-token-$who" -H "X-Justification: portal on PostgreSQL" \
        -o "$who.csv" "https://127.0.0.1:$pport/api/v1/victims?format=csv" || fail "$who csv"
    "${C[@]}" -H "Authorization: Bearer pg-token-$who" -H "X-Justification: portal on PostgreSQL" \
        -o "$who-stats.json" "https://127.0.0.1:$pport/api/v1/stats" || fail "$who stats"
done
python3 - swarm.json ng.csv in.csv ng-stats.json <<'PY' || fail "PostgreSQL-backed answers wrong"
import csv, json, sys
want = json.load(open(sys.argv[1]))["per_country"]
for cc, path in (("NG", sys.argv[2]), ("IN", sys.argv[3])):
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == want[cc] > 0 and all(r["src_geo"] == cc for r in rows), (cc, len(rows), want[cc])
stats = json.load(open(sys.argv[4]))
assert stats["totals"]["bots"] == want["NG"], stats["totals"]
assert sum(d["bots"] for d in stats["days"]) >= want["NG"], "per-day curve"
PY
kill -TERM "$portal_pid"
wait "$portal_pid" || fail "portal exit status"
grep -qF "$url" portal.log "$E2E_DIR/serve.log" && fail "the PostgreSQL URL was printed"
echo "portal_postgres_test: OK"
