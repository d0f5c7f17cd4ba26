#!/usr/bin/env bash
# tunnel integration test (deadpeer): A frozen client is declared dead by the server's heartbeat timeout; when it thaws it reconnects.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" deadpeer
