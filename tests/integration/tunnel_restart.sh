#!/usr/bin/env bash
# tunnel integration test (restart): Server killed and restarted on the same ports: the client brings the service back.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" restart
