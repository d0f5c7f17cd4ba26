#!/usr/bin/env bash
# natx-engine integration test: --idle-timeout closes an idle TCP flow; an unreachable or
# black-holed upstream (inside a private namespace) closes the client promptly / on time.
# The case lives in engine_test.py (timeouts); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/engine_test.py" timeouts
