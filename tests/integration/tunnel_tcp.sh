#!/usr/bin/env bash
# tunnel integration test (tcp): Echo through the tunnel; 1 GiB visitor->service and 256 MiB back, sha256 both ends.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" tcp
