#!/bin/bash
# evidence_verifiers_test.sh -- a log and a bundle written by sinkd pass the independent Go and
# Python verifiers (and sinkd's own), and tampered copies fail all of them.
source "$SINKD_SOURCE_DIR/tests/e2e/evidence_lib.sh"
st="$work/state"
"$tool" gen "$st" sinkd.example/e2e 70000 60 997 9000 >/dev/null
"${sinkd[@]}" verify "$st/log" --key "$st/keys/log.vkey"
"$gocheck" log "$st/log" "$st/keys/log.vkey"
"${sinkd[@]}" prove --justification "$E2E_WHY" --state "$st" --entry 0 --entry 255 --entry 256 --entry 65535 --entry 65536 --entry 69999 --out "$work/bundle" >/dev/null
"${sinkd[@]}" verify-bundle "$work/bundle"
"$gocheck" bundle "$work/bundle" "$st/keys/log.vkey"
"${pycheck[@]}" "$work/bundle" "$st/keys/log.vkey"
"${sinkd[@]}" verify-bundle "$work/bundle" --key "$st/keys/log.vkey" | grep -q "signed by sinkd.example/e2e+" ||
    { echo "FAIL: verify-bundle --key does not name the key it trusted" >&2; exit 1; }
"${sinkd[@]}" verify-bundle "$work/bundle" | grep -q "OK ONLY AGAINST THE BUNDLE'S OWN KEY" ||
    { echo "FAIL: verify-bundle without --key does not say it trusted the bundle's own key" >&2; exit 1; }

expect_fail() { # what, command...
    local what=$1
    shift
    if "$@" >/dev/null 2>"$work/err"; then
        echo "FAIL: $what was accepted by: $*" >&2
        exit 1
    fi
}
copy() { rm -rf "$work/t" && cp -a "$1" "$work/t"; }

# Log tampering: Go verifier and sinkd verify.
copy "$st/log"; printf '\xff' | dd of="$work/t/tile/entries/100" bs=1 seek=77 conv=notrunc 2>/dev/null
expect_fail "flipped entry byte" "$gocheck" log "$work/t" "$st/keys/log.vkey"
expect_fail "flipped entry byte" "${sinkd[@]}" verify "$work/t" --key "$st/keys/log.vkey"
grep -q 'entry 25601 (tile/entries/100 byte 62)' "$work/err" || { echo "FAIL: error does not name entry 25601:" >&2; cat "$work/err" >&2; exit 1; }
copy "$st/log"; printf '\x00' | dd of="$work/t/tile/1/000" bs=1 seek=4100 conv=notrunc 2>/dev/null
expect_fail "level-1 tile byte" "$gocheck" log "$work/t" "$st/keys/log.vkey"
expect_fail "level-1 tile byte" "${sinkd[@]}" verify "$work/t" --key "$st/keys/log.vkey"
copy "$st/log"; rm "$work/t/tile/0/050"
expect_fail "deleted tile" "$gocheck" log "$work/t" "$st/keys/log.vkey"
expect_fail "deleted tile" "${sinkd[@]}" verify "$work/t" --key "$st/keys/log.vkey"
copy "$st/log"; sed -i '2s/.*/69999/' "$work/t/checkpoint"
expect_fail "edited checkpoint" "$gocheck" log "$work/t" "$st/keys/log.vkey"
expect_fail "edited checkpoint" "${sinkd[@]}" verify "$work/t" --key "$st/keys/log.vkey"
"$tool" keygen --name sinkd.example/e2e --out "$work/otherkey" >/dev/null
expect_fail "wrong key" "$gocheck" log "$st/log" "$work/otherkey/log.vkey"
expect_fail "wrong key" "${sinkd[@]}" verify "$st/log" --key "$work/otherkey/log.vkey"

# Bundle tampering: all three verifiers.
bundle_fail() {
    expect_fail "$1" "$gocheck" bundle "$work/t" "$st/keys/log.vkey"
    expect_fail "$1" "${pycheck[@]}" "$work/t" "$st/keys/log.vkey"
    expect_fail "$1" "${sinkd[@]}" verify-bundle "$work/t"
    expect_fail "$1" "${sinkd[@]}" verify-bundle "$work/t" --key "$st/keys/log.vkey"
}
copy "$work/bundle"; printf 'x' >> "$work/t/entries/256.bin"; bundle_fail "entry with an extra byte"
copy "$work/bundle"; sed -i '0,/"[0-9a-f]\{64\}"/s/"\([0-9a-f]\)/"f\1/; 0,/"f[0-9a-f]\{64\}"/s/"f\([0-9a-f]\{63\}\)[0-9a-f]"/"\1"/' "$work/t/bundle.json"
cmp -s "$work/t/bundle.json" "$work/bundle/bundle.json" && { echo "FAIL: sed did not change bundle.json" >&2; exit 1; }
bundle_fail "altered proof hash"
copy "$work/bundle"; sed -i 's/"index": 255/"index": 254/' "$work/t/bundle.json"; bundle_fail "changed index"
copy "$work/bundle"; sed -i '2s/.*/69998/' "$work/t/checkpoint"; bundle_fail "edited checkpoint"
copy "$work/bundle"; cp "$work/otherkey/log.vkey" "$work/t/log.vkey"; bundle_fail "substituted key"
copy "$work/bundle"; cp "$work/t/entries/0.bin" "$work/t/entries/69999.bin"; bundle_fail "swapped entry"
# A forged bundle: the checkpoint signed again with another key of the same name, and that key
# put in as the bundle's log.vkey. It checks against itself; only a trusted key tells.
copy "$work/bundle"
python3 - "$work/t/checkpoint" "$work/otherkey/log.key" <<'PY'
import base64, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
note = open(sys.argv[1], "rb").read()
text = note[: note.rfind(b"\n\n") + 1]
_, _, name, keyid, key = open(sys.argv[2]).read().strip().split("+", 4)
seed = base64.b64decode(key)[1:]
sig = Ed25519PrivateKey.from_private_bytes(seed).sign(text)
line = "\u2014 %s %s\n" % (name, base64.b64encode(bytes.fromhex(keyid) + sig).decode())
open(sys.argv[1], "wb").write(text + b"\n" + line.encode())
PY
cp "$work/otherkey/log.vkey" "$work/t/log.vkey"
"${sinkd[@]}" verify-bundle "$work/t" >"$work/forged.txt" ||
    { echo "FAIL: the forged bundle should check against its own key" >&2; exit 1; }
grep -q "OK ONLY AGAINST THE BUNDLE'S OWN KEY" "$work/forged.txt" ||
    { echo "FAIL: verify-bundle did not say it trusted the forged bundle's own key: $(cat "$work/forged.txt")" >&2; exit 1; }
expect_fail "forged bundle" "${sinkd[@]}" verify-bundle "$work/t" --key "$st/keys/log.vkey"
expect_fail "forged bundle" "$gocheck" bundle "$work/t" "$st/keys/log.vkey"
expect_fail "forged bundle" "${pycheck[@]}" "$work/t" "$st/keys/log.vkey"
expect_fail "no trusted key" "${pycheck[@]}" "$work/bundle"
echo "evidence_verifiers: OK"
