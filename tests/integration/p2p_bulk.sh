#!/usr/bin/env bash
# The issue's bulk bridging runs, natx <-> natx on loopback (two natxd, each with its engine):
# natxd A exposes /p2d/echo/1.0.0 -> a local TCP echo server, natxd B forwards a local port
# to it; client -> B (forward) -> libp2p stream -> A (expose) -> echo, and back.
#  - 256 MiB on one stream: SHA-256 of the bytes sent and of the bytes echoed back compared
#  - 50 concurrent bridged streams (on B's one libp2p connection to A) x 2 MiB, each compared
#  - both sides' `p2p ls`: 51 streams, none failed, none open, exact byte counts each way
#  - the engines' libp2p counters: one connection B -> A (the 51 streams shared it), none failed
# Every client run is bounded (240 s); the bytes are a seeded pseudo-random stream.
set -uo pipefail
NODES_TAG=p2d-bulk
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/nodes_lib.sh"
PY=$SRC/tests/integration/p2p_bulk.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
start_natxd a
start_natxd b
A_ADDR=$(addr_of a)

python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EPORT=$(cat "$T/echo.port")

ctl a --json p2p expose /p2d/echo/1.0.0 "127.0.0.1:$EPORT" >"$T/exp.json" || { cat "$T/exp.json"; fail "expose"; }
ctl b --json p2p forward /p2d/echo/1.0.0 127.0.0.1:0 "$A_ADDR" >"$T/fwd.json" || { cat "$T/fwd.json"; fail "forward"; }
FPORT=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')

BIG=$((256 << 20))
SMALL=$((2 << 20))
timeout 250 python3 "$PY" client "$FPORT" $BIG 1 11 >"$T/c1" 2>&1 || { cat "$T/c1"; fail "256 MiB on one stream"; }
pass "256 MiB on one bridged stream, SHA-256 equal: $(cat "$T/c1")"
timeout 250 python3 "$PY" client "$FPORT" $SMALL 50 100 >"$T/c2" 2>&1 || { cat "$T/c2"; fail "50 concurrent streams"; }
jq -e '.matched == 50' "$T/c2" >/dev/null || { cat "$T/c2"; fail "50 streams"; }
pass "50 concurrent bridged streams x 2 MiB, each SHA-256 equal: $(jq -c '{matched, seconds}' "$T/c2")"

want=$((BIG + 50 * SMALL))
# the bridges finish asynchronously after the client saw EOF: wait until none is open
for _ in $(seq 1 50); do
	ctl b --json p2p ls >"$T/lsb.json"
	ctl a --json p2p ls >"$T/lsa.json"
	[ "$(jq -s '[.[].services[].streams_open] | add' "$T/lsa.json" "$T/lsb.json")" = 0 ] && break
	sleep 0.1
done
jq -e --argjson w $want '.services[0] | .streams_total == 51 and .streams_failed == 0 and
	.streams_open == 0 and .bytes_to_p2p == $w and .bytes_to_tcp == $w' "$T/lsb.json" >/dev/null ||
	{ cat "$T/lsb.json"; fail "B's p2p ls"; }
jq -e --argjson w $want '.services[0] | .streams_total == 51 and .streams_failed == 0 and
	.streams_open == 0 and .bytes_to_p2p == $w and .bytes_to_tcp == $w' "$T/lsa.json" >/dev/null ||
	{ cat "$T/lsa.json"; fail "A's p2p ls"; }
ctl b --json peer >"$T/b/peer2.json"
ctl a --json peer >"$T/a/peer2.json"
jq -e '.counters.conns_out == 1 and .counters.conns_failed == 0' "$T/b/peer2.json" >/dev/null ||
	{ jq -c .counters "$T/b/peer2.json"; fail "B should have dialled A once"; }
jq -e '.counters.conns_in == 1 and .counters.conns_failed == 0' "$T/a/peer2.json" >/dev/null ||
	{ jq -c .counters "$T/a/peer2.json"; fail "A should have accepted one connection"; }
pass "p2p ls on both sides: 51 streams, 0 failed, $want bytes each way; one libp2p connection"
exit 0
