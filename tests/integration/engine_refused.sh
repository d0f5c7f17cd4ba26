#!/usr/bin/env bash
# natx-engine integration test: an upstream that refuses closes the client promptly and is counted.
# The case lives in engine_test.py (refused); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" refused
