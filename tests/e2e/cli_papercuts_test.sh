#!/usr/bin/env bash
# cli_papercuts_test.sh -- issue 19 item 15, each fault that an operator met on a first install:
# every subcommand's usage error is one line naming the option; every stderr line starts with
# its UTC time; --version is in --help; `report --out DIR` creates DIR; `report --state` on a
# directory without a log refuses and leaves no registry.db; the summary names AS 0 "unknown";
# serve --enforce without --policy refuses to start; registry rebuild/follow and report --registry
# on a mistyped path leave nothing behind.
# (The dashboard's HEAD answer is checked in metrics_test.sh and net_metrics_test.)
source "$(dirname "$0")/lib.sh"

stamp='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z '

# One line, exit 2, naming the option: for every subcommand `sinkd --help` lists.
subs=$("$SINKD_BINARY" --help | awk '/^  [a-z]/ && $1 !~ /^--/ {print $1}')
[ "$(wc -w <<<"$subs")" -ge 10 ] || fail "sinkd --help lists only: $subs"
for sub in $subs; do
    for args in "--no-such-option" "--no-such-option=1"; do
        status=0
        "$SINKD_BINARY" "$sub" $args >/dev/null 2>"$E2E_DIR/err" || status=$?
        [ "$status" -eq 2 ] || fail "sinkd $sub $args: exit $status, not 2"
        [ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] || fail "sinkd $sub $args: not one line: $(cat "$E2E_DIR/err")"
        grep -q -- "--no-such-option" "$E2E_DIR/err" || fail "sinkd $sub $args: option not named: $(cat "$E2E_DIR/err")"
    done
    # An option that needs a value, given none.
    if "$SINKD_BINARY" "$sub" --help | grep -q -- "--state DIR"; then
        status=0
        "$SINKD_BINARY" "$sub" --state >/dev/null 2>"$E2E_DIR/err" || status=$?
        [ "$status" -eq 2 ] && [ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] ||
            fail "sinkd $sub --state (no value): exit $status: $(cat "$E2E_DIR/err")"
        grep -q -- "--state\|subcommand" "$E2E_DIR/err" || fail "sinkd $sub --state: $(cat "$E2E_DIR/err")"
    fi
done
# Fail closed: --enforce without a policy would look like enforcement and can send nothing.
status=0
"$SINKD_BINARY" serve --state "$E2E_DIR/enforce-alone" --enforce >/dev/null 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 2 ] && grep -q -- "--enforce without --policy" "$E2E_DIR/err" ||
    fail "serve --enforce without --policy: exit $status: $(cat "$E2E_DIR/err")"
[ ! -e "$E2E_DIR/enforce-alone" ] || fail "serve --enforce without --policy made its state directory"
# A bad policy is refused before serve opens, binds or writes anything: one line, exit 1.
printf '[policy]\nname = t\nversion = 1\n[authorisation a]\nbogus = 1\n' >"$E2E_DIR/bad-policy.ini"
status=0
"$SINKD_BINARY" serve --state "$E2E_DIR/bad-policy-state" --policy "$E2E_DIR/bad-policy.ini" \
    >/dev/null 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && [ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] && grep -q "bad-policy.ini:5" "$E2E_DIR/err" ||
    fail "serve with a bad policy: exit $status: $(cat "$E2E_DIR/err")"
[ ! -e "$E2E_DIR/bad-policy-state" ] || fail "serve with a bad policy made its state directory"
for args in "" "no-such-command"; do
    status=0
    # shellcheck disable=SC2086
    "$SINKD_BINARY" $args >/dev/null 2>"$E2E_DIR/err" || status=$?
    [ "$status" -eq 2 ] && [ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] ||
        fail "sinkd $args: exit $status, $(wc -l <"$E2E_DIR/err") lines"
done

# The stamp is UTC whatever the time zone, and it is now.
TZ=Asia/Tokyo "$SINKD_BINARY" report --state "$E2E_DIR/none" 2>"$E2E_DIR/err" && fail "report on nothing succeeded"
grep -Eq "$stamp" "$E2E_DIR/err" || fail "no UTC stamp: $(cat "$E2E_DIR/err")"
python3 - "$E2E_DIR/err" <<'PY' || fail "stamp is not the current UTC time: $(cat "$E2E_DIR/err")"
import datetime, sys
t = open(sys.argv[1]).read().split(" ", 1)[0]
got = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
sys.exit(0 if abs((datetime.datetime.now(datetime.timezone.utc) - got).total_seconds()) < 300 else 1)
PY

