#!/usr/bin/env bash
# package_install_test.sh -- issue 19 items 11, 13 and 14: the Debian package, built by the
# Debian tools from this tree (scripts/build-deb.sh: dpkg-buildpackage, lintian clean), is
# unpacked into a throwaway root (dpkg-deb -x) and its binary is started with its installed data
# and its installed config file (/etc/sinkd/sinkd.conf), in a private mount namespace where that
# root's /usr/share/sinkd and /etc/sinkd sit at their real paths and the source tree is hidden
# (an empty tmpfs over it), so any read of the source tree fails. A small swarm (the installed
# binary, its installed data) runs against it; the report names countries and AS names from the
# installed tables; the installed man pages equal the installed binary's --help.
# Exit 77 (skipped) only when a tool needed cannot run here, saying which.
source "$(dirname "$0")/lib.sh"

for tool in dpkg-buildpackage dh lintian dpkg-deb dpkg-parsechangelog unshare man; do
    command -v "$tool" >/dev/null ||
        { echo "SKIP: $tool is not installed (scripts/deps.sh installs debhelper, dpkg-dev, lintian, man-db)"; exit 77; }
done
if [ "$(id -u)" -eq 0 ]; then ns=(unshare --mount --propagation private); else ns=(unshare --map-root-user --mount); fi
"${ns[@]}" true 2>"$E2E_DIR/ns.err" ||
    { echo "SKIP: cannot make a mount namespace here (${ns[*]}): $(cat "$E2E_DIR/ns.err")"; exit 77; }

deb=$(JOBS=${JOBS:-2} "$SINKD_SOURCE_DIR/scripts/build-deb.sh" "$E2E_DIR/deb" 2>"$E2E_DIR/build-deb.err" | tail -1) ||
    fail "package build failed: $(tail -20 "$E2E_DIR/build-deb.err")"
[ -f "$deb" ] || fail "no package: $(tail -5 "$E2E_DIR/build-deb.err")"
root="$E2E_DIR/root"
dpkg-deb -x "$deb" "$root" || fail "dpkg-deb -x failed"
dpkg-deb -e "$deb" "$E2E_DIR/control" || fail "dpkg-deb -e failed"

# The FHS layout, the units, the config file as a conffile, the user made by postinst.
for f in usr/bin/sinkd etc/sinkd/sinkd.conf lib/systemd/system/sinkd.service \
    lib/systemd/system/sinkd-timestamp.timer usr/share/man/man1/sinkd.1.gz \
    usr/share/man/man1/sinkd-serve.1.gz usr/share/sinkd/plugx-countries.csv \
    usr/share/sinkd/npm/asn/asn-ipv4.csv usr/share/sinkd/npm/asn/ROUTEVIEWS-LICENSE \
    usr/share/sinkd/npm/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb \
    usr/share/doc/sinkd/copyright usr/share/doc/sinkd/operations.md; do
    [ -e "$root/$f" ] || fail "the package has no /$f"
done
grep -qx "/etc/sinkd/sinkd.conf" "$E2E_DIR/control/conffiles" || fail "sinkd.conf is not a conffile"
grep -q "adduser --system" "$E2E_DIR/control/postinst" || fail "postinst makes no system user"
grep -q "^User=sinkd" "$root/lib/systemd/system/sinkd.service" || fail "sinkd.service does not run as sinkd"
grep -q "^ExecStart=/usr/bin/sinkd serve --config /etc/sinkd/sinkd.conf" "$root/lib/systemd/system/sinkd.service" ||
    fail "sinkd.service does not start /usr/bin/sinkd with the config file"
if grep -aq "$E2E_DIR" "$root/usr/bin/sinkd"; then
    fail "the installed binary holds its build path (it must read /usr/share/sinkd only)"
fi
[ "$(dpkg-deb -f "$deb" Version)" = "$("$root/usr/bin/sinkd" --version | cut -d' ' -f2)" ] ||
    fail "package version $(dpkg-deb -f "$deb" Version) != sinkd --version"

# The run, inside the namespace: installed binary, installed data and config at their paths,
# no SINKD_DATA_DIR, the source tree (and so its data/ and build trees) hidden.
port=$(free_port)
state="$E2E_DIR/state"
unset SINKD_DATA_DIR
as_root=()
[ "$(id -u)" -ne 0 ] || as_root=(--allow-root)
"${ns[@]}" bash -euo pipefail -s -- "$root" "$SINKD_SOURCE_DIR" "$state" "$port" "$E2E_DIR" \
    "${as_root[@]}" >"$E2E_DIR/run.log" 2>&1 <<'INNER' || fail "installed run failed: $(tail -30 "$E2E_DIR/run.log")"
root=$1 src=$2 state=$3 port=$4 dir=$5
shift 5
mkdir -p /usr/share/sinkd /etc/sinkd
mount --bind "$root/usr/share/sinkd" /usr/share/sinkd
mount --bind "$root/etc/sinkd" /etc/sinkd
mount -t tmpfs -o size=1m,mode=0 none "$src"
[ -z "$(ls -A "$src")" ] || { echo "source tree still visible"; exit 1; }
sinkd="$root/usr/bin/sinkd"
"$sinkd" serve "$@" --config /etc/sinkd/sinkd.conf --state "$state" --listen "127.0.0.1:$port" \
    --trusted-proxy 127.0.1.0/24 --ready-file "$dir/ready" 2>"$dir/serve.log" &
pid=$!
for _ in $(seq 1 200); do
    [ -f "$dir/ready" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "installed serve exited during start:"; cat "$dir/serve.log"; exit 1; }
    sleep 0.05
done
[ -f "$dir/ready" ] || { echo "installed serve not ready"; exit 1; }
"$sinkd" swarm --target "127.0.0.1:$port" --bots 60 --duration 3 --source-net 127.0.1.0/24 \
    --json "$dir/swarm.json" >"$dir/swarm.txt"
kill -TERM "$pid"
wait "$pid"
"$sinkd" report --state "$state" --format summary-json >"$dir/summary.json"
echo "installed run done"
INNER
python3 - "$E2E_DIR/swarm.json" "$E2E_DIR/summary.json" <<'PY' || fail "the installed run's results: $(cat "$E2E_DIR/run.log")"
import json, sys
swarm, summary = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert swarm["bots_replied"] == 60, f"swarm: {swarm['bots_replied']} of 60 bots got a reply"
assert summary["unique_bots"] == 60, f"report: {summary['unique_bots']} bots"
ccs = {r["cc"] for r in summary["top_countries"]}
assert ccs - {"ZZ"}, f"no country from the installed MMDB: {ccs}"
assert any(r.get("as_name") not in (None, "unknown") for r in summary["top_asns"]), \
    f"no AS name from the installed ASN table: {summary['top_asns']}"
print(f"installed run: 60 bots, countries {sorted(ccs)[:5]}...")
PY
grep -q "sinkd: serving" "$E2E_DIR/serve.log" || fail "no serving line from the installed binary"

# The installed man pages are the installed binary's --help.
python3 "$SINKD_SOURCE_DIR/tests/e2e/man_compare.py" "$root/usr/bin/sinkd" "$root/usr/share/man/man1" ||
    fail "installed man pages differ from the installed binary's --help"
echo "package install: OK ($(basename "$deb"), $(grep -c . "$E2E_DIR/deb/lintian.log") lintian lines)"
