#!/usr/bin/env bash
# cosign_test.sh -- witness cosignatures end to end: a real server logging real bots; a C2SP
# tlog-witness on loopback written from the spec in Python (tests/e2e/witness_server.py, no sinkd
# code); `sinkd cosign` while the server runs, again after more bots (the witness checks the
# consistency proof from what it cosigned before), after sinkd lost its record of the witness
# (409, then a retry from the witness's size), a damaged reply (nothing stored), a forked log
# under the same key (the witness refuses: split view caught), and `sinkd verify --witness`;
# Go's x/mod note package (tests/go/tlogcheck.go) checks the stored cosigned checkpoints too.
source "$(dirname "$0")/lib.sh"
state="$E2E_DIR/state"
log="$state/log"
port=$(free_port)
start_server "$state" "$port" --workers 1 --checkpoint-ms 200 --heartbeat-interval 0
python3 "$SINKD_SOURCE_DIR/tests/e2e/witness_server.py" "$E2E_DIR/w.port" "$state/keys/log.vkey" \
    witness.cert.example/w1 "$E2E_DIR/w1.vkey" &
E2E_PIDS+=($!)
python3 "$SINKD_SOURCE_DIR/tests/e2e/witness_server.py" "$E2E_DIR/w2.port" "$state/keys/log.vkey" \
    witness.defence.example/w2 "$E2E_DIR/w2.vkey" &
E2E_PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$E2E_DIR/w.port" ] && [ -f "$E2E_DIR/w2.port" ] && break; sleep 0.05; done
w1="http://127.0.0.1:$(cat "$E2E_DIR/w.port")/add-checkpoint"
w2="http://127.0.0.1:$(cat "$E2E_DIR/w2.port")/add-checkpoint"
swarm() { # STATE_PORT
    "$SINKD_BINARY" swarm --target "127.0.0.1:$1" --bots 100 --duration 2 --concurrency 100 \
        --source-net 127.0.1.0/24 >/dev/null || fail "swarm exited non-zero"
}
cosign() { "$SINKD_BINARY" cosign --state "$state" --witness-key "$E2E_DIR/w1.vkey" "$@"; }
swarm "$port"
sleep 0.5
cosign --witness-url "$w1" >"$E2E_DIR/c1.txt" || fail "first cosign failed"
n1=$(sed -n 's/^sinkd cosign: checkpoint \([0-9]*\) cosigned by witness.cert.example\/w1 at [0-9]* (POSIX time); proof from 0$/\1/p' "$E2E_DIR/c1.txt")
[ -n "$n1" ] || fail "unexpected output: $(cat "$E2E_DIR/c1.txt")"
cmp -s <(head -c "$(stat -c %s "$log/checkpoints/$n1")" "$log/cosignatures/$n1") "$log/checkpoints/$n1" \
    || fail "cosignatures/$n1 does not start with checkpoints/$n1"
cosign --witness-url "$w1" | grep -q "nothing to do" || fail "second cosign of the same checkpoint"
swarm "$port"
sleep 0.5
cosign --witness-url "$w1" >"$E2E_DIR/c2.txt" || fail "cosign after more bots failed"
grep -q "proof from $n1\$" "$E2E_DIR/c2.txt" || fail "no consistency proof from $n1: $(cat "$E2E_DIR/c2.txt")"
n2=$(sed -n 's/^sinkd cosign: checkpoint \([0-9]*\) .*/\1/p' "$E2E_DIR/c2.txt")
"$SINKD_BINARY" cosign --state "$state" --witness-key "$E2E_DIR/w2.vkey" --witness-url "$w2" --size "$n2" >/dev/null \
    || fail "second witness failed"
grep -c '^— witness' "$log/cosignatures/$n2" | grep -qx 2 || fail "cosignatures/$n2 lacks two witness lines"
# sinkd forgets what w1 cosigned: the witness answers 409 with its size, sinkd proves from there.
mv "$log/cosignatures" "$E2E_DIR/cosig.bak"
swarm "$port"
sleep 0.5
cosign --witness-url "$w1" >"$E2E_DIR/c3.txt" || fail "cosign after a 409 failed"
grep -q "proof from $n2\$" "$E2E_DIR/c3.txt" || fail "the retry did not prove from the witness's $n2: $(cat "$E2E_DIR/c3.txt")"
n3=$(sed -n 's/^sinkd cosign: checkpoint \([0-9]*\) .*/\1/p' "$E2E_DIR/c3.txt")
cp "$E2E_DIR/cosig.bak/"* "$log/cosignatures/"
stop_server