"$SINKD_BINARY" --help | grep -q -- "--version" || fail "--version is not in sinkd --help"
"$SINKD_BINARY" --version | grep -Eq '^sinkd [0-9]+\.[0-9]+\.[0-9]+' || fail "sinkd --version"

# report --state on a directory with no log: refused, and nothing created there.
mkdir -p "$E2E_DIR/empty"
status=0
"$SINKD_BINARY" report --state "$E2E_DIR/empty" --format summary >/dev/null 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] || fail "report on a directory with no log: exit $status"
grep -q "no evidence log" "$E2E_DIR/err" || fail "unclear refusal: $(cat "$E2E_DIR/err")"
[ -z "$(ls -A "$E2E_DIR/empty")" ] || fail "report left files in a directory with no log: $(ls -A "$E2E_DIR/empty")"
# The same for registry rebuild and follow, and for a report on a SQLite registry path that
# does not exist (it would otherwise be created empty and reported as zeros).
for sub in rebuild follow; do
    status=0
    timeout 20 "$SINKD_BINARY" registry "$sub" --state "$E2E_DIR/empty" >/dev/null 2>"$E2E_DIR/err" || status=$?
    [ "$status" -eq 1 ] && grep -q "no evidence log" "$E2E_DIR/err" ||
        fail "registry $sub on a directory with no log: exit $status: $(cat "$E2E_DIR/err")"
    [ -z "$(ls -A "$E2E_DIR/empty")" ] || fail "registry $sub left files: $(ls -A "$E2E_DIR/empty")"
done
status=0
"$SINKD_BINARY" report --registry "$E2E_DIR/empty/registry.db" --format summary >/dev/null 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && grep -q "no such registry" "$E2E_DIR/err" ||
    fail "report on a missing registry file: exit $status: $(cat "$E2E_DIR/err")"
[ -z "$(ls -A "$E2E_DIR/empty")" ] || fail "report --registry made a database: $(ls -A "$E2E_DIR/empty")"

# A node whose ASN table covers no bot address: every bot is in AS 0.
echo '203.0.113.0,203.0.113.255,64500,Documentation AS' >"$E2E_DIR/asn4.csv"
echo '2001:db8::,2001:db8::ffff,64501,Documentation AS6' >"$E2E_DIR/asn6.csv"
state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --asn-v4 "$E2E_DIR/asn4.csv" --asn-v6 "$E2E_DIR/asn6.csv"
grep -Eq "${stamp}sinkd: serving" "$E2E_DIR/serve.log" || fail "server log lines carry no UTC stamp"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 30 --duration 2 \
    --source-net 127.0.1.0/24 >"$E2E_DIR/swarm.txt" 2>&1 || fail "swarm failed: $(cat "$E2E_DIR/swarm.txt")"
stop_server
if grep -Ev "$stamp" "$E2E_DIR/serve.log" | grep -q .; then
    fail "serve wrote lines without a stamp: $(grep -Ev "$stamp" "$E2E_DIR/serve.log" | head -3)"
fi

"$SINKD_BINARY" report --state "$state" --format summary >"$E2E_DIR/summary.txt" || fail "summary failed"
row=$(awk '/^top ASNs/ {t = 1; next} t && $1 ~ /^AS/ {print; exit}' "$E2E_DIR/summary.txt")
[[ "$row" =~ ^\ *AS0\ +30\ +[0-9]+\ +unknown$ ]] || fail "top ASN row: '$row'"
"$SINKD_BINARY" report --state "$state" --format summary-json >"$E2E_DIR/summary.json" || fail "summary-json failed"
[ "$(json_field "$E2E_DIR/summary.json" 'd["top_asns"][0]["as_name"]')" = unknown ] ||
    fail "summary-json AS 0 name: $(json_field "$E2E_DIR/summary.json" 'd["top_asns"][0]')"

# report --out DIR creates DIR, parents included.
out="$E2E_DIR/reports/2026/cc"
"$SINKD_BINARY" report --justification "$E2E_WHY" --state "$state" --format csv --split country --out "$out" 2>"$E2E_DIR/err" ||
    fail "report --out a new directory failed: $(cat "$E2E_DIR/err")"
[ "$(find "$out" -name '*.csv' | wc -l)" -ge 1 ] || fail "no CSV in $out"
echo "cli papercuts: OK ($(wc -w <<<"$subs") subcommands)"
