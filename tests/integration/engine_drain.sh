#!/usr/bin/env bash
# natx-engine integration test: SIGTERM stops accepting, serves open flows, exits 0; drain deadline enforced.
# The case lives in engine_test.py (drain); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" drain
