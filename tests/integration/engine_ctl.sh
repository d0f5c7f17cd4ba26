#!/usr/bin/env bash
# natx-engine integration test: control socket commands, error codes, garbage and oversized lines.
# The case lives in engine_test.py (ctl); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" ctl
