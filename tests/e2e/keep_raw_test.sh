#!/usr/bin/env bash
# keep_raw_test.sh -- `serve --keep-raw` under its seccomp filter with a real swarm: every
# contact's body is kept once under the hash its record carries; `sha256sum` (not sinkd) agrees
# with every name; a machine-info body holds the host name its contact recorded, as the bot
# sent it (UTF-16LE); node-started says the capture was on; `sinkd raw check` passes, then
# names a damaged file and a stray one and exits 1; without --keep-raw nothing is kept and the
# check says why; bad option values are usage errors.
source "$(dirname "$0")/lib.sh"
state="$E2E_DIR/state"
port=$(free_port)
mport=$(free_port)
start_server "$state" "$port" --workers 2 --keep-raw --metrics-listen "127.0.0.1:$mport"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 200 --duration 3 --concurrency 200 \
    --source-net 127.0.1.0/24 --volunteer-share 1 --json "$E2E_DIR/swarm.json" >/dev/null || fail "swarm exited non-zero"
sleep 0.3
python3 - "$mport" <<'PY' >"$E2E_DIR/raw_metrics.txt" || fail "no keep-raw metrics"
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
m = dict(l.rsplit(" ", 1) for l in text.splitlines() if l.startswith("sinkd_raw_"))
assert int(m["sinkd_raw_bodies_kept_total"]) >= 200, m
assert m["sinkd_raw_bodies_skipped_total"] == "0" and m["sinkd_raw_full"] == "0", m
print(m["sinkd_raw_bodies_kept_total"])
PY
stop_server
grep -q "keep-raw: $(cat "$E2E_DIR/raw_metrics.txt") bodies kept" "$E2E_DIR/serve.log" ||
    fail "metrics' kept bodies ($(cat "$E2E_DIR/raw_metrics.txt")) differ from the stop line"
grep -q 'keep-raw: [1-9][0-9]* bodies kept' "$E2E_DIR/serve.log" || fail "no keep-raw line in the log"

"$SINKD_BINARY" raw check --justification "$E2E_WHY" --state "$state" --require-all --reparse >"$E2E_DIR/check.txt" ||
    fail "raw check failed on an intact capture: $(cat "$E2E_DIR/check.txt")"
"$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$state" --all >"$E2E_DIR/records.jsonl" || fail "contacts"

python3 - "$state" "$E2E_DIR/check.txt" "$E2E_DIR/records.jsonl" "$E2E_DIR/swarm.json" <<'PY' || fail "kept bodies do not match the log"
import hashlib, json, os, subprocess, sys
state, check, records, swarm = sys.argv[1:5]
def need(cond, what):
    if not cond:
        print("check failed:", what, file=sys.stderr)
        sys.exit(1)
c = json.loads(open(check).read().splitlines()[-1])
recs = [json.loads(l) for l in open(records)]
contacts = [r for r in recs if r["kind"] == "contact"]
sw = json.load(open(swarm))
need(sw["machine_info"]["volunteered"] >= 200, "machine information volunteered: %r" % sw["machine_info"])
need(c["contacts"] == len(contacts) > 0, "check read %d contacts, log has %d" % (c["contacts"], len(contacts)))
need(c["contacts_with_body"] == c["contacts"], "contacts without their body: %r" % c)
need(c["damaged"] == 0 and c["stray"] == 0 and c["unreferenced"] == 0, "intact capture: %r" % c)
bodies = {r["body_sha256"] for r in contacts}
need(c["files"] == c["distinct_bodies"] == len(bodies), "one file per distinct body: %r" % c)
# Every machine-info body, parsed again, gives the identity its record holds.
mi_count = sum(1 for r in contacts if r["type"] == "machine-info")
p = c["reparse"]
need(p["machine_info_contacts"] == p["reparsed"] == p["matched"] == mi_count >= 200,
     "reparse: %r, %d machine-info contacts" % (p, mi_count))
started = [json.loads(r["detail"]) for r in recs if r["kind"] == "node-started"]
need(started and started[-1]["keep_raw"] is True, "node-started does not record keep_raw")
# sha256sum, not sinkd, over every file: its digest is its name.
files = []
for sub in sorted(os.listdir(os.path.join(state, "raw"))):
    for name in os.listdir(os.path.join(state, "raw", sub)):
        files.append(os.path.join(state, "raw", sub, name))
out = subprocess.run(["sha256sum"] + files, capture_output=True, text=True, check=True).stdout
for line in out.splitlines():
    digest, path = line.split(None, 1)
    need(os.path.basename(path) == digest, "sha256sum disagrees with the name of " + path)
    need(digest in bodies, "file no contact names: " + path)
# A machine-info body carries, in UTF-16LE, the host name its contact recorded.
mi = [r for r in contacts if r["type"] == "machine-info" and r["host"]]
need(len(mi) >= 150, "machine-info contacts: %d" % len(mi))
for r in mi[:50]:
    h = r["body_sha256"]
    body = open(os.path.join(state, "raw", h[:2], h), "rb").read()
    need(hashlib.sha256(body).hexdigest() == h, "body hash")
    need(r["host"].encode("utf-16-le") in body, "host %r not in its body" % r["host"])
    need(r["user"].encode("utf-16-le") in body, "user %r not in its body" % r["user"])
