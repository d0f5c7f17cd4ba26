#!/usr/bin/env bash
# natx-engine integration test: SIGHUP reloads --forwards-file and keeps an open flow alive.
# The case lives in engine_test.py (sighup); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" sighup
