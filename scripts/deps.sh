#!/usr/bin/env bash
# deps.sh -- install the Debian packages and pinned npm data sinkd needs; quiet and idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

packages=(
    build-essential cmake pkg-config clang libclang-rt-14-dev libfuzzer-14-dev
    libuv1-dev libssl-dev libjansson-dev libmaxminddb-dev libinih-dev libsqlite3-dev sqlite3
    libseccomp-dev libpq-dev postgresql libhttp-parser-dev libcmocka-dev libcurl4-openssl-dev
    libarchive-dev
    golang-go golang-golang-x-mod-dev python3 python3-cryptography
    nginx libnginx-mod-stream haproxy ca-certificates curl
    chromium
    debhelper dpkg-dev lintian man-db
)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$p")
    fi
done
# npm may come from Debian or be on the machine already (e.g. a newer Node.js); node also runs
# the dashboard's check (tests/e2e/dashboard_check.js).
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
# systemd-analyze checks the units in contrib/ (a container may lack systemd).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Pinned npm data packages: name, version, sha256 of the tarball `npm pack` returns.
npm_version=2.3.2026061719
npm_data=(
    "geo-whois-asn-country 2a3e609015884c93c2d398e777ce1d2d34cab026054c43559bff32b25669f606"
    "geo-whois-asn-country-mmdb 91757a1b06cdcd1955f292e4c4cfc54e091204f998e159a3187f7a2ef3724be0"
    "asn b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153"
)
dest="$here/data/npm"
mkdir -p "$dest"
for entry in "${npm_data[@]}"; do
    read -r name sum <<<"$entry"
    tgz="ip-location-db-$name-$npm_version.tgz"
    if [ -f "$dest/$name/.sha256" ] && [ "$(cat "$dest/$name/.sha256")" = "$sum" ]; then
        continue
    fi
    echo "deps: fetching @ip-location-db/$name@$npm_version"
    (cd "$dest" && npm pack --silent "@ip-location-db/$name@$npm_version" >/dev/null 2>&1)
    got=$(sha256sum "$dest/$tgz" | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
        echo "deps: $tgz: sha256 $got does not match pinned $sum" >&2
        rm -f "$dest/$tgz"
        exit 1
    fi
    rm -rf "$dest/$name"
    mkdir -p "$dest/$name"
    tar -xzf "$dest/$tgz" -C "$dest/$name" --strip-components=1
    rm -f "$dest/$tgz"
    echo "$sum" >"$dest/$name/.sha256"
    echo "$npm_version" >"$dest/$name/.version"
done
