#!/usr/bin/env bash
# timestamp_test.sh -- RFC 3161 timestamps end to end: a real server logging real bots, a
# time-stamping authority on loopback (OpenSSL's `openssl ts -reply` behind a small HTTP server),
# `sinkd timestamp` online while the server runs and offline after it stopped, `sinkd verify`,
# a timestamped evidence bundle, OpenSSL's own `ts -verify` on what sinkd stored, tampering,
# and a TSA that fails in every way the client must survive without storing anything.
source "$(dirname "$0")/lib.sh"
tsa="$E2E_DIR/tsa"
mkdir -p "$tsa"

# The TSA: a root CA and a timeStamping certificate it signed; another CA nobody trusts.
for ca in ca other-ca; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tsa/$ca.key" \
        -out "$tsa/$ca.pem" -days 30 -subj "/CN=e2e $ca" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign 2>/dev/null
done
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tsa/tsa.key" \
    -out "$tsa/tsa.csr" -subj "/CN=e2e TSA" 2>/dev/null
printf 'extendedKeyUsage=critical,timeStamping\n' >"$tsa/ext"
openssl x509 -req -in "$tsa/tsa.csr" -CA "$tsa/ca.pem" -CAkey "$tsa/ca.key" -CAcreateserial \
    -CAserial "$tsa/ca.srl" -days 30 -extfile "$tsa/ext" -out "$tsa/tsa.pem" 2>/dev/null
echo 01 >"$tsa/serial"
cat >"$tsa/tsa.cnf" <<CNF
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = $tsa/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.2
digests = sha256
accuracy = secs:1
ess_cert_id_alg = sha256
CNF
python3 "$SINKD_SOURCE_DIR/tests/e2e/tsa_server.py" "$E2E_DIR/tsa.port" "$tsa" &
E2E_PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$E2E_DIR/tsa.port" ] && break; sleep 0.05; done
tport=$(cat "$E2E_DIR/tsa.port") || fail "TSA did not start"
url="http://127.0.0.1:$tport"

state="$E2E_DIR/state"
log="$state/log"
port=$(free_port)
start_server "$state" "$port" --workers 1 --checkpoint-ms 200
swarm() {
    "$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 100 --duration 2 --concurrency 100 \
        --source-net 127.0.1.0/24 >/dev/null || fail "swarm exited non-zero"
}
swarm
sleep 0.5

# Online, while the server keeps logging.
"$SINKD_BINARY" timestamp --state "$state" --tsa-url "$url/tsa" --tsa-ca "$tsa/ca.pem" \
    >"$E2E_DIR/ts1.txt" || fail "timestamp --tsa-url failed"
n1=$(sed -n 's/^sinkd timestamp: checkpoint \([0-9]*\) timestamped .* by CN=e2e TSA .*signer chains to --tsa-ca$/\1/p' "$E2E_DIR/ts1.txt")
[ -n "$n1" ] || fail "unexpected output: $(cat "$E2E_DIR/ts1.txt")"
[ -f "$log/timestamps/$n1.tsr" ] && [ -f "$log/timestamps/$n1.tsq" ] || fail "no files for checkpoint $n1"
# Independent check: OpenSSL, against the exact checkpoint file.
openssl ts -verify -data "$log/checkpoints/$n1" -in "$log/timestamps/$n1.tsr" \
    -CAfile "$tsa/ca.pem" 2>/dev/null | grep -q 'Verification: OK' || fail "openssl ts -verify rejects the stored token"
openssl ts -verify -data "$log/checkpoints/$n1" -in "$log/timestamps/$n1.tsr" \
    -CAfile "$tsa/other-ca.pem" >/dev/null 2>&1 && fail "openssl accepted an untrusted CA (test is broken)"
swarm
stop_server

