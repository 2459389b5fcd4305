#!/usr/bin/env bash
# registry_pg.sh -- the registry's PostgreSQL backend against SQLite, measured in the same run on
# the same box: (a) bulk apply of BOTS bots / CONTACTS contacts through registry_apply, the same
# records into an SQLite file and into a throwaway PostgreSQL server (tests/pg/with_postgres.sh
# with SINKD_PG_DURABLE=1: fsync, synchronous_commit and full_page_writes on, as deployed), and the
# ratio of the rates PostgreSQL/SQLite (below 1.0x: applying into PostgreSQL is that much slower);
# (b) on the PostgreSQL database, the per-country GROUP BY through sinkd vs psql running the same
# SQL (query time only, each in a fresh connection, best of 5; ratio sinkd/psql, goal <= 1.0x:
# sinkd's driver adds nothing to the server's own cost), and the full summary report's time.
# Usage: bench/registry_pg.sh [BOTS] [CONTACTS]   (defaults 100000 300000)
# The server listens on a Unix socket in its own /tmp dir only (no TCP). The binary and the SQLite
# file go under $REGISTRY_BENCH_DIR or $TMPDIR; REGISTRY_BENCH_BATCH sets records per transaction
# (20000) for both; REGISTRY_BENCH_TIMEOUT bounds each phase, in seconds (3600).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
me=bench/registry_pg.sh
limit=${REGISTRY_BENCH_TIMEOUT:-3600}

# The smallest of five figures on stdin, one a line; fails unless there are five.
min5() {
    awk 'NF { n++; if (n == 1 || $1 + 0 < m + 0) m = $1 } END { if (n != 5) exit 1; print m }'
}

rate() { # the records/s figure of a "bulk apply: ..." line
    sed -n 's/^bulk apply: .* \([0-9.]*\) records\/s .*/\1/p' <<<"$1"
}

# ---- Phase 2, under tests/pg/with_postgres.sh: SINKD_PG_URL, SINKD_PG_BIN are set. -------------
if [ "${1:-}" = --pg-phase ]; then
    : "${SINKD_PG_URL:?--pg-phase is run by $me itself, under tests/pg/with_postgres.sh}"
    bin=$2 bots=$3 contacts=$4 sqlite_line=$5
    psql=("$SINKD_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$SINKD_PG_URL")
    export PGCONNECT_TIMEOUT=10
    echo "# PostgreSQL server: $("${psql[@]}" -At -c 'SHOW server_version')," \
        "fsync=$("${psql[@]}" -At -c 'SHOW fsync')" \
        "synchronous_commit=$("${psql[@]}" -At -c 'SHOW synchronous_commit')" \
        "full_page_writes=$("${psql[@]}" -At -c 'SHOW full_page_writes')," \
        "shared_buffers=$("${psql[@]}" -At -c 'SHOW shared_buffers')"

    pg_line=$("$bin" bulk "$SINKD_PG_URL" "$bots" "$contacts")
    echo "PostgreSQL $pg_line"
    sqlite_rate=$(rate "$sqlite_line")
    pg_rate=$(rate "$pg_line")
    echo "bulk apply PostgreSQL/SQLite: $(awk -v p="$pg_rate" -v s="$sqlite_rate" \
        'BEGIN { printf "%.2f", p / (s > 0 ? s : 1) }')x (records/s)"
    echo "PostgreSQL database: $("${psql[@]}" -At -c \
        "SELECT pg_database_size(current_database()) / 1048576") MiB"

    # The rows as a steady-state database has them (autovacuum would get there on its own, in the
    # middle of the timings): visibility map set, statistics current.
    "${psql[@]}" -c 'VACUUM (ANALYZE) bot'
    sql="SELECT cc, count(*) AS n FROM bot WHERE 1 = 1 GROUP BY cc ORDER BY n DESC, cc"
    errf=$(dirname "$bin")/summary.err # registry_bench's stderr, shown if a run fails
    failed() {
        echo "$me: $1 failed:" >&2
        grep -v '^summary ' "$errf" >&2
        exit 1
    }
    q_ours=$(for _ in 1 2 3 4 5; do
        "$bin" summary "$SINKD_PG_URL" cc 2>>"$errf" | awk '/ ms$/ { print $(NF - 1) }'
    done | min5) || failed "registry_bench summary cc"
    # psql's session first reads what registry_open does (the schema check), so both query from a
    # backend whose catalog caches are as warm: a backend's very first query also pays for loading
    # them (~2 ms here), which is not the GROUP BY's cost.
    open_sql=("SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'meta'
        AND schemaname = current_schema()" "SELECT value FROM meta WHERE key = 'schema_version'")
    q_psql=$(for _ in 1 2 3 4 5; do
        "${psql[@]}" -o /dev/null -c "${open_sql[0]}" -c "${open_sql[1]}" -c '\timing on' \
            -c "$sql" | awk '/^Time:/ { print $2 }'
    done | min5) || { echo "$me: psql failed" >&2; exit 1; } # its errors went to stderr
    echo "query plan: $("${psql[@]}" -At -c "EXPLAIN $sql" | sed 's/^ *//' | paste -sd' ' -)"
    echo "per-country GROUP BY, query only (fresh connection each, best of 5): sinkd ${q_ours} ms," \
        "psql ${q_psql} ms, ratio sinkd/psql: $(awk -v a="$q_ours" -v b="$q_psql" \
            'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')x"

    t_full=$(for _ in 1 2 3 4 5; do
        "$bin" summary "$SINKD_PG_URL" full 2>&1 >/dev/null | tee -a "$errf" |
            awk '/^summary full:/ { print $3 }'
    done | min5) || failed "registry_bench summary full"
    echo "full summary report (totals, days, top cc/asn, sectors; connect to close, best of 5):" \
        "${t_full} s"
    exit 0
fi

# ---- Phase 1: build, SQLite, then phase 2 under a throwaway PostgreSQL. ---------------------------
usage() {
    echo "usage: $me [BOTS] [CONTACTS]   (positive integers, CONTACTS >= BOTS;" \
        "defaults 100000 300000)" >&2
    exit 2
}
[ $# -le 2 ] || usage
bots=${1:-100000}
contacts=${2:-300000}
for n in "$bots" "$contacts"; do
    [[ $n =~ ^[1-9][0-9]{0,11}$ ]] || usage
done
((contacts >= bots)) || usage
[[ $limit =~ ^[1-9][0-9]*$ ]] || { echo "$me: REGISTRY_BENCH_TIMEOUT must be seconds" >&2; exit 2; }

out=$(mktemp -d "${REGISTRY_BENCH_DIR:-${TMPDIR:-/tmp}}/registry-pg-bench.XXXXXX")
trap 'rm -rf "$out"' EXIT

bash "$src/bench/registry_bench_build.sh" "$out/registry_bench"

echo "# $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
    "load $(cut -d' ' -f1-3 /proc/loadavg), $(psql --version), sqlite $(sqlite3 --version | cut -d' ' -f1)"
echo "## $bots bots, $contacts contacts"
db="$out/registry.db"
sqlite_line=$(timeout "$limit" "$out/registry_bench" bulk "$db" "$bots" "$contacts")
echo "SQLite $sqlite_line"
echo "SQLite database: $(du -m "$db" | cut -f1) MiB"
rm -f "$db" "$db-wal" "$db-shm"

SINKD_PG_DURABLE=1 timeout "$limit" bash "$src/tests/pg/with_postgres.sh" \
    bash "$src/bench/registry_pg.sh" --pg-phase "$out/registry_bench" "$bots" "$contacts" \
    "$sqlite_line"
