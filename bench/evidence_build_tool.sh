#!/bin/bash
# evidence_build_tool.sh -- builds bench/evidence_tool.c against a CMake build's static
# libraries (evidence, event, util; report and what it needs, for prove's --since/--until)
# with cc + pkg-config. Usage: evidence_build_tool.sh BUILD_DIR OUT
set -euo pipefail
src=${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=$1
out=$2
flags=(-O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -DSINKD_VERSION=\"0.1.0\" -I"$src/src")
if grep -q 'SINKD_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    flags+=(-fsanitize=address,undefined)
fi
cc "${flags[@]}" -o "$out" "$src/bench/evidence_tool.c" "$src/src/cli/cmd_evidence.c" "$src/src/cli/cmd_verify_nodes.c" "$src/src/cli/cmd_prove.c" \
    "$src/src/cli/cli.c" "$src/src/cli/cli_access.c" \
    "$build/libsinkd_report.a" "$build/libsinkd_registry.a" "$build/libsinkd_enrich.a" \
    "$build/libsinkd_evidence.a" "$build/libsinkd_event.a" "$build/libsinkd_util.a" \
    $(pkg-config --libs libcrypto jansson sqlite3 libpq libmaxminddb inih) -lm -lpthread
