#!/usr/bin/env bash
# policy_mutation_test.sh -- ctest wrapper: the policy decision tests must kill every mutant in
# scripts/mutation-policy.sh (and pass on the real code).
set -euo pipefail
src=${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
exec timeout 300 bash "$src/scripts/mutation-policy.sh" "$src"
