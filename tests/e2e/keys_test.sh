#!/usr/bin/env bash
# keys_test.sh -- issue 19 item 9, the signing key as an operator meets it: `keygen` before the
# first serve and serve takes the log's origin from that key; a missing private key is named
# plainly; nothing (serve or keygen) makes a new key pair beside an existing public key or for a
# log already signed.
source "$(dirname "$0")/lib.sh"

state="$E2E_DIR/state"
origin="sinkhole.example.org/node7"
"$SINKD_BINARY" keygen --name "$origin" --out "$state/keys" >"$E2E_DIR/keygen.txt" || fail "keygen failed"
vkey_sum=$(sha256sum <"$state/keys/log.vkey")

# serve without --origin: the key's name, not sinkd.local/HOST.
port=$(free_port)
start_server "$state" "$port"
"$SINKD_BINARY" swarm --target "127.0.0.1:$port" --bots 5 --duration 1 --source-net 127.0.1.0/24 \
    >/dev/null 2>&1 || fail "swarm failed"
stop_server
[ "$(head -1 "$state/log/checkpoint")" = "$origin" ] ||
    fail "checkpoint origin is '$(head -1 "$state/log/checkpoint")', not the key's '$origin'"
"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >/dev/null || fail "log does not verify with the keygen key"

# --origin that disagrees with the key: refused, naming both.
status=0
"$SINKD_BINARY" serve --allow-root --state "$state" --listen "127.0.0.1:$port" --origin other.example/x \
    2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && grep -q "other.example/x" "$E2E_DIR/err" && grep -q "$origin" "$E2E_DIR/err" ||
    fail "a mismatched --origin: exit $status: $(cat "$E2E_DIR/err")"

# The private key moved away (offline storage), the public key left: serve says so plainly and
# makes no new key.
mv "$state/keys/log.key" "$E2E_DIR/log.key.offline"
status=0
"$SINKD_BINARY" serve --allow-root --state "$state" --listen "127.0.0.1:$port" 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] || fail "serve without its private key: exit $status"
[ "$(wc -l <"$E2E_DIR/err")" -eq 1 ] || fail "not one line: $(cat "$E2E_DIR/err")"
grep -q "private key is missing" "$E2E_DIR/err" || fail "unclear: $(cat "$E2E_DIR/err")"
grep -q "File exists" "$E2E_DIR/err" && fail "the old misleading error: $(cat "$E2E_DIR/err")"
[ ! -e "$state/keys/log.key" ] || fail "serve made a new private key beside the public key"
[ "$(sha256sum <"$state/keys/log.vkey")" = "$vkey_sum" ] || fail "the public key changed"

# keygen into that directory: refused, nothing written.
status=0
"$SINKD_BINARY" keygen --name "$origin" --out "$state/keys" 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && grep -q "public key (log.vkey) without its private key" "$E2E_DIR/err" ||
    fail "keygen beside a public key: exit $status: $(cat "$E2E_DIR/err")"
[ ! -e "$state/keys/log.key" ] || fail "keygen made a private key beside the public key"
[ "$(sha256sum <"$state/keys/log.vkey")" = "$vkey_sum" ] || fail "keygen changed the public key"

# Both key files gone but the log signed: serve still refuses.
mv "$state/keys/log.vkey" "$E2E_DIR/log.vkey.moved"
status=0
"$SINKD_BINARY" serve --allow-root --state "$state" --listen "127.0.0.1:$port" 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && grep -q "holds checkpoints it signed" "$E2E_DIR/err" ||
    fail "serve on a signed log with no key: exit $status: $(cat "$E2E_DIR/err")"
[ -z "$(ls -A "$state/keys" | grep -vx epochs)" ] || fail "serve made a key for a signed log: $(ls "$state/keys")"

# keygen over an existing pair: refused, the pair unchanged.
mv "$E2E_DIR/log.key.offline" "$state/keys/log.key"
mv "$E2E_DIR/log.vkey.moved" "$state/keys/log.vkey"
status=0
"$SINKD_BINARY" keygen --name "$origin" --out "$state/keys" 2>"$E2E_DIR/err" || status=$?
[ "$status" -eq 1 ] && grep -q "signing key" "$E2E_DIR/err" || fail "keygen over a pair: exit $status"
[ "$(sha256sum <"$state/keys/log.vkey")" = "$vkey_sum" ] || fail "keygen changed the public key"

# The key back: serve resumes the same log under the same origin.
start_server "$state" "$port"
stop_server
"$SINKD_BINARY" verify "$state/log" --key "$state/keys/log.vkey" >/dev/null || fail "log does not verify after the key came back"
echo "keys: OK"
