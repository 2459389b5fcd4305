#!/usr/bin/env bash
# build-deb.sh OUTDIR -- the Debian package, built by the Debian tools from a clean copy of this
# tree: dpkg-buildpackage -us -uc -b (debhelper, debian/), then lintian, which must report no
# error or warning (every override in debian/sinkd.lintian-overrides says why). Leaves
# OUTDIR/sinkd_<version>_<arch>.deb and prints its path on the last line. `make deb` and
# tests/e2e/package_install_test.sh run it. data/npm must be there (make deps).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-deb.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
for f in asn/asn-ipv4.csv geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb \
    geo-whois-asn-country/geo-whois-asn-country-ipv4.csv; do
    [ -f "$here/data/npm/$f" ] || { echo "build-deb: data/npm/$f is missing: run make deps" >&2; exit 1; }
done
version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
work="$out/work"
rm -rf "$work"
mkdir -p "$work/sinkd-$version"
# The tree as it is (uncommitted edits included), without build output or VCS data.
tar -C "$here" --exclude=./build --exclude=./.git --exclude='./obj-*' --exclude=./debian/.debhelper \
    --exclude=./debian/sinkd --exclude=./debian/files --exclude='./debian/*.substvars' \
    --exclude='./debian/*.log' --exclude=./debian/debhelper-build-stamp --exclude=./out \
    -cf - . | tar -C "$work/sinkd-$version" -xf -
jobs=${JOBS:-$(nproc)}
(cd "$work/sinkd-$version" &&
    DEB_BUILD_OPTIONS="parallel=$jobs" dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1) || {
    # the compiler's or a tool's own error lines first: make's tail hides them
    grep -E "error:|warning:|Error [0-9]" "$out/build.log" | head -10 >&2 || true
    tail -10 "$out/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (full log: $out/build.log)" >&2
    exit 1
}
changes=$(ls "$work"/sinkd_"$version"_*.changes)
lintian --fail-on error,warning --display-info "$changes" >"$out/lintian.log" 2>&1 || {
    cat "$out/lintian.log" >&2
    echo "build-deb: lintian reports errors or warnings (log: $out/lintian.log)" >&2
    exit 1
}
deb=$(ls "$work"/sinkd_"$version"_*.deb)
mv "$deb" "$out/"
echo "build-deb: lintian: $(grep -c . "$out/lintian.log" || true) notes (errors and warnings: none)" >&2
echo "$out/$(basename "$deb")"
