#!/usr/bin/env bash
# tunnel integration test (concurrent): 100 visitors at once, each 1 MiB echoed, each checked by sha256; engines in splice mode, then in uring mode.
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" concurrent
