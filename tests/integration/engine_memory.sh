#!/usr/bin/env bash
# natx-engine integration test: 10,000 idle TCP flows stay under 100 MiB engine RSS.
# The case lives in engine_test.py (memory); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" memory
