#!/usr/bin/env bash
# natx-engine integration test: FIN in each direction is propagated and the other direction keeps flowing.
# The case lives in engine_test.py (half_close); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" half_close