# Damaged reply, wrong key type, witness down: an error, nothing stored.
expect_error() { # WHAT PATTERN ARGS...
    local what=$1 pattern=$2
    shift 2
    local rc=0
    "$SINKD_BINARY" cosign --state "$state" "$@" >/dev/null 2>"$E2E_DIR/err" || rc=$?
    [ "$rc" -eq 1 ] || fail "$what: exit $rc"
    grep -q -- "$pattern" "$E2E_DIR/err" || fail "$what: '$(cat "$E2E_DIR/err")' lacks '$pattern'"
}
n4=$(sed -n 2p "$log/checkpoint")
[ "$n4" -gt "$n3" ] || fail "no checkpoint after the last cosign"
expect_error "damaged cosignature" "cosignature by witness.cert.example/w1 does not verify" \
    --witness-key "$E2E_DIR/w1.vkey" --witness-url "${w1%/add-checkpoint}/bad-sig/add-checkpoint"
[ ! -f "$log/cosignatures/$n4" ] || fail "a damaged cosignature was stored"
expect_error "log key as witness key" "not a witness key" --witness-key "$state/keys/log.vkey" --witness-url "$w1"
closed=$(free_port)
expect_error "witness down" "127.0.0.1:$closed" --witness-key "$E2E_DIR/w1.vkey" --witness-url "http://127.0.0.1:$closed/add-checkpoint" --timeout 5

# Independent check of what sinkd stored: Go's x/mod note.Open with a cosignature verifier
# written from the spec (tests/go/tlogcheck.go).
gocheck="$E2E_DIR/tlogcheck"
(cd "$SINKD_SOURCE_DIR/tests/go" && GOCACHE="$E2E_DIR/gocache" GO111MODULE=off GOPATH=/usr/share/gocode \
    go build -o "$gocheck" tlogcheck.go) || fail "building the Go checker"
"$gocheck" cosigned "$log/cosignatures/$n2" "$state/keys/log.vkey" "$E2E_DIR/w1.vkey" "$E2E_DIR/w2.vkey" \
    >/dev/null || fail "Go rejects cosignatures/$n2"
"$gocheck" cosigned "$log/cosignatures/$n1" "$state/keys/log.vkey" "$E2E_DIR/w2.vkey" >/dev/null 2>&1 \
    && fail "Go found w2's cosignature on $n1, which w2 never cosigned"

# verify: both witnesses; a wrong line; an unknown witness.
"$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --witness "$E2E_DIR/w1.vkey" \
    --witness "$E2E_DIR/w2.vkey" >"$E2E_DIR/v.txt" || fail "verify --witness failed"
grep -q ", 4 cosignatures checked$" "$E2E_DIR/v.txt" || fail "verify: $(cat "$E2E_DIR/v.txt")"
grep -q "cosignature: checkpoint $n2 by witness witness.defence.example/w2 at" "$E2E_DIR/v.txt" || fail "verify does not list w2"
cp -a "$log/cosignatures" "$E2E_DIR/cosig.good"
python3 - "$log/cosignatures/$n1" <<'PY' # one base64 character of the signature changed
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = len(b) - 20
b[i] = ord("B") if b[i] != ord("B") else ord("C")
open(p, "wb").write(b)
PY
"$gocheck" cosigned "$log/cosignatures/$n1" "$state/keys/log.vkey" "$E2E_DIR/w1.vkey" >/dev/null 2>&1 \
    && fail "Go accepted a damaged cosignature line"
rc=0; "$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --witness "$E2E_DIR/w1.vkey" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "cosignatures/$n1: the line of witness witness.cert.example/w1 does not verify" "$E2E_DIR/err" \
    || fail "a damaged cosignature line passed verify: $(cat "$E2E_DIR/err")"
