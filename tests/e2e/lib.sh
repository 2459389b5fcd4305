# lib.sh -- shared helpers for end-to-end tests: a scratch dir, a free loopback port, a server.
# Sourced by tests/e2e/*_test.sh; they run under ctest with SINKD_BINARY and SINKD_SOURCE_DIR set.
set -euo pipefail
: "${SINKD_BINARY:?SINKD_BINARY must point at the sinkd executable}"
: "${SINKD_SOURCE_DIR:?}"
export SINKD_DATA_DIR="$SINKD_SOURCE_DIR/data"
# ASan's quarantine would otherwise look like unbounded growth in the memory checks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16:detect_leaks=1}"

# Every read of victims' data needs a justification (docs/evidence.md, "Access records").
E2E_WHY="end-to-end test $(basename "$0")"
E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sinkd-e2e.XXXXXX")
E2E_PIDS=()
e2e_cleanup() {
    for pid in "${E2E_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "kept $E2E_DIR" >&2
    else
        rm -rf "$E2E_DIR"
    fi
}
trap e2e_cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    [ -f "$E2E_DIR/serve.log" ] && { echo "--- serve.log (tail)" >&2; tail -30 "$E2E_DIR/serve.log" >&2; }
    exit 1
}

free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 25000))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# start_server STATE PORT [extra serve options...]; sets SERVER_PID. With SERVE_NOFILE=N the
# server runs under an open-files limit of N (soft and hard, so it cannot raise it); with
# SERVE_WRAP="cmd args" it runs under that command (e.g. setpriv dropping capabilities).
start_server() {
    local state=$1 port=$2
    shift 2
    rm -f "$E2E_DIR/ready"
    local as_root=() limit=()
    # CI runs as root in a throwaway sandbox; serve refuses root without an explicit choice.
    [ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
    [ -z "${SERVE_NOFILE:-}" ] || limit=(prlimit --nofile="$SERVE_NOFILE" --)
    # shellcheck disable=SC2206
    [ -z "${SERVE_WRAP:-}" ] || limit+=($SERVE_WRAP)
    "${limit[@]}" "$SINKD_BINARY" serve "${as_root[@]}" --state "$state" --listen "127.0.0.1:$port" \
        --trusted-proxy 127.0.1.0/24 --ready-file "$E2E_DIR/ready" "$@" \
        2>>"$E2E_DIR/serve.log" &
    SERVER_PID=$!
    E2E_PIDS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        [ -f "$E2E_DIR/ready" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited during start"
        sleep 0.05
    done
    fail "server not ready after 10 s"
}

stop_server() {
    kill -TERM "$SERVER_PID"
    local status=0
    wait "$SERVER_PID" || status=$?
    [ "$status" -eq 0 ] || fail "server exited with status $status after SIGTERM"
}

json_field() { # FILE EXPR  (python expression over `d`)
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# durable_messages STATE [SKIP_PREFIX]: the bot messages the log vouches for (each contact record,
# and each poll a heartbeats record counts: the roll-up), leaving out sources whose address starts
# with SKIP_PREFIX (a test's attackers). What a swarm's replies must not exceed.
durable_messages() {
    "$SINKD_BINARY" contacts --justification "$E2E_WHY" --state "$1" --all |
        python3 -c '
import json, sys
skip = sys.argv[1]
n = 0
for line in sys.stdin:
    r = json.loads(line)
    if r["kind"] not in ("contact", "heartbeats") or (skip and r["src_ip"].startswith(skip)):
        continue
    n += r["count"] if r["kind"] == "heartbeats" else 1
print(n)' "${2:-}"
}
