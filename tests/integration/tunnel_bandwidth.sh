#!/usr/bin/env bash
# tunnel integration test (bandwidth): bandwidth_kbps caps a service in both directions (kernel pacing on the relay's sockets), divided among its flows; another service is not capped.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" bandwidth
