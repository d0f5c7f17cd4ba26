#!/usr/bin/env bash
# tunnel integration test (udp): UDP echo from 50 visitor ports: every reply reaches the socket that asked.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" udp
