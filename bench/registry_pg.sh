#!/usr/bin/env bash
# registry_pg.sh -- the registry's PostgreSQL backend against SQLite, measured in the same run on
# the same box: (a) bulk apply of BOTS bots / CONTACTS contacts through registry_apply, the same
# records into an SQLite file and into a throwaway PostgreSQL server (tests/pg/with_postgres.sh
# with SINKD_PG_DURABLE=1: fsync, synchronous_commit and full_page_writes on, as deployed), and the
# ratio of the rates PostgreSQL/SQLite (below 1.0x: applying into PostgreSQL is that much slower);
# (b) on the PostgreSQL database, the per-country GROUP BY through sinkd vs psql running the same
# SQL (query time only, each in a fresh connection, best of 5; ratio sinkd/psql, goal <= 1.0x:
# sinkd's driver adds nothing to the server's own cost), and the full summary report's time.
# Both bulk runs also print the CPU seconds they took (the bench process, and for PostgreSQL its
# server backend), which a shared box's load moves far less than the wall-clock rates.
# REGISTRY_BENCH_PROFILE=1 then applies the same records once more into a fresh database with
# pg_stat_statements and auto_explain loaded, and prints where the server's time went per
# statement (per row) and the plans of one batch's statements: what bounds the PostgreSQL rate.
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

# CPU seconds (user + system) process $1 has used so far; nothing once it is gone.
proc_cpu() {
    awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / t }' "/proc/$1/stat" \
        2>/dev/null
}

# Runs CMD... in the background, its stdout into $cpu_out, and fails as CMD fails; sets cpu_self to the CPU seconds it
# used and, when $cpu_backend_sql names its server backend's pid (a psql query), cpu_backend to
# that backend's. Sampled every 50 ms until each is gone, so the last 50 ms may be missed.
# Killed after $limit seconds.
cpu_run() {
    "$@" >"$cpu_out" &
    local pid=$! be="" v end=$((SECONDS + limit))
    cpu_self=0 cpu_backend=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS > end)); then
            echo "$me: $1 ran past REGISTRY_BENCH_TIMEOUT ($limit s)" >&2
            kill "$pid"
        fi
        if [ -n "${cpu_backend_sql:-}" ] && [ -z "$be" ]; then
            be=$("${psql[@]}" -At -c "$cpu_backend_sql" 2>/dev/null | head -n 1)
        fi
        v=$(proc_cpu "$pid") && [ -n "$v" ] && cpu_self=$v
        if [ -n "$be" ]; then
            v=$(proc_cpu "$be") && [ -n "$v" ] && cpu_backend=$v
        fi
        sleep 0.05
    done
    wait "$pid"
    if [ -n "${cpu_backend_sql:-}" ] && [ -z "$be" ]; then
        echo "$me: the server backend's pid was not found: its CPU is not measured (0)" >&2
    fi
}

