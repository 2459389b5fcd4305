#!/usr/bin/env bash
# access_test.sh -- every read of victims' data on the record (issue 20 #4): contacts, report
# csv/intelmq, prove and raw check --reparse refuse to run without --justification (usage error,
# nothing output); with one, the log gains an access record naming the operator, the command,
# its scope, the rows handed out, the SHA-256 of exactly what was handed out and the reason, and
# no victim data. While serve runs the record goes through the spool and serve's writer appends
# it; with no serve, the reading command appends it itself; a record spooled while another
# process held the log is appended by the next serve. Counts (contacts --summary, report
# summaries) need no justification and leave no record.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 1 --keep-raw --heartbeat-interval 0
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 30 --duration 2 --concurrency 30 --volunteer-share 1 \
    >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"

access_records() { # the access records in the log, one JSON object per line
    "$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY: list access" |
        grep '"kind":"access"' || true
}
wait_records() { # N: wait until the log holds at least N access records
    for _ in $(seq 1 100); do
        [ "$(access_records | wc -l)" -ge "$1" ] && return 0
        sleep 0.1
    done
    fail "fewer than $1 access records in the log: $(access_records)"
}

# Without a justification: a usage error naming it, and nothing on stdout.
for cmd in "contacts --state $state" "contacts --state $state --all" \
    "report --state $state --format csv" "report --state $state --format intelmq" \
    "prove --state $state --entry 0 --out $E2E_DIR/nob" \
    "raw check --state $state --reparse"; do
    status=0
    # shellcheck disable=SC2086
    "$SINKD_BINARY" $cmd >"$E2E_DIR/out" 2>"$E2E_DIR/err" || status=$?
    [ "$status" -eq 2 ] || fail "'$cmd' without --justification exited $status, not 2"
    [ -s "$E2E_DIR/out" ] && fail "'$cmd' without --justification printed: $(head -2 "$E2E_DIR/out")"
    grep -q -- "--justification" "$E2E_DIR/err" || fail "'$cmd': no line naming --justification: $(cat "$E2E_DIR/err")"
done
[ -e "$E2E_DIR/nob" ] && fail "prove without a justification wrote a bundle"
status=0
"$SINKD_BINARY" contacts --state "$state" --justification "x" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 2 ] || fail "a one-letter justification was accepted"
# Counts name nobody: no justification needed, no record made.
base=$(access_records | wc -l)
[ "$base" -eq 0 ] || fail "access records before any read: $base"
"$SINKD_BINARY" contacts --state "$state" --summary >/dev/null || fail "contacts --summary"
"$SINKD_BINARY" report --state "$state" --catch-up --format summary-json >/dev/null || fail "report summary-json"
"$SINKD_BINARY" report --state "$state" --remediation --format summary >/dev/null || fail "remediation summary"

# contacts while serve runs: spooled, appended by serve's writer.
"$SINKD_BINARY" contacts --state "$state" --justification "CERT-X request 2026-17, case 4711" \
    --operator "alice@cert.example" >"$E2E_DIR/contacts.jsonl" || fail "contacts with a justification"
rows=$(wc -l <"$E2E_DIR/contacts.jsonl")
[ "$rows" -gt 30 ] || fail "only $rows contacts printed"
sha=$(sha256sum <"$E2E_DIR/contacts.jsonl" | cut -c1-64)
wait_records 2 # the listing's own record comes first
access_records >"$E2E_DIR/access.jsonl"
python3 - "$E2E_DIR/access.jsonl" "$rows" "$sha" "$state" <<'PY' || fail "the contacts access record is wrong: $(cat "$E2E_DIR/access.jsonl")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
r = [x for x in recs if x["operator"] == "alice@cert.example"]
assert len(r) == 1, recs
r = r[0]
assert r["what"] == "contacts", r
assert r["rows"] == int(sys.argv[2]), r
assert r["output_sha256"] == sys.argv[3], (r["output_sha256"], sys.argv[3])
assert r["justification"] == "CERT-X request 2026-17, case 4711", r
assert r["scope"] == "state=%s records=contacts" % sys.argv[4], r
for k in ("src_ip", "host", "user", "bot_key", "local_ip"):
    assert k not in r, k
PY

