#!/usr/bin/env bash
# build_tools.sh -- builds sinkd (Release, build/bench) and the bench's C clients and attack tools
# (build/bench-tools). Sourced or run by the other bench scripts; prints nothing on success.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${SINKD_BENCH_BUILD:-$ROOT/build/bench}
TOOLS=${SINKD_BENCH_TOOLS:-$ROOT/build/bench-tools}
mkdir -p "$TOOLS"
if [ ! -x "$BUILD/sinkd" ] || [ "${SINKD_BENCH_REBUILD:-1}" = 1 ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$TOOLS/cmake.log" 2>&1
    cmake --build "$BUILD" -j2 --target sinkd >>"$TOOLS/cmake.log" 2>&1 ||
        { tail -20 "$TOOLS/cmake.log" >&2; exit 1; }
fi
CFLAGS="-O2 -g -std=c11 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Wall -Wextra -Werror -I$ROOT/src -I$ROOT"
LIBS="$BUILD/libsinkd_proto.a $BUILD/libsinkd_net.a $BUILD/libsinkd_event.a $BUILD/libsinkd_util.a"
# shellcheck disable=SC2046
PKG=$(pkg-config --cflags --libs libuv libcrypto jansson)
for src in attack/attack churn_client idle_client floor_server; do
    out="$TOOLS/$(basename "$src")"
    if [ ! -x "$out" ] || [ "$ROOT/bench/$src.c" -nt "$out" ] || [ "$ROOT/bench/benchnet.h" -nt "$out" ] ||
        [ "$BUILD/libsinkd_proto.a" -nt "$out" ]; then
        # shellcheck disable=SC2086
        cc $CFLAGS -o "$out" "$ROOT/bench/$src.c" $LIBS $PKG -lm
    fi
done
