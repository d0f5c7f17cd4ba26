#!/usr/bin/env bash
# natx-engine integration test: bytes left in a dead flow's splice pipe never reach another flow.
# The case lives in engine_test.py (pipe_reuse); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" pipe_reuse
