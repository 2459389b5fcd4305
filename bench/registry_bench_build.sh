#!/usr/bin/env bash
# registry_bench_build.sh OUT -- builds bench/registry_bench.c with the registry, report, evidence,
# event and util sources into the executable OUT, for bench/registry.sh and bench/registry_pg.sh.
# -Werror is left to the CMake build: other modules compiled here may be mid-edit.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: bench/registry_bench_build.sh OUT}
# shellcheck disable=SC2046  # pkg-config's flags are words
cc -std=c11 -O2 -g -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
    -DSINKD_VERSION='"bench"' -I"$src/src" "$src/bench/registry_bench.c" \
    "$src"/src/registry/*.c "$src"/src/report/*.c "$src"/src/evidence/*.c "$src"/src/event/*.c \
    "$src"/src/util/*.c $(pkg-config --cflags --libs sqlite3 libpq libcrypto jansson inih) -lpthread -lm \
    -o "$out"