# ---- Phase 2, under tests/pg/with_postgres.sh: SINKD_PG_URL, SINKD_PG_BIN are set. -------------
if [ "${1:-}" = --pg-phase ]; then
    : "${SINKD_PG_URL:?--pg-phase is run by $me itself, under tests/pg/with_postgres.sh}"
    bin=$2 bots=$3 contacts=$4 sqlite_line=$5 sqlite_cpu=$6
    psql=("$SINKD_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$SINKD_PG_URL")
    export PGCONNECT_TIMEOUT=10
    echo "# PostgreSQL server: $("${psql[@]}" -At -c 'SHOW server_version')," \
        "fsync=$("${psql[@]}" -At -c 'SHOW fsync')" \
        "synchronous_commit=$("${psql[@]}" -At -c 'SHOW synchronous_commit')" \
        "full_page_writes=$("${psql[@]}" -At -c 'SHOW full_page_writes')," \
        "shared_buffers=$("${psql[@]}" -At -c 'SHOW shared_buffers')"

    cpu_out=$(dirname "$bin")/pg_bulk.out
    cpu_backend_sql="SELECT pid FROM pg_stat_activity WHERE application_name = 'sinkd-bench-bulk'"
    PGAPPNAME=sinkd-bench-bulk cpu_run "$bin" bulk "$SINKD_PG_URL" "$bots" "$contacts"
    pg_line=$(cat "$cpu_out")
    echo "PostgreSQL $pg_line"
    echo "PostgreSQL CPU: bench process $cpu_self s, server backend $cpu_backend s:" \
        "$(awk -v a="$cpu_self" -v b="$cpu_backend" -v n="$contacts" \
            'BEGIN { printf "%.1f + %.1f = %.1f", a * 1e6 / n, b * 1e6 / n, (a + b) * 1e6 / n }')" \
        "us per record ($sqlite_cpu)"
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
    [ "${REGISTRY_BENCH_PROFILE:-0}" = 1 ] || exit 0

    # ---- Profile: the same records again into a fresh database, each statement counted and the
    # plans of the large ones logged (auto_explain with row counts, without per-node timing).
    echo "## profile (REGISTRY_BENCH_PROFILE=1; its own run, not the figure above)"
    "${psql[@]}" -c "CREATE DATABASE sinkd_profile"
    purl=${SINKD_PG_URL/\/sinkd?/\/sinkd_profile?}
    psql=("$SINKD_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$purl")
    "${psql[@]}" -c "CREATE EXTENSION pg_stat_statements"
    "$bin" bulk "$purl" 1 1 >/dev/null # the schema, outside the counts
    "${psql[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
    log=$SINKD_PG_HOST/../server.log
    from=$(wc -l <"$log")
    PGOPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0
        -c auto_explain.log_analyze=on -c auto_explain.log_timing=off" \
        "$bin" bulk "$purl" "$bots" "$contacts"
    echo "server time per statement (pg_stat_statements; us per row):"
    "${psql[@]}" -c "SELECT calls, round(total_exec_time) AS total_ms, rows,
        round((1000 * total_exec_time / greatest(rows, 1))::numeric, 1) AS us_per_row,
        left(regexp_replace(query, '\s+', ' ', 'g'), 64) AS statement
        FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
        ORDER BY total_exec_time DESC LIMIT 14"
    "${psql[@]}" -c "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
        WHERE relname IN ('bot', 'source_ip', 'day_bot', 'day_ip') ORDER BY relname"
    echo "plans of the last batch's statements of more than 1000 rows (auto_explain):"
    tail -n "+$((from + 1))" "$log" | awk '
        /LOG:  duration:/ { if (keep) print block; block = ""; keep = 0; inplan = 1; next }
        inplan && /^\t/ { block = block $0 "\n"; if ($0 ~ /actual rows=[0-9][0-9][0-9][0-9]/) keep = 1; next }
        { inplan = 0 }
        END { if (keep) print block }' | sed 's/^\t//' |
        awk -v RS= '{ sub(/Query Text: /, ""); key = substr($0, 1, 40);
            if (!(key in last)) order[n++] = key; last[key] = $0 }
            END { for (i = 0; i < n; i++) print last[order[i]] "\n" }' |
        grep -v "^Query Parameters" | cut -c1-160
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
cpu_out=$out/sqlite_bulk.out
cpu_run "$out/registry_bench" bulk "$db" "$bots" "$contacts"
sqlite_line=$(cat "$cpu_out")
echo "SQLite $sqlite_line"
sqlite_cpu="SQLite: $(awk -v a="$cpu_self" -v n="$contacts" 'BEGIN { printf "%.1f", a * 1e6 / n }') us per record"
echo "SQLite CPU: bench process $cpu_self s"
echo "SQLite database: $(du -m "$db" | cut -f1) MiB"
rm -f "$db" "$db-wal" "$db-shm"

opts=""
[ "${REGISTRY_BENCH_PROFILE:-0}" != 1 ] || opts="-c shared_preload_libraries=pg_stat_statements"
SINKD_PG_DURABLE=1 SINKD_PG_OPTS=$opts timeout "$limit" bash "$src/tests/pg/with_postgres.sh" \
    bash "$src/bench/registry_pg.sh" --pg-phase "$out/registry_bench" "$bots" "$contacts" \
    "$sqlite_line" "$sqlite_cpu"
