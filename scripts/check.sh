#!/usr/bin/env bash
# check.sh -- run every test: unit + e2e (Release), the same under ASan+UBSan (Debug), each fuzzer briefly.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
fuzz_seconds=${FUZZ_SECONDS:-30}
passed=0
failed=0
failures=()
skipped=()

record() { # name status
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$1")
    fi
}

for build in release debug; do
    echo "== ctest ($build)"
    log="build/$build/ctest.log"
    (cd "build/$build" && ctest --output-on-failure --timeout 600) >"$log" 2>&1
    grep -E "^ *[0-9]+/[0-9]+ Test" "$log"
    while read -r name; do record "$build:$name" 0; done < <(grep -E "Test +#[0-9]+: .* Passed" "$log" | sed -E 's/.*: ([^ ]+) \.+.*/\1/')
    # A test that cannot run here (no mount rights, not root) exits 77: counted apart, by name.
    while read -r name; do skipped+=("$build:$name"); done < <(grep -E "Test +#[0-9]+: .*\*\*\*Skipped" "$log" | sed -E 's/.*: ([^ ]+) \.+.*/\1/')
    while read -r name; do record "$build:$name" 1; done < <(grep -E "Test +#[0-9]+: .* (\*\*\*|Failed|Timeout|Exception)" "$log" | grep -v "\*\*\*Skipped" | sed -E 's/.*: ([^ ]+) \.+.*/\1/')
    if grep -q "Errors while running CTest\|No tests were found" "$log"; then
        grep -A40 "The following tests FAILED" "$log" || tail -40 "$log"
    fi
done

echo "== fuzz (${fuzz_seconds}s each)"
for fuzzer in build/fuzz/*_fuzz; do
    [ -x "$fuzzer" ] || continue
    name=$(basename "$fuzzer")
    corpus="build/fuzz/corpus/$name"
    mkdir -p "$corpus"
    seeds=()
    [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
    out="build/fuzz/$name.log"
    if "$fuzzer" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="build/fuzz/$name-" "$corpus" "${seeds[@]}" >"$out" 2>&1; then
        execs=$(grep -Eo "stat::number_of_executed_units: *[0-9]+" "$out" | grep -Eo "[0-9]+$" || true)
        [ -n "$execs" ] || execs=$(grep -Eo "#[0-9]+" "$out" | tail -1 | tr -d '#')
        echo "fuzz $name: ok, $execs executions in ${fuzz_seconds}s"
        record "fuzz:$name" 0
    else
        echo "fuzz $name: FAILED"
        tail -30 "$out"
        record "fuzz:$name" 1
    fi
done

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
[ ${#skipped[@]} -eq 0 ] || echo "skipped (cannot run here): ${skipped[*]}"
echo "$passed passed, $failed failed, ${#skipped[@]} skipped"
[ "$failed" -eq 0 ]