# The TSA failing: nothing is stored, the error names the cause, exit 1.
expect_error() { # WHAT PATTERN ARGS...
    local what=$1 pattern=$2
    shift 2
    local rc=0
    "$SINKD_BINARY" timestamp --state "$state" "$@" >/dev/null 2>"$E2E_DIR/err" || rc=$?
    [ "$rc" -ne 0 ] || fail "$what: accepted"
    grep -q -- "$pattern" "$E2E_DIR/err" || fail "$what: error '$(cat "$E2E_DIR/err")' lacks '$pattern'"
}
closed=$(free_port)
expect_error "closed port" "127.0.0.1:$closed" --tsa-url "http://127.0.0.1:$closed/" --timeout 5
expect_error "HTTP 500" "HTTP status 500" --tsa-url "$url/status500"
expect_error "huge reply" "longer than" --tsa-url "$url/huge"
expect_error "garbage reply" "not a DER TimeStampResp" --tsa-url "$url/garbage"
expect_error "replayed reply (another checkpoint's)" "imprint is not SHA-256 of this checkpoint" --tsa-url "$url/replay"
expect_error "untrusted CA" "does not chain" --tsa-url "$url/tsa" --tsa-ca "$tsa/other-ca.pem"
expect_error "not http" "Protocol" --tsa-url "file:///etc/passwd"
n2=$(sed -n 2p "$log/checkpoint")
[ "$n2" -gt "$n1" ] || fail "no newer checkpoint after the second swarm ($n2 <= $n1)"
[ ! -f "$log/timestamps/$n2.tsr" ] || fail "a failed attempt stored a reply"
rc=0; "$SINKD_BINARY" timestamp --state "$state" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "no mode: exit $rc, want 2"
rc=0; "$SINKD_BINARY" timestamp --state "$state" --tsa-url "$url/tsa" --reply x >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "two modes: exit $rc, want 2"

# Offline: request out, OpenSSL's TSA by hand, reply in; once only.
"$SINKD_BINARY" timestamp --state "$state" --request-out "$E2E_DIR/req.tsq" >/dev/null || fail "--request-out failed"
cmp -s "$E2E_DIR/req.tsq" "$log/timestamps/$n2.tsq" || fail "request not kept as timestamps/$n2.tsq"
openssl ts -reply -queryfile "$E2E_DIR/req.tsq" -inkey "$tsa/tsa.key" -signer "$tsa/tsa.pem" \
    -config "$tsa/tsa.cnf" -out "$E2E_DIR/resp.tsr" 2>/dev/null
"$SINKD_BINARY" timestamp --state "$state" --reply "$E2E_DIR/resp.tsr" --tsa-ca "$tsa/ca.pem" \
    | grep -q "checkpoint $n2 timestamped" || fail "--reply failed"
expect_error "second reply" "no request is waiting" --reply "$E2E_DIR/resp.tsr"
expect_error "same size again" "exists already" --reply "$E2E_DIR/resp.tsr" --size "$n2"
expect_error "timestamped twice" "timestamped already" --tsa-url "$url/tsa" --size "$n2"
# The latest already has a token (a timer's idle hour): nothing to do, success.
"$SINKD_BINARY" timestamp --state "$state" --tsa-url "$url/tsa" | grep -q "nothing to do.*($n2)" \
    || fail "an idle run did not succeed with 'nothing to do'"

# verify: both timestamps, with and without the CA; then tampering.
"$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --tsa-ca "$tsa/ca.pem" >"$E2E_DIR/verify.txt" \
    || fail "verify failed: $(cat "$E2E_DIR/verify.txt")"