rm -rf "$log/cosignatures" && cp -a "$E2E_DIR/cosig.good" "$log/cosignatures"
cp "$log/cosignatures/$n1" "$log/cosignatures/$n2.x" && mv "$log/cosignatures/$n2.x" "$log/cosignatures/$n2"
rc=0; "$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "cosignatures/$n2: is not checkpoints/$n2 plus cosignatures" "$E2E_DIR/err" \
    || fail "a cosigned checkpoint moved to another size passed: $(cat "$E2E_DIR/err")"
rm -rf "$log/cosignatures" && cp -a "$E2E_DIR/cosig.good" "$log/cosignatures"
python3 -c 'import base64,hashlib,os; p=os.urandom(32); n="nobody.example/w"; print("%s+%s+%s" % (n, hashlib.sha256(n.encode()+b"\n\x04"+p).digest()[:4].hex(), base64.b64encode(b"\x04"+p).decode()))' >"$E2E_DIR/nobody.vkey"
rc=0; "$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --witness "$E2E_DIR/nobody.vkey" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "witness nobody.example/w cosigned no checkpoint" "$E2E_DIR/err" || fail "an absent witness passed: $(cat "$E2E_DIR/err")"

# A bundle proved against a cosigned checkpoint carries the cosignatures.
"$SINKD_BINARY" prove --justification "$E2E_WHY" --state "$state" --entry 0 --checkpoint "$n2" --out "$E2E_DIR/bundle" >/dev/null || fail "prove"
[ -f "$E2E_DIR/bundle/checkpoint.cosigned" ] || fail "bundle lacks checkpoint.cosigned"
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" --witness "$E2E_DIR/w1.vkey" --witness "$E2E_DIR/w2.vkey" >"$E2E_DIR/vb.txt" \
    || fail "verify-bundle --witness failed"
[ "$(grep -c "cosignature: checkpoint $n2 by witness" "$E2E_DIR/vb.txt")" = 2 ] || fail "verify-bundle: $(cat "$E2E_DIR/vb.txt")"
python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py" "$E2E_DIR/bundle" "$state/keys/log.vkey" >/dev/null || fail "the Python verifier rejects a cosigned bundle"
rc=0; "$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" --witness "$E2E_DIR/nobody.vkey" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "checkpoint.cosigned: note: no signature by the known key nobody.example/w" "$E2E_DIR/err" || fail "bundle: absent witness passed: $(cat "$E2E_DIR/err")"
sed -i '1s/^/x/' "$E2E_DIR/bundle/checkpoint.cosigned"
rc=0; "$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "checkpoint.cosigned does not extend checkpoint" "$E2E_DIR/err" || fail "bundle: foreign cosigned note passed: $(cat "$E2E_DIR/err")"
"$SINKD_BINARY" prove --justification "$E2E_WHY" --state "$state" --entry 0 --checkpoint "$n4" --out "$E2E_DIR/bundle2" >/dev/null || fail "prove n4"
rc=0; "$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle2" --witness "$E2E_DIR/w1.vkey" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "no checkpoint.cosigned, but witnesses were given" "$E2E_DIR/err" || fail "bundle without cosignatures passed --witness: $(cat "$E2E_DIR/err")"

# A fork: another log under the same key and origin (what a dishonest operator would show
# someone else). The witness, having cosigned the real log up to n4 (the damaged reply above
# was still a cosignature on its side), refuses it.
fork="$E2E_DIR/fork"
mkdir -p "$fork" && cp -a "$state/keys" "$fork/"
fport=$(free_port)
start_server "$fork" "$fport" --workers 1 --checkpoint-ms 200 --heartbeat-interval 0
"$SINKD_BINARY" swarm --target "127.0.0.1:$fport" --bots 300 --duration 4 --concurrency 300 \
    --source-net 127.0.1.0/24 >/dev/null || fail "fork swarm"
stop_server
nf=$(sed -n 2p "$fork/log/checkpoint")
[ "$nf" -gt "$n4" ] || fail "the fork ($nf) is not longer than the witness's $n4"
rc=0; "$SINKD_BINARY" cosign --state "$fork" --witness-key "$E2E_DIR/w1.vkey" --witness-url "$w1" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "HTTP status 422 (consistency proof does not verify) submitting checkpoint $nf with old $n4" "$E2E_DIR/err" \
    || fail "the witness cosigned a fork: rc $rc $(cat "$E2E_DIR/err")"
echo "cosign: OK (checkpoints $n1 $n2 $n3 cosigned; fork refused)"
