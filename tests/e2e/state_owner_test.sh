#!/usr/bin/env bash
# state_owner_test.sh -- issue 19 item 8: maintenance as the service user. Root running
# `registry rebuild` (and report, keygen, contacts, erase, portal approve/reject/requests) on a state directory another user owns must leave no
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

# Root: portal approve and reject (requests.db and its -wal/-shm, portal/policies/, the spool)
# and portal requests leave only the owner's files; the policy file, in a directory only root
# may write (/etc/sinkd), is still written, and stays root's; the decision names root.
python3 - "$state/portal" <<'PY' || fail "setup: pending portal requests"
import os, sqlite3, sys, time
os.makedirs(sys.argv[1], exist_ok=True)
db = sqlite3.connect(os.path.join(sys.argv[1], "requests.db"))
db.execute("CREATE TABLE request(id INTEGER PRIMARY KEY, authority TEXT NOT NULL, countries TEXT NOT NULL,"
           " networks TEXT NOT NULL, legal_reference TEXT NOT NULL, contact TEXT NOT NULL,"
           " not_before_us INTEGER NOT NULL, not_after_us INTEGER NOT NULL,"
           " submitted_us INTEGER NOT NULL, status INTEGER NOT NULL DEFAULT 0,"
           " decided_us INTEGER NOT NULL DEFAULT 0, decided_by TEXT NOT NULL DEFAULT '',"
           " reason TEXT NOT NULL DEFAULT '', authorisation TEXT NOT NULL DEFAULT '',"
           " policy_sha256 BLOB)")
now = int(time.time() * 1e6)
for cc in ("NG", "IN"):
    db.execute("INSERT INTO request(authority, countries, networks, legal_reference, contact,"
               " not_before_us, not_after_us, submitted_us) VALUES('cert-ng', ?, '', 'ORDER-1',"
               " 'cert@example.org', ?, ?, ?)", (cc, now, now + 30 * 86400 * 10**6, now))
db.commit()
PY
chown -R "$owner:" "$state"
etc="$E2E_DIR/etc"
mkdir -p "$etc"
chmod 755 "$etc"
printf '[policy]\nname = state owner test\nversion = 1\n' >"$etc/policy.ini"
"$SINKD_BINARY" portal approve 1 --state "$state" --policy "$etc/policy.ini" --command-id 0xFD01 \
    >"$E2E_DIR/out" 2>"$E2E_DIR/err" || fail "portal approve as root failed: $(cat "$E2E_DIR/err")"
grep -q "running as $owner (uid $owner_uid), the owner of $state" "$E2E_DIR/err" ||
    fail "portal approve: no line saying it runs as the owner: $(cat "$E2E_DIR/err")"
grep -q "^\[authorisation portal-1-cc\]" "$etc/policy.ini" || fail "portal approve did not write the policy"
[ "$(stat -c %U "$etc/policy.ini")" = root ] || fail "the policy file changed owner: $(stat -c %U "$etc/policy.ini")"
ls "$state"/portal/policies/*.ini >/dev/null || fail "portal approve kept no old policy"
"$SINKD_BINARY" portal reject 2 --state "$state" --reason "outside the order" >/dev/null 2>"$E2E_DIR/err" ||
    fail "portal reject as root failed: $(cat "$E2E_DIR/err")"
"$SINKD_BINARY" portal requests --state "$state" >/dev/null 2>"$E2E_DIR/err" ||
    fail "portal requests as root failed: $(cat "$E2E_DIR/err")"
[ -z "$(not_owned "$state")" ] || fail "root's portal approve/reject/requests left files: $(not_owned "$state")"
"$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" 2>/dev/null |
    grep '"kind":"portal-decision"' >"$E2E_DIR/decisions"
[ "$(grep -c '"operator":"root"' "$E2E_DIR/decisions")" -eq 2 ] ||
    fail "the portal decisions do not name root: $(cat "$E2E_DIR/decisions")"

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
