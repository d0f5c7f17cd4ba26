#!/usr/bin/env bash
# tunnel integration test (hot_rm): Removing one service leaves another service's open flow and listener alive.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" hot_rm
