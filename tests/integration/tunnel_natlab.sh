#!/usr/bin/env bash
# tunnel integration test (natlab): a node behind a MASQUERADE router namespace exposes a TCP and a UDP echo; a visitor on the public segment reaches both through the relay (64 MiB sha256, 20 UDP ports). Needs root and network namespaces (77 otherwise).
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" natlab
