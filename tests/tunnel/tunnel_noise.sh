#!/usr/bin/env bash
# tunnel integration test (noise): the encrypted transport end to end (tunnel_noise.py says
# what it asserts); exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_noise.py"