# report --out: held back in a hidden directory, handed out once recorded; the record's digest is
# sha256sum's listing of the files.
mkdir -p "$E2E_DIR/reports"
"$SINKD_BINARY" report --state "$state" --format csv --split country --out "$E2E_DIR/reports" \
    --justification "per-country reports for the CERTs, case 4711" >/dev/null 2>"$E2E_DIR/report.err" ||
    fail "report --out: $(cat "$E2E_DIR/report.err")"
ls -A "$E2E_DIR/reports" | grep -q '^\.sinkd-held' && fail "the held directory was left behind"
want=$( (cd "$E2E_DIR/reports" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum | cut -c1-64)
bots=$(cat "$E2E_DIR/reports"/*.csv | grep -vc '^"timestamp"\|^timestamp' || true)
# report to stdout, and prove
"$SINKD_BINARY" report --state "$state" --format intelmq --justification "IntelMQ feed for CERT-Y" \
    >"$E2E_DIR/report.jsonl" || fail "report intelmq"
isha=$(sha256sum <"$E2E_DIR/report.jsonl" | cut -c1-64)
irows=$(wc -l <"$E2E_DIR/report.jsonl")
"$SINKD_BINARY" prove --state "$state" --entry 2 --entry 3 --out "$E2E_DIR/bundle" \
    --justification "bundle for the court, case 4711" >/dev/null || fail "prove"
ls -d "$E2E_DIR"/bundle.held-* 2>/dev/null && fail "prove left its held directory"
psha=$( (cd "$E2E_DIR/bundle" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum | cut -c1-64)
"$SINKD_BINARY" raw check --state "$state" --reparse --justification "re-reading bodies for the defence" \
    >"$E2E_DIR/raw.txt" || fail "raw check --reparse"
rsha=$(sha256sum <"$E2E_DIR/raw.txt" | cut -c1-64)
# serve's writer appends them within ~200 ms of each other; wait for all four by name
for _ in $(seq 1 100); do
    access_records >"$E2E_DIR/access2.jsonl"
    n=0
    for w in '"report --format csv --out"' '"report --format intelmq"' '"prove"' '"raw check --reparse"'; do
        grep -q "\"what\":$w" "$E2E_DIR/access2.jsonl" && n=$((n + 1))
    done
    [ "$n" -eq 4 ] && break
    sleep 0.1
done
python3 - "$E2E_DIR/access2.jsonl" "$want" "$bots" "$isha" "$irows" "$psha" "$rsha" <<'PY' || fail "report/prove/raw access records are wrong: $(tail -5 "$E2E_DIR/access2.jsonl")"
import json, sys
recs = {json.loads(l)["what"]: json.loads(l) for l in open(sys.argv[1])}
csv = recs["report --format csv --out"]
assert csv["output_sha256"] == sys.argv[2], (csv, sys.argv[2])
assert csv["rows"] == int(sys.argv[3]), (csv["rows"], sys.argv[3])
assert "split=country" in csv["scope"], csv
im = recs["report --format intelmq"]
assert im["output_sha256"] == sys.argv[4] and im["rows"] == int(sys.argv[5]), im
pr = recs["prove"]
assert pr["output_sha256"] == sys.argv[6] and pr["rows"] == 2, pr
rw = recs["raw check --reparse"]
assert rw["output_sha256"] == sys.argv[7] and rw["rows"] > 0, rw
PY
stop_server

# No serve: the reading command appends its record itself.
n=$(access_records | wc -l)
"$SINKD_BINARY" contacts --state "$state" --justification "after the operation, case 4711" >/dev/null
[ "$(access_records | wc -l)" -ge $((n + 2)) ] || fail "without serve the record was not appended"
[ -z "$(ls -A "$state/spool" | grep -v '\.bad$' || true)" ] || fail "spool not empty: $(ls -A "$state/spool")"

# Another process holds the log (not brief): the record waits in the spool, durable, and the
# next serve appends it.
python3 - "$state/log.lock" "$E2E_DIR/held" <<'PY' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, b"pid %d\nsome maintenance\n" % os.getpid())
open(sys.argv[2], "w").close()
end = time.time() + 20
while os.path.exists(sys.argv[2]) and time.time() < end:
    time.sleep(0.05)
PY
holder=$!
E2E_PIDS+=("$holder")
for _ in $(seq 1 100); do [ -e "$E2E_DIR/held" ] && break; sleep 0.05; done
n=$(access_records | wc -l)
"$SINKD_BINARY" contacts --state "$state" --justification "while the log is held, case 4711" >/dev/null ||
    fail "contacts while another process holds the log"
ls "$state/spool" | grep -q '\.rec$' || fail "nothing waits in the spool"
rm -f "$E2E_DIR/held"
wait "$holder"
start_server "$state" "$port" --workers 1 --heartbeat-interval 0
sleep 0.5
stop_server
access_records | grep -q '"justification":"while the log is held, case 4711"' ||
    fail "the spooled record never reached the log"
[ -z "$(ls -A "$state/spool" | grep -v '\.bad$' || true)" ] || fail "spool not drained: $(ls -A "$state/spool")"

# Root on a state directory another user owns: the command drops to the owner, but the record
# names who ran it (the invoking user), not the owner it became.
if [ "$(id -u)" -eq 0 ]; then
    chmod 711 "$E2E_DIR"
    chown -R nobody: "$state"
    mkdir "$E2E_DIR/nobody-out"
    chown nobody: "$E2E_DIR/nobody-out"
    me=$(id -un)
    [ -z "${SUDO_USER:-}" ] || me="$SUDO_USER (sudo)" # make check run through sudo
    "$SINKD_BINARY" contacts --state "$state" --justification "as root on nobody's state" \
        >/dev/null 2>"$E2E_DIR/err" || fail "contacts as root: $(cat "$E2E_DIR/err")"
    grep -q "running as nobody" "$E2E_DIR/err" || fail "contacts as root did not drop: $(cat "$E2E_DIR/err")"
    "$SINKD_BINARY" report --state "$state" --format intelmq --justification "report as root on nobody's state" \
        >/dev/null 2>"$E2E_DIR/err" || fail "report as root: $(cat "$E2E_DIR/err")"
    "$SINKD_BINARY" prove --state "$state" --entry 2 --out "$E2E_DIR/nobody-out/bundle" \
        --justification "prove as root on nobody's state" >/dev/null 2>"$E2E_DIR/err" ||
        fail "prove as root: $(cat "$E2E_DIR/err")"
    access_records >"$E2E_DIR/access3.jsonl"
    for j in "as root on nobody's state" "report as root on nobody's state" "prove as root on nobody's state"; do
        op=$(python3 -c 'import json, sys
print(" ".join(r["operator"] for r in map(json.loads, open(sys.argv[1])) if r["justification"] == sys.argv[2]))' \
            "$E2E_DIR/access3.jsonl" "$j")
        [ "$op" = "$me" ] || fail "'$j': the access record names '$op', not the invoking user '$me'"
    done
    # An --out the owner cannot write: exit 1, a line naming that user, nothing written and no
    # access record (a record stands for output that was handed out).
    mkdir -p "$E2E_DIR/root-only/sub"
    chmod 755 "$E2E_DIR/root-only" "$E2E_DIR/root-only/sub"
    for cmd in "report --state $state --format csv --out $E2E_DIR/root-only/sub" \
        "report --state $state --format csv --out $E2E_DIR/root-only/new" \
        "prove --state $state --entry 2 --out $E2E_DIR/root-only/bundle"; do
        n=$(access_records | wc -l)
        status=0
        # shellcheck disable=SC2086
        "$SINKD_BINARY" $cmd --justification "unwritable out, case 4711" >/dev/null 2>"$E2E_DIR/err" || status=$?
        # one more: the listing access_records itself adds
        [ "$(access_records | wc -l)" -eq $((n + 1)) ] || fail "'$cmd' failed but left an access record: $(access_records | tail -2)"
        [ "$status" -eq 1 ] || fail "'$cmd' into an unwritable --out: exit $status: $(cat "$E2E_DIR/err")"
        grep -q -- "--out: .*Permission denied (writing as nobody (uid [0-9]*), the owner of the state directory)" "$E2E_DIR/err" ||
            fail "'$cmd': the error does not name the user: $(cat "$E2E_DIR/err")"
        [ -z "$(ls -A "$E2E_DIR/root-only/sub")" ] && [ ! -e "$E2E_DIR/root-only/new" ] && [ ! -e "$E2E_DIR/root-only/bundle" ] ||
            fail "'$cmd' wrote into the unwritable --out"
    done
fi
"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >/dev/null || fail "the log does not verify"
echo "access records: every read recorded with its digest, counts exempt, spool drained by serve"
