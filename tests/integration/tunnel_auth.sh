#!/usr/bin/env bash
# tunnel integration test (auth): Wrong credential and replayed handshakes are refused, logged and counted; another service keeps working.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" auth