grep -q ', 2 timestamps, 0 cosignatures checked$' "$E2E_DIR/verify.txt" || fail "verify: $(cat "$E2E_DIR/verify.txt")"
grep -q "timestamp: checkpoint $n1 existed by .* CN=e2e TSA .*signer chains to --tsa-ca" "$E2E_DIR/verify.txt" || fail "verify does not list checkpoint $n1"
"$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" | grep -q 'signer chain not checked' || fail "verify without CA"
rc=0; "$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --tsa-ca "$tsa/other-ca.pem" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "timestamps/$n1.tsr: reply: the signer does not chain" "$E2E_DIR/err" || fail "untrusted CA accepted by verify: $(cat "$E2E_DIR/err")"
cp -a "$log" "$E2E_DIR/log.bak"
size=$(stat -c %s "$log/timestamps/$n1.tsr")
for off in 60 $((size / 2)) $((size - 20)); do
    printf '\x5a' | dd of="$log/timestamps/$n1.tsr" bs=1 seek="$off" conv=notrunc 2>/dev/null
    rc=0; "$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" --tsa-ca "$tsa/ca.pem" >/dev/null 2>"$E2E_DIR/err" || rc=$?
    [ "$rc" -eq 1 ] && grep -q "timestamps/$n1.tsr" "$E2E_DIR/err" || fail "byte $off of the token changed: verify rc $rc: $(cat "$E2E_DIR/err")"
    cp "$E2E_DIR/log.bak/timestamps/$n1.tsr" "$log/timestamps/$n1.tsr"
done
cp "$log/timestamps/$n1.tsr" "$log/timestamps/$n2.tsr.swap"
mv "$log/timestamps/$n2.tsr" "$log/timestamps/$n1.tsr.other" && mv "$log/timestamps/$n2.tsr.swap" "$log/timestamps/$n2.tsr"
rc=0; "$SINKD_BINARY" verify "$log" --key "$state/keys/log.vkey" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "timestamps/$n2.tsr: reply: the token's imprint" "$E2E_DIR/err" || fail "a token moved to another checkpoint passed: $(cat "$E2E_DIR/err")"
rm -rf "$log" && mv "$E2E_DIR/log.bak" "$log"

# A bundle proved against the first timestamped checkpoint carries its token.
"$SINKD_BINARY" prove --justification "$E2E_WHY" --state "$state" --entry 0 --entry $((n1 - 1)) --checkpoint "$n1" --out "$E2E_DIR/bundle" >/dev/null \
    || fail "prove --checkpoint failed"
[ -f "$E2E_DIR/bundle/checkpoint.tsr" ] || fail "bundle has no checkpoint.tsr"
"$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" --tsa-ca "$tsa/ca.pem" >"$E2E_DIR/vb.txt" || fail "verify-bundle failed"
grep -q "tree of size $n1" "$E2E_DIR/vb.txt" && grep -q "timestamp: checkpoint $n1 existed by" "$E2E_DIR/vb.txt" || fail "verify-bundle: $(cat "$E2E_DIR/vb.txt")"
openssl ts -verify -data "$E2E_DIR/bundle/checkpoint" -in "$E2E_DIR/bundle/checkpoint.tsr" \
    -CAfile "$tsa/ca.pem" 2>/dev/null | grep -q 'Verification: OK' || fail "openssl rejects the bundle's token"
python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py" "$E2E_DIR/bundle" "$state/keys/log.vkey" >/dev/null || fail "the Python verifier rejects a timestamped bundle"
printf '\x00' | dd of="$E2E_DIR/bundle/checkpoint.tsr" bs=1 seek=100 conv=notrunc 2>/dev/null
rc=0; "$SINKD_BINARY" verify-bundle "$E2E_DIR/bundle" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q 'checkpoint.tsr' "$E2E_DIR/err" || fail "a damaged bundle token passed: $(cat "$E2E_DIR/err")"
rc=0; "$SINKD_BINARY" prove --justification "$E2E_WHY" --state "$state" --entry "$n1" --checkpoint "$n1" --out "$E2E_DIR/b2" >/dev/null 2>"$E2E_DIR/err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "not covered by that checkpoint" "$E2E_DIR/err" || fail "prove beyond the chosen checkpoint: $(cat "$E2E_DIR/err")"
echo "timestamp: OK (checkpoints $n1 and $n2 timestamped)"
