#!/usr/bin/env bash
# policy.sh -- policy decisions per second per core (goal >= 1 M/s) and the rate limiter's
# accuracy across threads (goal: within 2% of the configured rate).
# Usage: bench/policy.sh [SECONDS_PER_RUN]   (default 3; builds with cc -O2, no sanitizers)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2207
libs=($(pkg-config --cflags --libs inih libcrypto))
"${CC:-cc}" -std=c11 -O2 -DNDEBUG -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I "$src/src" \
    -o "$work/policy_bench" "$src/bench/policy_bench.c" "$src"/src/policy/*.c "$src"/src/util/*.c \
    "${libs[@]}" -lpthread -lm
echo "# $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
"$work/policy_bench" "${1:-3}"
