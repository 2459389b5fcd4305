#!/usr/bin/env bash
# check_gate_test.sh -- the gate itself: scripts/check.sh, run over a throwaway build tree whose
# tests pass, fail on purpose, skip, time out or crash, must exit non-zero and name each failure
# in its closing line; over one where everything passes it must exit 0.
set -uo pipefail
src=${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "check_gate_test: $*" >&2; exit 1; }

# A ctest tree needs no CMake run: a CTestTestfile.cmake is all ctest reads.
mkdir -p "$work/bad/release" "$work/good/release" "$work/bad/fuzz" "$work/good/fuzz"
cat >"$work/bad/release/CTestTestfile.cmake" <<'T'
add_test(gate_passes "true")
add_test(gate_fails_on_purpose "false")
add_test(gate_skips "sh" "-c" "exit 77")
set_tests_properties(gate_skips PROPERTIES SKIP_RETURN_CODE 77)
add_test(gate_times_out "sleep" "30")
set_tests_properties(gate_times_out PROPERTIES TIMEOUT 1)
add_test(gate_crashes "sh" "-c" "kill -SEGV $$")
T
cat >"$work/good/release/CTestTestfile.cmake" <<'T'
add_test(gate_passes "true")
add_test(gate_skips "sh" "-c" "exit 77")
set_tests_properties(gate_skips PROPERTIES SKIP_RETURN_CODE 77)
T
# A "fuzzer" is any executable *_fuzz; this one reports a crash the way libFuzzer does (exit 1).
printf '#!/bin/sh\nexit 1\n' >"$work/bad/fuzz/gate_broken_fuzz"
printf '#!/bin/sh\nexit 0\n' >"$work/good/fuzz/gate_quiet_fuzz"
chmod +x "$work"/*/fuzz/*_fuzz

run() { # tree -> output in $work/<tree>.out, status in $work/<tree>.status
    CHECK_BUILD_ROOT="$work/$1" CHECK_BUILDS=release FUZZ_SECONDS=1 \
        bash "$src/scripts/check.sh" >"$work/$1.out" 2>&1
    echo $? >"$work/$1.status"
}
run bad
run good

[ "$(cat "$work/bad.status")" -ne 0 ] || { cat "$work/bad.out"; fail "a failing tree passed the gate"; }
closing=$(tail -1 "$work/bad.out")
for name in release:gate_fails_on_purpose release:gate_times_out release:gate_crashes fuzz:gate_broken_fuzz; do
    case "$closing" in
    *"$name"*) ;;
    *) cat "$work/bad.out"; fail "closing line does not name $name: $closing" ;;
    esac
done
case "$closing" in
*"1 passed, 4 failed, 1 skipped"*) ;;
*) cat "$work/bad.out"; fail "wrong counts in: $closing" ;;
esac
case "$closing" in
*gate_passes* | *gate_skips*) fail "closing line names a test that did not fail: $closing" ;;
esac

[ "$(cat "$work/good.status")" -eq 0 ] || { cat "$work/good.out"; fail "a passing tree failed the gate"; }
[ "$(tail -1 "$work/good.out")" = "2 passed, 0 failed, 1 skipped" ] ||
    { cat "$work/good.out"; fail "unexpected closing line: $(tail -1 "$work/good.out")"; }

# ctest that finds no test at all is a failure, not "0 failed".
mkdir -p "$work/empty/release"
: >"$work/empty/release/CTestTestfile.cmake"
run empty
[ "$(cat "$work/empty.status")" -ne 0 ] || { cat "$work/empty.out"; fail "a tree without tests passed"; }
echo "check_gate_test: ok"
