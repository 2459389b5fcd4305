# lib.sh -- shared helpers for bench/*.sh (attack, churn, idle, throughput): build, scratch dir,
# free loopback ports, starting sinkd and nginx, memory readings. Sourced, never run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${SINKD_BENCH_BUILD:-$ROOT/build/bench}
TOOLS=${SINKD_BENCH_TOOLS:-$ROOT/build/bench-tools}
SINKD=$BUILD/sinkd
export SINKD_DATA_DIR=${SINKD_DATA_DIR:-$ROOT/data}
# The box's hard limit; every figure that depends on descriptors is bounded by it.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)

"$ROOT/bench/build_tools.sh"

# Each server runs with its own default number of workers for the box unless WORKERS is set:
# one per core for both (sinkd's default, nginx `auto`).
WORKERS=${WORKERS:-}
WORKER_OPTS=()
[ -z "$WORKERS" ] || WORKER_OPTS=(--workers "$WORKERS")
NGINX_WORKERS=${WORKERS:-auto}
SINKD_WORKERS_SHOWN=${WORKERS:-"default ($(nproc))"}

B_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sinkd-bench.XXXXXX")
B_PIDS=()
b_cleanup() {
    local pid
    for pid in "${B_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${B_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $B_DIR" >&2; else rm -rf "$B_DIR"; fi
}
trap b_cleanup EXIT

die() {
    echo "bench: $*" >&2
    exit 1
}

# A port nobody listens on. sinkd's listeners use SO_REUSEPORT, so a second server of the same
# user on a busy port would silently share its traffic: always check.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 25000))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# start_sinkd NAME PORT [serve options...]; sets SINKD_PID, state in $B_DIR/NAME
start_sinkd() {
    local name=$1 port=$2
    shift 2
    rm -rf "${B_DIR:?}/$name"
    mkdir -p "$B_DIR/$name"
    # B_EPOCH_SECONDS: the seal epoch length of the new state directory (keys/epochs/epoch_seconds).
    if [ -n "${B_EPOCH_SECONDS:-}" ]; then
        mkdir -p -m 700 "$B_DIR/$name/state" "$B_DIR/$name/state/keys" "$B_DIR/$name/state/keys/epochs"
        echo "$B_EPOCH_SECONDS" >"$B_DIR/$name/state/keys/epochs/epoch_seconds"
    fi
    local as_root=()
    [ "$(id -u)" -ne 0 ] || as_root=(--allow-root) # benches run in throwaway sandboxes
    # SINKD_OPTS: extra serve options for an experiment (word-split on purpose).
    # shellcheck disable=SC2086
    "$SINKD" serve "${as_root[@]}" --state "$B_DIR/$name/state" --listen "127.0.0.1:$port" \
        --ready-file "$B_DIR/$name/ready" "$@" ${SINKD_OPTS:-} 2>"$B_DIR/$name/serve.log" &
    SINKD_PID=$!
    B_PIDS+=("$SINKD_PID")
    for _ in $(seq 1 400); do
        [ -s "$B_DIR/$name/ready" ] && return 0
        kill -0 "$SINKD_PID" 2>/dev/null || { cat "$B_DIR/$name/serve.log" >&2; die "sinkd exited"; }
        sleep 0.05
    done
    die "sinkd not ready after 20 s"
}

# start_attack NAME PORT SECONDS WARMUP_S [attack options]: runs bench/attack/attack against the
# server in the background (its output in $B_DIR/NAME.attack) and sets APID, then gives it
# WARMUP_S to reach full strength. Without options (a quiet phase) it starts nothing, APID empty.
start_attack() {
    local name=$1 port=$2 seconds=$3 warmup=$4
    shift 4
    APID=
    [ $# -gt 0 ] || return 0
    "$TOOLS/attack" --target "127.0.0.1:$port" --duration "$seconds" "$@" >"$B_DIR/$name.attack" 2>&1 &
    APID=$!
    B_PIDS+=("$APID")
    sleep "$warmup"
}

stop_sinkd() {
    kill -TERM "$SINKD_PID" 2>/dev/null || true
    wait "$SINKD_PID" 2>/dev/null || true
}

# Durable contacts in a stopped server's log (all, or only those whose source matches a regex).
contacts_total() { "$SINKD" contacts --state "$B_DIR/$1/state" --summary | json '["contacts"]'; }

# start_nginx NAME CONF_BODY; runs nginx in the foreground of a background job, sets NGINX_PID
start_nginx() {
    local name=$1 body=$2 d="$B_DIR/$1"
    mkdir -p "$d/logs"
    printf '%s\n' "$body" >"$d/nginx.conf"
    nginx -p "$d" -c "$d/nginx.conf" -g "daemon off; pid $d/nginx.pid; error_log $d/error.log;" \
        2>"$d/stderr.log" &
    NGINX_PID=$!
    B_PIDS+=("$NGINX_PID")
    for _ in $(seq 1 100); do
        [ -s "$d/nginx.pid" ] && [ "$(pgrep -c -P "$NGINX_PID" || true)" -ge 1 ] && return 0
        sleep 0.05
    done
    cat "$d/stderr.log" "$d/error.log" >&2 2>/dev/null || true
    die "nginx did not start"
}

stop_nginx() {
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The kernel's slab memory, box-wide (sockets, files, epoll items of every process).
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
private_dirty_kb() { awk '/^Private_Dirty/ {print $2}' "/proc/$1/smaps_rollup"; }
# RSS of nginx's workers (the master holds no connections)
nginx_workers_rss_kb() {
    local s=0 p
    for p in $(pgrep -P "$NGINX_PID"); do s=$((s + $(rss_kb "$p"))); done
    echo "$s"
}
nginx_workers_dirty_kb() {
    local s=0 p
    for p in $(pgrep -P "$NGINX_PID"); do s=$((s + $(private_dirty_kb "$p"))); done
    echo "$s"
}

# json EXPR: reads one JSON document on stdin, prints d EXPR (python syntax)
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

# CPU seconds (user+system) a process has used so far
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
nginx_cpu_s() {
    local s=0 p
    for p in $(pgrep -P "$NGINX_PID"); do s=$(awk -v a="$s" -v b="$(cpu_s "$p")" 'BEGIN{print a+b}'); done
    echo "$s"
}
