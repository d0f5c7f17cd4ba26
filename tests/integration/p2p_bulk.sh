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
: "${NATX_BIN:?NATX_BIN must point at build/bin}"
SRC=${NATX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=$SRC/tests/integration/p2p_bulk.py
T=$(mktemp -d /tmp/p2d-bulk.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for n in a b; do tail -n 8 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"; done
	exit 1
}
pass() { echo "PASS $*"; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

ctl() { local n=$1; shift; timeout 60 "$NATX_BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"; }
start_natxd() { # NAME
	mkdir -p "$T/$1"
	XDG_RUNTIME_DIR=$T/$1/xdg XDG_STATE_HOME=$T/$1/xs NAT_TRAVERSAL_ENABLE_LIBP2P=true \
		NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 \
		"$NATX_BIN/natxd" --socket "$T/$1/ctl.sock" --state-dir "$T/$1/state" --listen off \
		>>"$T/$1/natxd.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		ctl "$1" --json peer >"$T/$1/peer.json" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "natxd $1 did not come up"
}
start_natxd a
start_natxd b
A_ADDR=$(jq -r '.listen_addrs[0] + "/p2p/" + .peer_id' "$T/a/peer.json")

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
