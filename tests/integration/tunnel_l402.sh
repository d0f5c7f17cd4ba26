#!/usr/bin/env bash
# tunnel integration test (l402): a paid service: the client authenticates with the L402 macaroon (kind 2) and the payment preimage as key; a token, another payment's macaroon or a wrong preimage are refused; the byte quota and the expiry end the service and its flows (GOAWAY, counters).
# The case lives in tunnel_test.py; exit 77 = skipped.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/tunnel_test.py" l402
