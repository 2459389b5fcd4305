#!/usr/bin/env bash
# state_owner_test.sh -- issue 19 item 8: maintenance as the service user. Root running
# `registry rebuild` (and report, keygen, contacts, erase) on a state directory another user owns must leave no
# file owned by root there: the command becomes the directory's owner and says so. Any other
# user is refused with one line naming the owner, and nothing is written.
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (the fault is root writing into another user's state directory)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: no setpriv to run as another user"; exit 77; }
owner=nobody
owner_uid=$(id -u "$owner")
chmod 711 "$E2E_DIR" # the owner (and the other user) must reach the state directory

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 20 --duration 1 --source-net 127.0.1.0/24 \
    >/dev/null 2>&1 || fail "swarm failed"
stop_server
chown -R "$owner:" "$state"
not_owned() { find "$1" ! -user "$owner" -printf '%u %p\n'; }
[ -z "$(not_owned "$state")" ] || fail "setup: $(not_owned "$state")"

# Root: the rebuild runs as the owner.
"$SINKD_BINARY" registry rebuild --state "$state" >"$E2E_DIR/out" 2>"$E2E_DIR/err" ||
    fail "registry rebuild as root failed: $(cat "$E2E_DIR/err")"
grep -q "running as $owner (uid $owner_uid), the owner of $state" "$E2E_DIR/err" ||
    fail "no line saying it runs as the owner: $(cat "$E2E_DIR/err")"
grep -q "registry rebuilt: " "$E2E_DIR/out" || fail "rebuild did not run: $(cat "$E2E_DIR/out")"
[ -z "$(not_owned "$state")" ] || fail "root's rebuild left files the service cannot write: $(not_owned "$state")"

# Root: a report (SQLite may add -wal/-shm beside registry.db) and keygen into the state's keys/.
"$SINKD_BINARY" report --state "$state" --catch-up --format summary >/dev/null 2>"$E2E_DIR/err" ||
    fail "report as root failed: $(cat "$E2E_DIR/err")"
[ -z "$(not_owned "$state")" ] || fail "root's report left files: $(not_owned "$state")"
fresh="$E2E_DIR/fresh"
mkdir -p "$fresh"
chown "$owner:" "$fresh"
"$SINKD_BINARY" keygen --name example.org/n1 --out "$fresh/keys" >/dev/null 2>"$E2E_DIR/err" ||
    fail "keygen as root failed: $(cat "$E2E_DIR/err")"
[ -z "$(not_owned "$fresh")" ] || fail "root's keygen made keys the service cannot read: $(not_owned "$fresh")"

# Root: a read of victims' data (its access record goes into the spool and the log) and an
# erasure (tombstones, the spool, the log) leave only the owner's files too.
"$SINKD_BINARY" contacts --state "$state" --justification "$E2E_WHY" >/dev/null 2>"$E2E_DIR/err" ||
    fail "contacts as root failed: $(cat "$E2E_DIR/err")"
"$SINKD_BINARY" erase --state "$state" --older-than 1 --legal-basis "test: retention rule" \
    >/dev/null 2>"$E2E_DIR/err" || fail "erase as root failed: $(cat "$E2E_DIR/err")"
[ -d "$state/spool" ] || fail "no spool: the access record did not go through it"
[ -z "$(not_owned "$state")" ] || fail "root's contacts or erase left files: $(not_owned "$state")"

# Another user: refused, one line naming the owner, nothing written.
before=$(find "$state" -printf '%p %s %T@\n' | sort)
status=0
setpriv --reuid=daemon --regid=daemon --clear-groups "$SINKD_BINARY" registry rebuild --state "$state" \
    >/dev/null 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] || fail "rebuild by another user: exit $status: $(cat "$E2E_DIR/err")"
[ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] && grep -q "belongs to $owner (uid $owner_uid), not to you" "$E2E_DIR/err" ||
    fail "unclear refusal: $(cat "$E2E_DIR/err")"
[ "$before" = "$(find "$state" -printf '%p %s %T@\n' | sort)" ] || fail "the refused rebuild changed the state directory"
echo "state owner: OK"
