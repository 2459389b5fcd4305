#!/usr/bin/env bash
# policy_check_test.sh -- `sinkd policy check`: valid policies are described in plain words (exit
# 0), invalid ones are refused naming file, line and key (exit 1), usage errors exit 2; checked
# against the server options serve will run with, a policy that server cannot evaluate or could
# enforce only with a guessed command id is refused with serve's own line (issue 19 #6, issue 18
# #4) and no promise is printed.
set -euo pipefail
src=${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sinkd=("${SINKD_BINARY:?SINKD_BINARY must point at the sinkd executable}")

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
has out "bots tagged hospital or emergency (in the tag table serve loads with --tags;"
has out "serve refuses this policy without one); bots calling from 198.51.100.0/24"
has out "from 2024-07-18 00:00:00 UTC until 2024-12-31 00:00:00 UTC"
has out "at most 20 commands per second across all workers"
has out "at most once per bot"
has out "Requisition no. 2024/123456"
has out "Parquet de Paris"
has out "dry-run: decisions are logged, nothing is sent"
has out "uninstall with command id 0xFD01 (the seized variant's self-delete"
has out "uninstall, no command id: dry runs record none"
has out "collect: asks the bot for its machine information"
has out "tag table:        not stated (give --tags FILE as serve will, or --no-tags)"
has out "in force:         policy $src/data/policy/example.ini sha256 "
has out "fr-2024 uninstall 0xFD01 dry-run (mode = dry-run); mt-2024 uninstall (no command id)"
sha=$(sha256sum "$src/data/policy/example.ini" | cut -d' ' -f1)
has out "SHA-256 $sha"

run 0 policy check "$src/data/policy/demo.ini"
has out "located in NG"
has out "located in IN"
has out "enforce: sends only if the server also runs with --enforce"
has out "ng-demo uninstall 0xFD01 dry-run (mode = enforce, serve without --enforce)"

# Against the server make demo runs: its tag files, then with --enforce.
demo_tags=(--tags "$src/data/tags/example-sectors.csv" --tags "$src/data/tags/demo-sectors.csv")
run 0 policy check "$src/data/policy/demo.ini" "${demo_tags[@]}"
has out "tag table:        2 files (--tags)"
has out "excluded tag:     'hospital' (ng-demo): 5 rules in the tag files"
run 0 policy check "$src/data/policy/demo.ini" "${demo_tags[@]}" --enforce
has out "ng-demo uninstall 0xFD01 ENFORCE (commands are sent); in-demo uninstall 0xFD01 ENFORCE"
run 0 policy check "$src/data/policy/demo-collect.ini" "${demo_tags[@]}" --enforce
has out "ng-collect-demo collect ENFORCE (commands are sent)"
# A tag no rule assigns is pointed out.
run 0 policy check "$src/data/policy/example.ini" --tags "$src/data/tags/example-sectors.csv"
has out "no rule in the tag files assigns 'emergency', so 'fr-2024' excludes no bot by it"

# Fail closed (issue 19 #6): exclude_tags with no tag table, scope with no tables: refused with
# serve's line, and no promise ("never sends to ...") is printed.
run 1 policy check "$src/data/policy/demo.ini" --no-tags
has err "sinkd policy check: refused for this server: $src/data/policy/demo.ini:18: authorisation 'ng-demo': exclude_tags cannot be evaluated: no tag table is loaded (serve --tags FILE); refused rather than exclude nothing"
[[ ! -s "$work/out" ]] || fail "a refused policy printed a description"
run 1 policy check "$src/data/policy/demo.ini" --no-enrich
has err "exclude_tags cannot be evaluated"
grep -v '^exclude_tags' "$src/data/policy/demo.ini" >"$work/notags.ini"
run 1 policy check "$work/notags.ini" --no-enrich
has err "notags.ini:17: authorisation 'ng-demo': countries cannot be evaluated: no country table"
run 0 policy check "$work/notags.ini" --no-tags
has out "tag table:        not needed"

# No default self-delete id (issue 18 #4): enforcing an uninstall authorisation that gives none
# needs --uninstall-command; an id public tables give another meaning is refused.
grep -v '^command_id' "$src/data/policy/demo.ini" >"$work/noid.ini"
run 0 policy check "$work/noid.ini" "${demo_tags[@]}"
has out "uninstall, NO command id: there is no default, so serve refuses to start"
has out "ng-demo uninstall (no command id) dry-run (mode = enforce, serve without --enforce)"
run 1 policy check "$work/noid.ini" "${demo_tags[@]}" --enforce
has err "noid.ini:22: authorisation 'ng-demo': mode = enforce under --enforce needs the seized variant's self-delete id: give command_id here or serve --uninstall-command ID"
[[ ! -s "$work/out" ]] || fail "a refused policy printed a description"
run 0 policy check "$work/noid.ini" "${demo_tags[@]}" --enforce --uninstall-command 0xFD02
has out "uninstall with command id 0xFD02 (no command_id here: the server's"
has out "ng-demo uninstall 0xFD02 (--uninstall-command) ENFORCE (commands are sent)"
run 1 policy check "$work/noid.ini" "${demo_tags[@]}" --enforce --uninstall-command 0x1005
has err "--uninstall-command 0x1005 is 'install new copy / restart self' in public PlugX command tables"
sed 's/^command_id = 0xFD01/command_id = 0x1005/' "$src/data/policy/demo.ini" >"$work/restart.ini"
run 1 policy check "$work/restart.ini"
has err "restart.ini:23: authorisation 'ng-demo': command_id 0x1005 is 'install new copy / restart self'"
sed 's/^command = uninstall/command = collect/' "$src/data/policy/demo.ini" >"$work/collectid.ini"
run 1 policy check "$work/collectid.ini"
has err "collectid.ini:23: authorisation 'ng-demo': 'command_id' is for command = uninstall only"
# A tag file serve would refuse is refused here, naming file and line.
printf '10.0.0.0/8,hospital\n10.0.0.0/33,school\n' >"$work/bad-tags.csv"
run 1 policy check "$src/data/policy/demo.ini" --tags "$work/bad-tags.csv"
has err "bad-tags.csv:2"

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
run 2 policy check --tags x.csv --no-tags "$src/data/policy/demo.ini"
has err "--tags contradicts --no-tags"
run 2 policy check --uninstall-command 0 "$src/data/policy/demo.ini"
run 2 policy check --uninstall-command 0x10000 "$src/data/policy/demo.ini"
run 2 policy check --enf "$src/data/policy/demo.ini"
has err "'--enf'"
run 0 policy --help
has out "usage: sinkd policy check FILE [--tags FILE]..."
run 0 policy check --help
echo "policy check: ok"
