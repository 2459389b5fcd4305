#!/usr/bin/env bash
# mutation-policy.sh -- shows the policy safety tests catch broken policy code: builds
# tests/unit/policy_{decide,env,parse}_test.c against the real src/policy/ (all must pass) and
# against copies with one deliberate bug each (each must make at least one of them fail).
# Exit 0 only if all of that holds.
# Usage: scripts/mutation-policy.sh [SOURCE_DIR]   (needs cc, pkg-config, cmocka, inih, libcrypto)
set -euo pipefail
src=${1:-${SINKD_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc=${CC:-cc}
# shellcheck disable=SC2207
libs=($(pkg-config --cflags --libs cmocka inih libcrypto))
cflags=(-std=c11 -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wno-unused-function -Wno-unused-variable)

build() { # $1 = directory holding a policy/ copy, $2 = test name (decide, env, parse); a mutant
    # that does not compile proves nothing
    if ! "$cc" "${cflags[@]}" -I "$1" -I "$src/src" -o "$1/$2" \
        "$src/tests/unit/policy_$2_test.c" "$1"/policy/*.c "$src"/src/util/*.c \
        "${libs[@]}" -lpthread -lm; then
        echo "mutation-policy: $1 ($2 test) does not compile" >&2
        exit 1
    fi
}
# runs the named tests against $1; returns non-zero when any of them fails
build_and_run() {
    local dir=$1 t
    shift
    for t in "$@"; do
        build "$dir" "$t"
        timeout 60 "$dir/$t" >"$dir/$t.log" 2>&1 || return 1
    done
}

# name | file in src/policy/ | tests that must catch it | sed expression (each must change the
# file)
mutants=(
    "scope: country test inverted|decide.c|decide|s/!in_country(a, bot->cc)/in_country(a, bot->cc)/"
    "scope: asn list ignored|decide.c|decide|s/if (a->n_asns > 0 \&\& !in_asns(a, bot->asn))/if (0)/"
    "scope: prefixes ignored|decide.c|decide|s/if (a->n_prefixes > 0 \&\& !in_prefixes/if (0 \&\& !in_prefixes/"
    "exclusions skipped|decide.c|decide|s/if (excludes(p->auth\[i\], bot))/if (0 \&\& excludes(p->auth[i], bot))/"
    "window end inclusive|decide.c|decide|s/now_us < a->not_after_us/now_us <= a->not_after_us/"
    "window start ignored|decide.c|decide|s/a->not_before_us <= now_us \&\& //"
    "enforce flag ignored|decide.c|decide|s/== POLICY_MODE_ENFORCE \&\& enforce_flag/== POLICY_MODE_ENFORCE || enforce_flag/"
    "once_per_bot ignored|decide.c|decide|s/(!sent \&\& /(1 \&\& /"
    "rate: token before due|decide.c|decide|s/if (tat > now + b->tolerance_ns) {/if (tat > now + b->tolerance_ns + b->interval_ns) {/"
    "rate: burst ignored|decide.c|decide|s/if (tat > now + b->tolerance_ns) {/if (tat > now) {/"
    "rate: other policy's state accepted|decide.c|decide|s/rate->owner == p \&\&/1 \&\&/"
    "commands: other command's authorisations considered|decide.c|decide|s/if (a->command == command \&\& in_scope(a, bot))/if (in_scope(a, bot))/"
    "rehearsal: dry run repeated|decide.c|decide|s/(!rehearsed || would_send(p, a, enforce_flag))/true/"
    "rehearsal: counted as sent|decide.c|decide|s/(!rehearsed || would_send(p, a, enforce_flag))/!rehearsed/"
    "rehearsal: named already-sent|decide.c|decide|s/sent ? VERDICT_ALREADY_SENT : VERDICT_ALREADY_REHEARSED/VERDICT_ALREADY_SENT/"
    "command id: send without one|decide.c|decide|s/(a->command != POLICY_COMMAND_UNINSTALL || policy_uninstall_id(p, a) != 0)/true/"
    "command id: default not carried|decide.c|decide|s/? policy_uninstall_id(p, a) : 0;/? a->command_id : 0;/"
    "env: exclude_tags without tag table|env.c|env|s/a->n_exclude_tags > 0 \&\& !env->tag_table/0/"
    "env: countries without country table|env.c|env|s/a->n_countries > 0 \&\& !env->country_table/0/"
    "env: asns without ASN table|env.c|env|s/a->n_asns > 0 \&\& !env->asn_table/0/"
    "env: enforce without an id|env.c|env|s/a->command_id == 0 \&\& def == 0/0/"
    "env: default id not bound|env.c|env decide|s/p->default_uninstall_id = def;/(void)def;/"
    "env: default id with a public meaning|env.c|env|s/def != 0 \&\& policy_command_id_meaning(def) != NULL/0/"
    "parse: command_id on collect|parse.c|parse|s/a->command == POLICY_COMMAND_COLLECT \&\& (a->keys_seen/0 \&\& (a->keys_seen/"
    "parse: command_id 0|parse.c|parse|s/if (id == 0) {/if (0) {/"
    "parse: command_id with a public meaning|parse.c|parse|s/if (meaning != NULL) {/if (0) {/"
    "parse: command_id range|parse.c|parse|s/if (v > POLICY_COMMAND_ID_MAX) {/if (0) {/"
    "parse: collect read as uninstall|parse.c|parse decide|s/a->command = POLICY_COMMAND_COLLECT;/a->command = POLICY_COMMAND_UNINSTALL;/"
)

mkdir -p "$work/orig"
cp -r "$src/src/policy" "$work/orig/policy"
if ! build_and_run "$work/orig" decide env parse; then
    echo "mutation-policy: the unmutated policy tests FAIL; fix them first" >&2
    cat "$work/orig"/*.log >&2
    exit 1
fi
echo "original: tests pass"
status=0
i=0
for m in "${mutants[@]}"; do
    i=$((i + 1))
    IFS='|' read -r name file tests expr <<<"$m"
    d="$work/m$i"
    mkdir -p "$d"
    cp -r "$src/src/policy" "$d/policy"
    sed -i "$expr" "$d/policy/$file"
    if cmp -s "$src/src/policy/$file" "$d/policy/$file"; then
        echo "mutant $i ($name): sed did not apply; the mutation point moved" >&2
        status=1
        continue
    fi
    # shellcheck disable=SC2086
    if build_and_run "$d" $tests; then
        echo "mutant $i ($name): SURVIVED (the tests did not notice)" >&2
        status=1
    else
        echo "mutant $i ($name): killed"
    fi
    rm -rf "$d"
done
exit $status
