#!/usr/bin/env bash
# check.sh -- run every test: unit + e2e (Release), the same under ASan+UBSan (Debug), each fuzzer
# briefly. Pass or fail comes from each tool's exit status (ctest's, a fuzzer's) and, for naming
# the tests, from ctest's JUnit file; no verdict is read out of a tool's printed text.
#
# The directories are parameters so that tests/e2e/check_gate_test.sh can run this very script
# over a build tree holding a test that fails on purpose and see it fail:
#   CHECK_BUILD_ROOT (default build), CHECK_BUILDS (default "release debug"),
#   CHECK_FUZZ_DIR (default $CHECK_BUILD_ROOT/fuzz), FUZZ_SECONDS (default 30).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build_root=${CHECK_BUILD_ROOT:-build}
builds=${CHECK_BUILDS:-release debug}
fuzz_dir=${CHECK_FUZZ_DIR:-$build_root/fuzz}
fuzz_seconds=${FUZZ_SECONDS:-30}
passed=0
failures=()
skipped=()

record() { # name status(0 pass, 1 fail, 77 skipped)
    case "$2" in
    0) passed=$((passed + 1)) ;;
    77) skipped+=("$1") ;;
    *) failures+=("$1") ;;
    esac
}

for build in $builds; do
    dir="$build_root/$build"
    echo "== ctest ($build)"
    if [ ! -d "$dir" ]; then
        record "$build:ctest(no build directory $dir)" 1
        continue
    fi
    junit="$(cd "$dir" && pwd)/ctest-junit.xml"
    rm -f "$junit"
    (cd "$dir" && ctest --output-on-failure --timeout 600 --output-junit "$junit") >"$dir/ctest.log" 2>&1
    status=$?
    # Each test's outcome as ctest wrote it into its JUnit file: "<status> <name>" per line.
    named_failure=0
    counted=0
    if [ -s "$junit" ]; then
        if ! outcomes=$(python3 "$here/scripts/junit_outcomes.py" "$junit"); then
            record "$build:ctest(unreadable JUnit file)" 1
            outcomes=""
        fi
        while read -r outcome name; do
            [ -n "$name" ] || continue
            counted=$((counted + 1))
            case "$outcome" in
            pass) record "$build:$name" 0 ;;
            skip) record "$build:$name" 77 ;;
            *) record "$build:$name" 1; named_failure=1 ;;
            esac
            echo "  $outcome $name"
        done <<<"$outcomes"
    fi
    if [ "$status" -ne 0 ]; then
        grep -A40 "The following tests FAILED" "$dir/ctest.log" || tail -40 "$dir/ctest.log"
        # ctest failed but named no failing test (no tests found, a crash of ctest itself, an
        # unreadable JUnit file): the run still fails, under ctest's own name.
        [ "$named_failure" -eq 1 ] || record "$build:ctest(exit $status)" 1
    elif [ "$counted" -eq 0 ]; then
        record "$build:ctest(no test in its JUnit output)" 1
    fi
done

if [ -n "$fuzz_dir" ] && [ -d "$fuzz_dir" ]; then
    echo "== fuzz (${fuzz_seconds}s each)"
    for fuzzer in "$fuzz_dir"/*_fuzz; do
        [ -x "$fuzzer" ] || continue
        name=$(basename "$fuzzer")
        corpus="$fuzz_dir/corpus/$name"
        mkdir -p "$corpus"
        seeds=()
        [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
        out="$fuzz_dir/$name.log"
        if "$fuzzer" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 \
            -print_final_stats=1 -artifact_prefix="$fuzz_dir/$name-" "$corpus" "${seeds[@]}" \
            >"$out" 2>&1; then
            echo "  pass fuzz:$name"
            record "fuzz:$name" 0
        else
            echo "  FAIL fuzz:$name (exit $?)"
            tail -30 "$out"
            record "fuzz:$name" 1
        fi
    done
fi

[ ${#skipped[@]} -eq 0 ] || echo "skipped (cannot run here): ${skipped[*]}"
line="$passed passed, ${#failures[@]} failed, ${#skipped[@]} skipped"
if [ ${#failures[@]} -gt 0 ]; then
    echo "$line: FAILED ${failures[*]}"
    exit 1
fi
echo "$line"
