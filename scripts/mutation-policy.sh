#!/usr/bin/env bash
# mutation-policy.sh -- shows the policy safety tests catch broken decision code: builds
# tests/unit/policy_decide_test.c against the real src/policy/ (must pass) and against copies with
# one deliberate bug each (each must fail). Exit 0 only if all of that holds.
# Usage: scripts/mutation-policy.sh [SOURCE_DIR]   (needs cc, pkg-config, cmocka, inih, libcrypto)
set -euo pipefail
src=${1:-${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc=${CC:-cc}
# shellcheck disable=SC2207
libs=($(pkg-config --cflags --libs cmocka inih libcrypto))
cflags=(-std=c11 -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wno-unused-function)

build() { # $1 = directory holding a policy/ copy; a mutant that does not compile proves nothing
    if ! "$cc" "${cflags[@]}" -I "$1" -I "$src/src" -o "$1/t" \
        "$src/tests/unit/policy_decide_test.c" "$1"/policy/*.c "$src"/src/util/*.c \
        "${libs[@]}" -lpthread -lm; then
        echo "mutation-policy: $1 does not compile" >&2
        exit 1
    fi
}
build_and_run() { # returns the test's exit status
    build "$1"
    timeout 60 "$1/t" >"$1/log" 2>&1
}

# name | sed expression applied to decide.c (each must change the file)
mutants=(
    "scope: country test inverted|s/!in_country(a, bot->cc)/in_country(a, bot->cc)/"
    "scope: asn list ignored|s/if (a->n_asns > 0 \&\& !in_asns(a, bot->asn))/if (0)/"
    "scope: prefixes ignored|s/if (a->n_prefixes > 0 \&\& !in_prefixes/if (0 \&\& !in_prefixes/"
    "exclusions skipped|s/if (excludes(p->auth\[i\], bot))/if (0 \&\& excludes(p->auth[i], bot))/"
    "window end inclusive|s/now_us < a->not_after_us/now_us <= a->not_after_us/"
    "window start ignored|s/a->not_before_us <= now_us \&\& //"
    "enforce flag ignored|s/== POLICY_MODE_ENFORCE \&\& enforce_flag/== POLICY_MODE_ENFORCE || enforce_flag/"
    "once_per_bot ignored|s/!((bot->sent >> i) \& 1)/1/"
    "rate: token before due|s/if (tat > now + b->tolerance_ns) {/if (tat > now + b->tolerance_ns + b->interval_ns) {/"
    "rate: burst ignored|s/if (tat > now + b->tolerance_ns) {/if (tat > now) {/"
    "rate: other policy's state accepted|s/rate->owner == p \&\&/1 \&\&/"
)

mkdir -p "$work/orig"
cp -r "$src/src/policy" "$work/orig/policy"
if ! build_and_run "$work/orig"; then
    echo "mutation-policy: the unmutated policy tests FAIL; fix them first" >&2
    cat "$work/orig/log" >&2
    exit 1
fi
echo "original: tests pass"
status=0
i=0
for m in "${mutants[@]}"; do
    i=$((i + 1))
    name=${m%%|*}
    expr=${m#*|}
    d="$work/m$i"
    mkdir -p "$d"
    cp -r "$src/src/policy" "$d/policy"
    sed -i "$expr" "$d/policy/decide.c"
    if cmp -s "$src/src/policy/decide.c" "$d/policy/decide.c"; then
        echo "mutant $i ($name): sed did not apply; the mutation point moved" >&2
        status=1
        continue
    fi
    if build_and_run "$d"; then
        echo "mutant $i ($name): SURVIVED (the tests did not notice)" >&2
        status=1
    else
        echo "mutant $i ($name): killed"
    fi
    rm -rf "$d"
done
exit $status
