#!/usr/bin/env bash
# sandbox_test.sh -- serve started as root with --user nobody: after start-up the process runs as
# nobody with no capabilities, no-new-privs and a seccomp filter, and still answers every bot of a
# swarm, reloads on SIGHUP and drains on SIGTERM; without --user, root is refused.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: needs root to drop privileges"
    exit 77 # ctest's SKIP_RETURN_CODE: reported as skipped, not passed
fi
nobody_uid=$(id -u nobody) || { echo "SKIP: no user nobody"; exit 77; }
nobody_gid=$(id -g nobody)

# Root without --user is refused, with a message saying what to do.
if "$SINKD_BINARY" serve --state "$E2E_DIR/refused" --listen 127.0.0.1:1 \
    >/dev/null 2>"$E2E_DIR/refused.txt"; then
    fail "serve ran as root without --user"
fi
grep -q -- "--user" "$E2E_DIR/refused.txt" || fail "refusal does not mention --user: $(cat "$E2E_DIR/refused.txt")"

# nobody writes the ready file into the scratch dir and must be able to reach the binary.
chmod 0777 "$E2E_DIR"
state="$E2E_DIR/state"
mkdir -m 0700 "$state" # root-owned: serve must chown it to nobody before dropping root
port=$(free_port)
start_server "$state" "$port" --workers 2 --user nobody --checkpoint-ms 200

status="/proc/$SERVER_PID/status"
field() { awk -v k="$1:" '$1 == k {print $2, $3, $4, $5}' "$status"; }
read -r ruid euid suid fsuid <<<"$(field Uid)"
read -r rgid egid sgid fsgid <<<"$(field Gid)"
[ "$ruid $euid $suid $fsuid" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" ] ||
    fail "uids are $ruid $euid $suid $fsuid, want $nobody_uid"
[ "$rgid $egid $sgid $fsgid" = "$nobody_gid $nobody_gid $nobody_gid $nobody_gid" ] ||
    fail "gids are $rgid $egid $sgid $fsgid, want $nobody_gid"
for g in $(awk '$1 == "Groups:" {$1=""; print}' "$status"); do
    [ "$g" != 0 ] || fail "still in group 0"
done
[ "$(field Seccomp | awk '{print $1}')" = 2 ] || fail "Seccomp is $(field Seccomp), want 2 (filter)"
[ "$(field NoNewPrivs | awk '{print $1}')" = 1 ] || fail "NoNewPrivs not set"
for c in CapEff CapPrm CapBnd CapAmb; do
    [ "$(field $c | awk '{print $1}')" = 0000000000000000 ] || fail "$c is $(field $c)"
done
# Every thread, not only the main one, carries the filter (TSYNC).
for t in /proc/"$SERVER_PID"/task/*; do
    [ "$(awk '$1 == "Seccomp:" {print $2}' "$t/status")" = 2 ] || fail "thread ${t##*/} has no filter"
done
[ "$(stat -c %u "$state")" = "$nobody_uid" ] || fail "state directory not chowned to nobody"

"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 200 --duration 4 --concurrency 200 \
    --source-net 127.0.1.0/24 --heartbeat-ms 400 --http-share 0.3 --cipher mix \
    --json "$E2E_DIR/swarm1.json" >/dev/null || fail "swarm exited non-zero"
kill -HUP "$SERVER_PID"
sleep 1
kill -0 "$SERVER_PID" 2>/dev/null || fail "server died on SIGHUP (a reload call missing from the filter?)"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 100 --duration 2 --concurrency 100 \
    --source-net 127.0.1.0/24 --heartbeat-ms 400 \
    --json "$E2E_DIR/swarm2.json" >/dev/null || fail "swarm after SIGHUP exited non-zero"
stop_server # SIGTERM drain; exit 0, not SIGSYS (status 159)

for j in swarm1 swarm2; do
    python3 - "$E2E_DIR/$j.json" <<'PY' || fail "$j: not every bot was answered"
import json, sys
s = json.load(open(sys.argv[1]))
ok = s["bots_run"] > 0 and s["bots_replied"] == s["bots_run"] and sum(s["errors"].values()) == 0
if not ok:
    print(sys.argv[1], s["bots_run"], s["bots_replied"], s["errors"], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
done
grep -q "stopped cleanly" "$E2E_DIR/serve.log" || fail "no clean stop in the log"
"$SINKD_BINARY" contacts --state "$state" --summary >"$E2E_DIR/summary.json" || fail "contacts failed"

# A ready file nobody cannot write (a root-owned 0755 directory): the start stops with exit 1
# and one line naming the file and the user, instead of serving with no ready file while a
# script waits for it; nothing is listening.
mkdir -m 0755 "$E2E_DIR/root-only"
port=$(free_port)
status=0
timeout 20 "$SINKD_BINARY" serve --state "$state" --listen "127.0.0.1:$port" --user nobody \
    --ready-file "$E2E_DIR/root-only/ready" >/dev/null 2>"$E2E_DIR/ready.err" || status=$?
[ "$status" -eq 1 ] || fail "serve with an unwritable --ready-file exited $status, not 1: $(cat "$E2E_DIR/ready.err")"
grep -q -- "--ready-file $E2E_DIR/root-only/ready: nobody (uid $nobody_uid) cannot write it: .*Permission denied" "$E2E_DIR/ready.err" ||
    fail "no clear line about the ready file: $(cat "$E2E_DIR/ready.err")"
[ -z "$(ls -A "$E2E_DIR/root-only")" ] || fail "files left in the ready file's directory: $(ls -A "$E2E_DIR/root-only")"
echo "ok: serve ran as nobody (uid $nobody_uid) under seccomp; every bot answered"
