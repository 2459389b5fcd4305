#!/usr/bin/env bash
# policy_check_test.sh -- `sinkd policy check`: valid policies are described in plain words (exit
# 0), invalid ones are refused naming file, line and key (exit 1), usage errors exit 2.
set -euo pipefail
src=${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The real binary when its dispatch knows `policy`; otherwise a driver around the same
# cmd_policy() (so this test does not wait for the rest of the executable).
if [[ -n "${SINKD_BINARY:-}" && -x "${SINKD_BINARY}" ]] && "$SINKD_BINARY" policy --help >/dev/null 2>&1; then
    sinkd=("$SINKD_BINARY")
else
    printf '#include "cli/commands.h"\nint main(int argc, char **argv) { return argc > 1 ? cmd_policy(argc - 1, argv + 1) : 2; }\n' >"$work/main.c"
    # shellcheck disable=SC2046
    ${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I "$src/src" -o "$work/sinkd" \
        "$work/main.c" "$src/src/cli/cmd_policy.c" "$src"/src/policy/*.c "$src"/src/util/*.c \
        $(pkg-config --cflags --libs inih libcrypto) -lpthread -lm
    sinkd=("$work/sinkd")
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
run() { # expected-exit args...
    local want=$1; shift
    set +e
    "${sinkd[@]}" "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    set -e
    [[ $rc == "$want" ]] || { cat "$work/out" "$work/err" >&2; fail "'$*' exited $rc, expected $want"; }
}
has() { grep -qF -- "$2" "$work/$1" || { cat "$work/$1" >&2; fail "$1 lacks '$2'"; }; }

run 0 policy check "$src/data/policy/example.ini"
has out "valid."
has out "located in FR"
has out "AND in network AS3215, AS12322"
has out "bots tagged hospital or emergency; bots calling from 198.51.100.0/24"
has out "from 2024-07-18 00:00:00 UTC until 2024-12-31 00:00:00 UTC"
has out "at most 20 commands per second across all workers"
has out "at most once per bot"
has out "Requisition no. 2024/123456"
has out "Parquet de Paris"
has out "dry-run: decisions are logged, nothing is sent"
sha=$(sha256sum "$src/data/policy/example.ini" | cut -d' ' -f1)
has out "SHA-256 $sha"

run 0 policy check "$src/data/policy/demo.ini"
has out "located in NG"
has out "located in IN"
has out "enforce: sends only if the server also runs with --enforce"

# The commented example in docs/policy.md is a valid policy too.
awk '/^```ini/{f=1;next}/^```/{f=0}f' "$src/docs/policy.md" >"$work/doc.ini"
run 0 policy check "$work/doc.ini"
has out "located in FR, GP, MQ, RE, YT"

# Invalid: a bad country on line 23 of a copy of the example.
sed '23s/countries = FR/countries = FR, XX/' "$src/data/policy/example.ini" >"$work/bad.ini"
run 1 policy check "$work/bad.ini"
has err "$work/bad.ini:23: authorisation 'fr-2024': unknown country code 'XX' in 'countries'"
[[ ! -s "$work/out" ]] || fail "an invalid policy printed a description"
# A misspelt key.
sed 's/^not_after = 2024/not_afer = 2024/' "$src/data/policy/example.ini" >"$work/bad2.ini"
run 1 policy check "$work/bad2.ini"
has err "bad2.ini:31: authorisation 'fr-2024': unknown key 'not_afer'"
run 1 policy check "$work/missing.ini"
has err "missing.ini"

run 2 policy
run 2 policy frobnicate
run 2 policy check
run 2 policy check --verbose "$src/data/policy/demo.ini"
run 2 policy check a.ini b.ini
run 0 policy --help
has out "usage: sinkd policy check FILE"
run 0 policy check --help
echo "policy check: ok"
