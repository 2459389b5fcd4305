#!/usr/bin/env bash
# prove_test.sh -- bundles as CERTs and courts ask for them (issue 19 #10): `prove --bot KEY`
# holds every record of the bot including the first contact of each of its connections (a hello
# sent before the bot named itself, so without a bot key); `prove --ip ADDR` holds every record
# from that address, and --since/--until cut it to a period; bad addresses and periods are usage
# errors; the bundles verify with the log's key and with the independent verifiers given it.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
port=$(free_port)
start_server "$state" "$port" --workers 1
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 20 --duration 3 --concurrency 20 --volunteer-share 1 \
    --heartbeat-ms 500 >"$E2E_DIR/swarm.txt" || fail "swarm exited non-zero"
stop_server
"$SINKD_BINARY" contacts --state "$state" --all --justification "$E2E_WHY" >"$E2E_DIR/all.jsonl"

# A bot whose connection opened with a hello (no bot key) before its machine information.
read -r bot ip hello < <(python3 - "$E2E_DIR/all.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
for r in recs:
    if r["kind"] == "contact" and r.get("type") == "machine-info" and r["bot_key"]:
        first = [h for h in recs if h["kind"] == "contact" and h["bot_key"] == "" and
                 (h["src_ip"], h["src_port"], h["dst_ip"], h["dst_port"]) ==
                 (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]) and h["index"] < r["index"]]
        if first:
            print(r["bot_key"], r["src_ip"], first[-1]["index"])
            break
PY
)
[ -n "${hello:-}" ] || fail "no connection that opened with a hello"

entries() { python3 -c 'import json,sys; print(" ".join(str(e["index"]) for e in json.load(open(sys.argv[1]))["entries"]))' "$1/bundle.json"; }

"$SINKD_BINARY" prove --state "$state" --bot "$bot" --out "$E2E_DIR/bot" --justification "$E2E_WHY" >/dev/null ||
    fail "prove --bot"
want=$(python3 - "$E2E_DIR/all.jsonl" "$bot" "$hello" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
keyed = sorted(r["index"] for r in recs if r.get("bot_key") == sys.argv[2])
print(" ".join(str(i) for i in sorted(set(keyed) | {int(sys.argv[3])})))
PY
)
got=$(entries "$E2E_DIR/bot")
[[ " $got " == *" $hello "* ]] || fail "the bot's first contact (entry $hello) is not in its bundle: $got"
# every keyed record, plus that bot's connection-opening hellos (there may be several)
python3 - "$want" "$got" <<'PY' || fail "prove --bot selected other entries: want ⊇ $want, got $got"
import sys
want, got = set(sys.argv[1].split()), set(sys.argv[2].split())
assert want <= got, want - got
PY

"$SINKD_BINARY" prove --state "$state" --ip "$ip" --out "$E2E_DIR/ip" --justification "$E2E_WHY" >/dev/null ||
    fail "prove --ip"
want=$(python3 -c '
import json, sys
print(" ".join(str(r["index"]) for r in map(json.loads, open(sys.argv[1])) if r.get("src_ip") == sys.argv[2]))' \
    "$E2E_DIR/all.jsonl" "$ip")
got=$(entries "$E2E_DIR/ip")
[ "$got" = "$want" ] || fail "prove --ip $ip: want $want, got $got"
[[ " $got " == *" $hello "* ]] || fail "the address's first contact is not in its bundle"
grep -q "\"src_ip\": \"$ip\"" "$E2E_DIR/ip/entries/$hello.json" || fail "entries/$hello.json does not show $ip"

# A period: the whole run, then one that holds nothing.
"$SINKD_BINARY" prove --state "$state" --ip "$ip" --since 2000-01-01 --until 2999-12-31 \
    --out "$E2E_DIR/ip2" --justification "$E2E_WHY" >/dev/null || fail "prove --ip with a period"
[ "$(entries "$E2E_DIR/ip2")" = "$want" ] || fail "a period around everything changed the selection"
status=0
"$SINKD_BINARY" prove --state "$state" --ip "$ip" --until 2001-01-01 --out "$E2E_DIR/ip3" \
    --justification "$E2E_WHY" >/dev/null 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && grep -q "in that period" "$E2E_DIR/err" || fail "an empty period: exit $status, $(cat "$E2E_DIR/err")"
[ -e "$E2E_DIR/ip3" ] && fail "an empty selection wrote a bundle"
for bad in "--ip 300.1.1.1" "--ip example.org" "--bot $bot --since yesterday" \
    "--ip $ip --since 2026-02-01 --until 2026-01-01" "--entry 1 --since 2026-01-01"; do
    status=0
    # shellcheck disable=SC2086
    "$SINKD_BINARY" prove --state "$state" $bad --out "$E2E_DIR/bad" --justification "$E2E_WHY" \
        >/dev/null 2>"$E2E_DIR/err" || status=$?
    [ "$status" -eq 2 ] || fail "prove $bad: exit $status, not 2: $(cat "$E2E_DIR/err")"
done

for b in bot ip; do
    "$SINKD_BINARY" verify-bundle "$E2E_DIR/$b" --key "$state/keys/log.vkey" >/dev/null || fail "verify-bundle $b"
    python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py" "$E2E_DIR/$b" "$state/keys/log.vkey" >/dev/null ||
        fail "the Python verifier rejects the $b bundle"
done
echo "prove: --bot with its first contacts, --ip over a period"
