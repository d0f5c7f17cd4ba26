#!/usr/bin/env bash
# natx-engine integration test: UDP sessions for 50 client ports, replies routed to the right client, idle expiry.
# The case lives in engine_test.py (udp); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" udp
