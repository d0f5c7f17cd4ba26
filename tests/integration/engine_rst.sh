#!/usr/bin/env bash
# natx-engine integration test: a reset on either side reaches the other side as a reset.
# The case lives in engine_test.py (rst); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" rst
