#!/usr/bin/env bash
# registry.sh -- registry figures: (a) follower batch size, lag and rate while records stream into
# the evidence log; (b) bulk apply of BOTS bots / CONTACTS contacts through registry_apply, then
# the per-country GROUP BY through sinkd vs the sqlite3 CLI on the same database (ratio, goal
# <= 1.0x) and peak memory. Usage: bench/registry.sh [STREAM_N] [BOTS] [CONTACTS]
# Full size: bench/registry.sh 1000000 3000000 10000000 (about 2 GB of disk under
# $REGISTRY_BENCH_DIR or $TMPDIR). REGISTRY_BENCH_BATCH sets records per transaction (20000),
# REGISTRY_BENCH_CACHE_MIB sinkd's SQLite page cache (default 2, as `serve`).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
stream_n=${1:-200000}
bots=${2:-300000}
contacts=${3:-1000000}
out=$(mktemp -d "${REGISTRY_BENCH_DIR:-${TMPDIR:-/tmp}}/registry-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT

bash "$src/bench/registry_bench_build.sh" "$out/registry_bench"

echo "# $(uname -m), $(nproc) cores, page cache ${REGISTRY_BENCH_CACHE_MIB:-2} MiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), sqlite $(sqlite3 --version | cut -d' ' -f1)"
echo "## (a) follower while the log grows"
mkdir "$out/state"
"$out/registry_bench" stream "$out/state" "$stream_n" $((stream_n / 3))

echo "## (b) $bots bots, $contacts contacts"
db="$out/registry.db"
/usr/bin/time -v "$out/registry_bench" bulk "$db" "$bots" "$contacts" 2>"$out/bulk.time"
grep -E "^bulk:" "$out/bulk.time" || true
grep -E "Maximum resident" "$out/bulk.time" | sed 's/^\s*/bulk apply peak memory: /'

echo "database: $(du -m "$db" | cut -f1) MiB"
sql="SELECT cc, count(*) AS n FROM bot WHERE 1 GROUP BY cc ORDER BY n DESC, cc;"
best() { # best of 3 wall times in ms of "$@"
    local b=999999999 s e
    for _ in 1 2 3; do
        s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
        (( (e - s) / 1000000 < b )) && b=$(( (e - s) / 1000000 ))
    done
    echo "$b"
}
ours=$(best "$out/registry_bench" summary "$db" cc)
cli=$(best sqlite3 "$db" "$sql")
full=$(best "$out/registry_bench" summary "$db" full)
# In-process: the query alone, best of 5 warm runs each: sinkd's registry_group_bots() vs the
# CLI's own `.timer on` figure for the same statement on the same file.
q_ours=$(for _ in 1 2 3 4 5; do "$out/registry_bench" summary "$db" cc 2>/dev/null; done |
    awk '{print $(NF-1)}' | sort -g | head -1)
q_cli=$(for _ in 1 2 3 4 5; do printf '.timer on\n%s\n' "$sql" | sqlite3 "$db" | awk '/^Run Time/ {print $4 * 1000}'; done |
    sort -g | head -1)
echo "query plans: sinkd $(sqlite3 "$db" "EXPLAIN QUERY PLAN $sql" | tr '\n' ' ')"
echo "per-country GROUP BY, query only (in-process, best of 5): sinkd ${q_ours} ms, sqlite3 CLI ${q_cli} ms, ratio $(awk "BEGIN{printf \"%.2f\", $q_ours/($q_cli>0?$q_cli:1)}")x"
echo "per-country GROUP BY, whole process (open+query+close, best of 3): sinkd ${ours} ms, sqlite3 CLI ${cli} ms, ratio $(awk "BEGIN{printf \"%.2f\", $ours/($cli>0?$cli:1)}")x"
echo "full summary report (totals, days, top cc/asn, sectors): ${full} ms"
/usr/bin/time -v "$out/registry_bench" summary "$db" full 2>&1 >/dev/null | grep -E "Maximum resident" | sed 's/^\s*/summary peak memory: /'
/usr/bin/time -v "$out/registry_bench" summary "$db" cc 2>&1 >/dev/null | grep -E "Maximum resident" | sed 's/^\s*/per-country query peak memory: /'
/usr/bin/time -v sqlite3 "$db" "$sql" 2>&1 >/dev/null | grep -E "Maximum resident" | sed 's/^\s*/sqlite3 CLI peak memory: /'
