#!/usr/bin/env bash
# natx-engine integration test: 200 concurrent flows across a two-namespace veth pair (natxengc*/natxengs*).
# The case lives in engine_test.py (veth); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" veth
