#!/usr/bin/env bash
# plugx_family_c_vectors_test.sh -- the family C lines of tests/vectors/plugx-vectors.txt are
# exactly what tests/python/plugx_family_c.py (a transcription of the public decoder's arithmetic,
# independent of sinkd) prints; proto_plugx_test checks sinkd's cipher against the same lines.
set -euo pipefail
: "${SINKD_SOURCE_DIR:?}"
command -v python3 >/dev/null || { echo "SKIP: python3 not found" >&2; exit 77; }
python3 "$SINKD_SOURCE_DIR/tests/python/plugx_family_c.py" --check \
    "$SINKD_SOURCE_DIR/tests/vectors/plugx-vectors.txt" ||
    { echo "FAIL: family C vectors differ from the Python transcription" >&2; exit 1; }
echo "ok: family C vectors match the Python transcription of the public decoder"
