#!/usr/bin/env bash
# tunnel integration test (limits): max_conns refuses extra visitors; the pending-handshake caps refuse silent connections per address; PROXY v2 towards the local service carries the visitor.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" limits