# Files and directories are the service user's alone: bodies name victims' machines and users.
need(os.stat(os.path.join(state, "raw")).st_mode & 0o077 == 0, "raw/ is not 0700")
need(all(os.stat(f).st_mode & 0o077 == 0 for f in files), "a body file is readable by others")
PY

# An evidence bundle for one bot carries the bodies of its contacts, checked by verify-bundle.
bot=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["kind"] == "contact" and d["type"] == "machine-info":
        print(d["bot_key"]); break' "$E2E_DIR/records.jsonl")
"$SINKD_BINARY" prove --justification "$E2E_WHY" --state "$state" --bot "$bot" --out "$E2E_DIR/bundle" >/dev/null || fail "prove"
want=$(python3 -c 'import json,sys
print(len({d["body_sha256"] for d in map(json.loads, open(sys.argv[1]))
           if d["kind"] == "contact" and d["bot_key"] == sys.argv[2]}))' "$E2E_DIR/records.jsonl" "$bot")
got=$(find "$E2E_DIR/bundle/raw" -type f | wc -l)
[ "$got" -eq "$want" ] && [ "$got" -ge 2 ] || fail "bundle has $got bodies, the bot's contacts name $want"
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" >"$E2E_DIR/vb.txt" || fail "verify-bundle: $(cat "$E2E_DIR/vb.txt")"
grep -q "$want message bodies in raw/" "$E2E_DIR/vb.txt" || fail "verify-bundle does not count the bodies"
grep -q 'sha256sum raw' "$E2E_DIR/bundle/README.txt" || fail "bundle README does not explain raw/"
# A changed body, or a body no entry names, fails it.
cp -r "$E2E_DIR/bundle" "$E2E_DIR/bundle2"
body=$(find "$E2E_DIR/bundle2/raw" -type f -size +100c -print -quit)
printf 'X' | dd of="$body" bs=1 seek=30 conv=notrunc status=none
rc=0
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle2" >/dev/null 2>"$E2E_DIR/vb2.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'content does not hash to its name' "$E2E_DIR/vb2.err" ||
    fail "verify-bundle accepted a changed body (rc $rc): $(cat "$E2E_DIR/vb2.err")"
rm -rf "$E2E_DIR/bundle2" && cp -r "$E2E_DIR/bundle" "$E2E_DIR/bundle2"
python3 - "$state/raw" "$E2E_DIR/bundle2/raw" <<'PY' || fail "no other body to plant"
import os, shutil, sys
src, dst = sys.argv[1:3]
for sub in sorted(os.listdir(src)):
    for name in os.listdir(os.path.join(src, sub)):
        if not os.path.exists(os.path.join(dst, sub, name)):
            os.makedirs(os.path.join(dst, sub), exist_ok=True)
            shutil.copy(os.path.join(src, sub, name), os.path.join(dst, sub, name))
            sys.exit(0)
sys.exit(1)
PY
rc=0
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle2" >/dev/null 2>"$E2E_DIR/vb3.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'body of no contact entry' "$E2E_DIR/vb3.err" ||
    fail "verify-bundle accepted another bot's body (rc $rc): $(cat "$E2E_DIR/vb3.err")"

# Damage one kept body and leave a stray file: both named, exit 1.
victim=$(find "$state/raw" -type f -size +100c -print -quit)
[ -n "$victim" ] || fail "no machine-info body kept"
printf 'X' | dd of="$victim" bs=1 seek=20 conv=notrunc status=none
touch "$state/raw/00/.tmp-99-1"
rc=0
"$SINKD_BINARY" raw check --state "$state" >"$E2E_DIR/check2.txt" 2>"$E2E_DIR/check2.err" || rc=$?
[ "$rc" -eq 1 ] || fail "raw check exited $rc on a damaged capture"
grep -q "raw/${victim#"$state/raw/"}: content does not hash to its name" "$E2E_DIR/check2.txt" ||
    fail "damaged file not named: $(cat "$E2E_DIR/check2.txt")"
grep -q 'raw/00/.tmp-99-1: not a body' "$E2E_DIR/check2.txt" || fail "stray file not named"
grep -q '1 damaged and 1 stray' "$E2E_DIR/check2.err" || fail "no summary line: $(cat "$E2E_DIR/check2.err")"

# Without --keep-raw: nothing kept, and the check says why.
state2="$E2E_DIR/state2"
port=$(free_port)
start_server "$state2" "$port"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 20 --duration 1 --concurrency 20 \
    --source-net 127.0.1.0/24 >/dev/null || fail "swarm (no keep-raw)"
stop_server
[ ! -e "$state2/raw" ] || fail "raw/ exists without --keep-raw"
rc=0
"$SINKD_BINARY" raw check --state "$state2" >/dev/null 2>"$E2E_DIR/check3.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q -- '--keep-raw' "$E2E_DIR/check3.err" || fail "raw check without a capture: rc $rc"

# Usage errors name the option.
rc=0
"$SINKD_BINARY" serve --state "$state2" --keep-raw-max-mib lots 2>"$E2E_DIR/usage.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'keep-raw-max-mib' "$E2E_DIR/usage.err" || fail "bad --keep-raw-max-mib: rc $rc"
rc=0
"$SINKD_BINARY" raw check 2>"$E2E_DIR/usage2.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- '--state' "$E2E_DIR/usage2.err" || fail "raw check without --state: rc $rc"
rc=0
"$SINKD_BINARY" raw list 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "unknown raw subcommand: rc $rc"
echo "keep_raw_test: ok"
