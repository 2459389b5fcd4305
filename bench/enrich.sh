#!/usr/bin/env bash
# enrich.sh -- builds bench/enrich_bench.c with the enrich sources (-O2, no sanitizers) and prints
# table load time, memory and lookups per second. Usage: bench/enrich.sh [THREADS] [SECONDS]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
threads=${1:-1}
seconds=${2:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
    -I"$src/src" "$src/bench/enrich_bench.c" "$src"/src/enrich/*.c "$src"/src/util/*.c \
    $(pkg-config --cflags --libs libmaxminddb libcrypto jansson) -lpthread -o "$out/enrich_bench"

npm="$src/data/npm"
echo "# $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$out/enrich_bench" \
    "$npm/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb" \
    "$npm/asn/asn-ipv4.csv" "$npm/asn/asn-ipv6.csv" \
    "$src/data/tags/example-sectors.csv" "$threads" "$seconds"
