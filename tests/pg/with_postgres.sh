#!/usr/bin/env bash
# with_postgres.sh -- run a command against a throwaway PostgreSQL server of its own.
# Usage: tests/pg/with_postgres.sh COMMAND [ARGS...]
#
# Tests that touch PostgreSQL must talk to a real server, not a mock, yet must never depend on
# (or disturb) a server someone already runs. So each invocation gets a private server in a fresh
# /tmp/sinkd-pg-XXXXXX dir, reachable only through a Unix socket inside that dir (no TCP listener:
# nothing leaves the machine, and parallel runs cannot collide on a port). COMMAND sees:
#   SINKD_PG_URL   postgresql:///sinkd?host=SOCKDIR&port=PORT&user=sinkd
#   SINKD_PG_HOST  the socket directory      SINKD_PG_PORT  the port (names the socket file)
#   SINKD_PG_BIN   the PostgreSQL bin dir (initdb, pg_ctl, psql, ...)
# The server is stopped and the dir removed however COMMAND ends; the script exits with COMMAND's
# status. SINKD_PG_KEEP=1 keeps the dir (logs, data) for a post-mortem; the server still stops.
# SINKD_PG_DURABLE=1 runs the server with PostgreSQL's own durability settings (fsync,
# synchronous_commit and full_page_writes on, its defaults) instead of the tests' shortcuts: for
# benchmarks (bench/registry_pg.sh), whose figures must include what a real deployment pays.
# SINKD_PG_OPTS adds server options (postgres -c ... words), e.g. to load pg_stat_statements for a
# profile: SINKD_PG_OPTS="-c shared_preload_libraries=pg_stat_statements".
set -euo pipefail

me=with_postgres.sh
if [ $# -eq 0 ]; then
    echo "usage: $me COMMAND [ARGS...]" >&2
    exit 2
fi

# Debian installs server binaries per major version, off PATH; take the newest complete one.
# sort -V, because the glob's lexical order puts 9.6 after 15.
bin=""
while IFS= read -r dir; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        bin=$dir
    fi
done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
if [ -z "$bin" ]; then
    echo "$me: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (install the postgresql package)" >&2
    exit 1
fi

# PostgreSQL refuses to run as root, and CI runs us as root: the server then runs as an
# unprivileged account while COMMAND keeps the caller's identity (root can use any socket).
server_user=""
if [ "$(id -u)" -eq 0 ]; then
    if id -u postgres >/dev/null 2>&1; then
        server_user=postgres
    else
        server_user=nobody
    fi
    server_uid=$(id -u "$server_user")
    server_gid=$(id -g "$server_user")
    if command -v setpriv >/dev/null 2>&1; then
        drop=(setpriv --reuid="$server_uid" --regid="$server_gid" --clear-groups)
    elif command -v runuser >/dev/null 2>&1; then
        drop=(runuser -u "$server_user" --)
    else
        echo "$me: running as root but neither setpriv nor runuser is available to drop privileges" >&2
        exit 1
    fi
fi

keep=${SINKD_PG_KEEP:-0}
tmp=""
data=""
server_log=""
cleaned=0

as_server() {
    if [ -n "$server_user" ]; then
        # The caller's cwd may be unreadable to the server account (e.g. /root), which initdb
        # and pg_ctl trip over; our own dir is always reachable.
        (cd "$tmp" && "${drop[@]}" "$@")
    else
        "$@"
    fi
}

stop_server() {
    [ -n "$data" ] && [ -f "$data/postmaster.pid" ] || return 0
    local pid
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    # Immediate mode: nothing in the data is worth a clean checkpoint.
    as_server "$bin/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    # A postmaster that ignored the stop for 10 s is killed outright: never leave one behind.
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# shellcheck disable=SC2317  # reached through the EXIT trap, which shellcheck 0.9 does not follow
cleanup() {
    local rc=$?
    # A failure here must not replace COMMAND's status, and a second ^C must not cut cleanup short.
    set +e
    trap '' INT TERM HUP
    if [ "$cleaned" = 0 ]; then
        cleaned=1
        stop_server
        if [ -n "$tmp" ]; then
            if [ "$keep" = 1 ]; then
                echo "$me: kept $tmp" >&2
            else
                rm -rf "$tmp"
            fi
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# An explicit /tmp, not $TMPDIR: the socket path must stay well under the 107-byte sun_path limit.
tmp=$(mktemp -d /tmp/sinkd-pg-XXXXXX)
data=$tmp/data
sock=$tmp/sock
server_log=$tmp/server.log
mkdir "$sock"
# 755 so a root COMMAND and the unprivileged server can both reach the socket.
chmod 755 "$tmp" "$sock"
if [ -n "$server_user" ]; then
    chown "$server_uid:$server_gid" "$tmp" "$sock"
fi
# Any port will do: it only names the socket file, and the socket dir is ours alone.
port=$((20000 + $$ % 40000))

# The traps above cannot run if we are SIGKILLed (ctest's timeout does that, and the postmaster,
# daemonised by pg_ctl, is outside the tree it kills). A detached watcher stops the server and
# removes the dir once this script is gone; it leaves by itself when the dir is removed normally.
wrapper=$$
watch_wrapper() {
    trap '' INT TERM HUP
    set +e
    while kill -0 "$wrapper" 2>/dev/null && [ -e "$tmp" ]; do
        sleep 1
    done
    [ -e "$tmp" ] || exit 0
    stop_server
    [ "$keep" = 1 ] || rm -rf "$tmp"
}
(watch_wrapper </dev/null >/dev/null 2>&1 &)

if ! as_server "$bin/initdb" -D "$data" -U sinkd --auth=trust -E UTF8 --locale=C --no-sync \
    >"$tmp/initdb.log" 2>&1; then
    echo "$me: initdb failed:" >&2
    tail -n 30 "$tmp/initdb.log" >&2
    exit 1
fi

# fsync, synchronous_commit and full_page_writes are off: tests do not test PostgreSQL's own
# durability, and a throwaway cluster has nothing to lose in a crash. A benchmark
# (SINKD_PG_DURABLE=1) keeps PostgreSQL's defaults, all three on.
opts="-c listen_addresses='' -c unix_socket_directories='$sock' -p $port -c max_connections=50"
if [ "${SINKD_PG_DURABLE:-0}" != 1 ]; then
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
opts+=" ${SINKD_PG_OPTS:-}"
if ! as_server "$bin/pg_ctl" -D "$data" -l "$server_log" -w -t 30 -o "$opts" start >/dev/null 2>&1; then
    echo "$me: PostgreSQL did not start; end of the server log (SINKD_PG_KEEP=1 keeps it):" >&2
    tail -n 30 "$server_log" >&2 || true
    exit 1
fi

# Bounded like the rest: a connect that hangs fails after 10 s instead of stalling the suite.
if ! PGCONNECT_TIMEOUT=10 "$bin/createdb" -h "$sock" -p "$port" -U sinkd sinkd; then
    echo "$me: createdb sinkd failed" >&2
    exit 1
fi

export SINKD_PG_URL="postgresql:///sinkd?host=$sock&port=$port&user=sinkd"
export SINKD_PG_HOST=$sock
export SINKD_PG_PORT=$port
export SINKD_PG_BIN=$bin

# Not exec: the EXIT trap must still run to stop the server. In the foreground, so COMMAND keeps
# the terminal's stdin and ^C; the price is that a signal sent to this script alone is acted on
# once COMMAND exits.
status=0
"$@" || status=$?
exit "$status"
