# evidence_lib.sh -- shared setup for the evidence e2e tests (sourced, not a test itself):
# builds bench/evidence_tool against the build's static libraries and the Go verifier.
set -euo pipefail
: "${SINKD_SOURCE_DIR:?}" "${SINKD_BUILD_DIR:?}"
work=$(mktemp -d /tmp/sinkd-evidence-e2e.XXXXXX)
# Every read of victims' data needs a justification (docs/evidence.md, "Access records").
E2E_WHY="end-to-end test $(basename "$0")"
trap 'rm -rf "$work"' EXIT
bash "$SINKD_SOURCE_DIR/bench/evidence_build_tool.sh" "$SINKD_BUILD_DIR" "$work/evidence_tool"
tool="$work/evidence_tool"
# Prefer the real binary's subcommands once main.c dispatches them.
sinkd=("$tool")
if [ -n "${SINKD_BINARY:-}" ] && [ -x "$SINKD_BINARY" ] && "$SINKD_BINARY" verify --help >/dev/null 2>&1; then
    sinkd=("$SINKD_BINARY")
fi
gocheck="$work/tlogcheck"
(cd "$SINKD_SOURCE_DIR/tests/go" && GOCACHE="$work/gocache" GO111MODULE=off GOPATH=/usr/share/gocode \
    GOFLAGS=-mod=mod go build -o "$gocheck" tlogcheck.go)
pycheck=(python3 "$SINKD_SOURCE_DIR/tests/python/verify_bundle.py")
