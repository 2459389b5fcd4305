#!/usr/bin/env bash
# cli_abbrev_test.sh -- no long option may be abbreviated, in any subcommand (issue 19 #7):
# getopt_long would take "--enf" for "--enforce" and "--pol" for "--policy". Each abbreviation
# must be a usage error (exit 2) whose message names it; the full names keep working.
set -euo pipefail
: "${SINKD_BINARY:?SINKD_BINARY must point at the sinkd executable}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# refused OPTION ARGS...: `sinkd ARGS...` exits 2 and its stderr names OPTION.
refused() {
    local opt=$1; shift
    set +e
    timeout 20 "$SINKD_BINARY" "$@" </dev/null >"$work/out" 2>"$work/err"
    local rc=$?
    set -e
    [[ $rc == 2 ]] || { cat "$work/out" "$work/err" >&2; fail "'sinkd $*' exited $rc, expected 2"; }
    grep -qF -- "'$opt" "$work/err" || { cat "$work/err" >&2; fail "'sinkd $*': stderr does not name '$opt'"; }
}
accepted() { # ARGS...: exits 0
    timeout 20 "$SINKD_BINARY" "$@" </dev/null >"$work/out" 2>"$work/err" ||
        { cat "$work/err" >&2; fail "'sinkd $*' exited $?, expected 0"; }
}

# serve: the two that motivated the rule, a value given apart and with '=', and a no-value one.
refused --enf serve --enf
refused --enf serve --state "$work/s" --listen 127.0.0.1:1 --enf
refused --pol serve --pol "$work/p.ini"
refused --pol=x serve --pol=x
refused --uninstall serve --uninstall 0x1234
refused --hel serve --hel
refused --allow serve --allow
# every other subcommand that parses long options
refused --st contacts --st "$work/s"
refused --summ contacts --summary --summ
refused --witness-u cosign --witness-u http://127.0.0.1:1/
refused --req raw check --req
refused --sta registry rebuild --sta "$work/s"
refused --cache registry follow --state "$work/s" --cache 8
refused --remed report --remed
refused --sta report --sta "$work/s"
refused --tsa-u timestamp --tsa-u http://127.0.0.1:1/
refused --pol policy check --pol "$work/p.ini"
refused --targ swarm --targ 127.0.0.1:1
refused --ke verify --ke "$work/k" "$work/s"
refused --bo prove --bo 0
refused --nam keygen --nam x

# The full names are still options.
accepted serve --help
accepted contacts --help
accepted cosign --help
accepted raw check --help
accepted registry rebuild --help
accepted report --help
accepted timestamp --help
accepted policy check --help
echo "cli abbreviations: ok"
