#!/usr/bin/env bash
# natx-engine integration test: 1 GiB client->upstream (splice and uring) and 256 MiB upstream->client, sha256 on both ends.
# The case lives in engine_test.py (bulk); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" bulk
