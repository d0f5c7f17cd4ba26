#!/usr/bin/env bash
# natx-engine integration test: 200 concurrent echo flows with per-flow sha256 (IPv4, both TCP modes) and 50 over IPv6.
# The case lives in engine_test.py (concurrent); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" concurrent
