#!/usr/bin/env bash
# contrib_units_test.sh -- the systemd units in contrib/ are valid: `systemd-analyze verify`
# accepts each (with ExecStart pointed at the built binary) without a single warning, and every
# option their ExecStart lines pass to sinkd is one that subcommand's --help lists.
source "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
units="$E2E_DIR/units"
mkdir -p "$units"
for f in "$SINKD_SOURCE_DIR"/contrib/*.service "$SINKD_SOURCE_DIR"/contrib/*.timer; do
    sed "s|/usr/bin/sinkd|$SINKD_BINARY|" "$f" >"$units/$(basename "$f")"
done
n=0
for f in "$units"/*.service "$units"/*.timer; do
    out=$(cd "$units" && systemd-analyze verify --man=no "./$(basename "$f")" 2>&1) ||
        fail "$(basename "$f"): systemd-analyze verify failed: $out"
    [ -z "$out" ] || fail "$(basename "$f"): $out"
    n=$((n + 1))
done
[ "$n" -ge 4 ] || fail "only $n units found"

python3 - "$SINKD_BINARY" "$SINKD_SOURCE_DIR"/contrib/*.service <<'PY' || fail "a unit passes an option sinkd does not have"
import re, shlex, subprocess, sys
binary, units = sys.argv[1], sys.argv[2:]
for unit in units:
    text = open(unit).read().replace("\\\n", " ")
    for line in re.findall(r"^ExecStart=(.*)$", text, re.M):
        args = shlex.split(line)
        if not args[0].endswith("/sinkd"):
            continue
        sub = args[1]
        helptext = subprocess.run([binary, sub, "--help"], capture_output=True, text=True).stdout
        for a in args[2:]:
            if a.startswith("--") and a.split("=")[0] not in helptext:
                print(f"{unit}: sinkd {sub} has no option {a}", file=sys.stderr)
                sys.exit(1)
        print(f"{unit.rsplit('/', 1)[1]}: sinkd {sub}: {sum(a.startswith('--') for a in args)} options known")
PY
echo "contrib units: OK ($n verified)"
