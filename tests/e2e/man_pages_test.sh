#!/usr/bin/env bash
# man_pages_test.sh -- issue 19 item 13: the man pages the build makes (scripts/help2roff.py,
# build/<tree>/man) are the --help texts: each page rendered by man(1) equals its command's
# --help line for line, every command has one and no page outlives its command. The installed
# package's pages are compared the same way in package_install_test.sh.
source "$(dirname "$0")/lib.sh"
: "${SINKD_BUILD_DIR:?}"
command -v man >/dev/null || { echo "SKIP: no man(1) to render the pages (apt-get install man-db)"; exit 77; }
python3 "$SINKD_SOURCE_DIR/tests/e2e/man_compare.py" "$SINKD_BINARY" "$SINKD_BUILD_DIR/man" ||
    fail "man pages differ from --help"
