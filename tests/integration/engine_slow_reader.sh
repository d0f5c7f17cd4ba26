#!/usr/bin/env bash
# natx-engine integration test: a stalled reader stops reads from upstream; engine memory stays bounded.
# The case lives in engine_test.py (slow_reader); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" slow_reader
