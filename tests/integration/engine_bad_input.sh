#!/usr/bin/env bash
# natx-engine integration test: malformed --forward, port in use, unresolvable upstream: one line, exit 2.
# The case lives in engine_test.py (bad_input); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" bad_input
