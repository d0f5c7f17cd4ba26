#!/usr/bin/env bash
# Circuit Relay v2 across real NATs (tests/lab/natlab.sh): a natx relay R on the public side
# (NAT_TRAVERSAL_ENABLE_RELAY_SERVER, unlimited circuits), natx nodes A and B each behind its own
# Linux NAT router, every node a natxd with its own engine in its own namespace. For each lab
#   routed eim/eim, routed sym/sym, flat eim/sym:
#  - B reserves on R (its reservation connection goes out through NAT B);
#  - A cannot dial B directly at NAT B's public address (filtered), but pings (3) and
#    identifies B by its /p2p-circuit address, and moves data through `p2p forward` (A) to B's
#    circuit address -> `p2p expose` (B) -> echo and back, SHA-256 equal (64 MiB in the first
#    lab, 8 MiB in the others);
#  - R's counters show the reservation, the circuits and the relayed bytes, and the connections
#    R saw came from the NAT routers' public addresses (the NATs were crossed).
# Prints a matrix (NAT pair x path, RTT, MiB, seconds). The transfer stays on the relayed
# connection it was opened on even where DCUtR upgrades the pair (tests/p2p/dcutr_lab.sh).
# Skips (77) without root, namespaces or the tools.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	for n in r a b; do
		tail -n 8 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter python3 jq; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
PY=$NATX_SRC/tests/integration/p2p_bridge.py
TAG=rly$(($$ % 100000))
T=$(mktemp -d /tmp/rly-lab.XXXXXX)
PIDS=()
MATRIX=()

trap 'natlab_stop; rm -rf "$T"' EXIT

ctl() { nl_ctl "$@"; }

# node NAME NS [ENV=VALUE...] - natxd with libp2p on 0.0.0.0:4001 in namespace NS.
node() {
	local n=$1 ns=$2
	shift 2
	nl_natxd "$n" "$ns" 4001 "$@"
}

# relay_lab TOPO NAT_A NAT_B MIB - one lab, the checks above, a matrix row.
relay_lab() {
	local topo=$1 na=$2 nb=$3 mib=$4 r_addr b_id b_circ eport fport t0 t1 rtt
	natlab_stop
	ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
		skip "cannot create network namespaces"
	natlab_up "$TAG" "$topo" "$na" "$nb" || fail "natlab_up $topo $na $nb"
	node r "$NL_RELAY" NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
	node a "$NL_A"
	node b "$NL_B"
	for _ in $(seq 1 100); do
		ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
		sleep 0.1
	done
	r_addr=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$(jq -r .peer_id "$T/r/peer.json")
	b_id=$(jq -r .peer_id "$T/b/peer.json")
	ctl b --json reserve "$r_addr" >"$T/rsv.json" 2>&1 || fail "$topo $na/$nb: B reserve: $(cat "$T/rsv.json")"
	b_circ=$(jq -r .circuit_addr "$T/rsv.json")
	[ "$b_circ" = "$r_addr/p2p-circuit/p2p/$b_id" ] || fail "circuit address $b_circ"
	# the direct path is closed: NAT B filters unsolicited inbound connections
	if ctl a ping "/ip4/$NL_B_PUB/tcp/4001/p2p/$b_id" >"$T/direct.out" 2>&1; then
		fail "$topo $na/$nb: reached B directly through a filtering NAT"
	fi
	ctl a --json ping -n 3 "$b_circ" >"$T/ping.json" 2>&1 || fail "$topo $na/$nb: ping via R: $(cat "$T/ping.json")"
	rtt=$(jq -r '.rtt_ms | max' "$T/ping.json")
	ctl a --json identify "$b_circ" >"$T/id.json" 2>&1 || fail "$topo $na/$nb: identify via R"
	jq -e --arg b "$b_id" '.peer_id == $b and (.agent_version | startswith("natx/"))' "$T/id.json" >/dev/null ||
		fail "identify record: $(cat "$T/id.json")"
	rm -f "$T/echo.port" # a previous lab's port must not be read
	nl_exec "$NL_B" python3 "$PY" echo-server >"$T/echo.port" 2>"$T/echo.err" &
	PIDS+=($!)
	for _ in $(seq 1 50); do
		[ -s "$T/echo.port" ] && break
		sleep 0.1
	done
	eport=$(cat "$T/echo.port" 2>/dev/null)
	[ -n "$eport" ] || fail "echo server in site B did not start"
	ctl b --json p2p expose /lab/echo/1.0.0 "127.0.0.1:$eport" >/dev/null || fail "expose on B"
	ctl a --json p2p forward /lab/echo/1.0.0 127.0.0.1:0 "$b_circ" >"$T/fwd.json" ||
		fail "forward on A: $(cat "$T/fwd.json")"
	fport=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
	t0=$(date +%s%N)
	nl_exec "$NL_A" timeout 200 python3 "$PY" client "$fport" $((mib * 1024 * 1024)) 1 >"$T/c" 2>&1 ||
		fail "$topo $na/$nb: $mib MiB via R: $(cat "$T/c")"
	t1=$(date +%s%N)
	ctl r --json relay status >"$T/rs.json"
	jq -e --argjson w $((2 * mib * 1024 * 1024)) '.counters.reservations_active == 1 and
		.counters.circuits_total >= 3 and .counters.bytes_relayed >= $w' "$T/rs.json" >/dev/null ||
		fail "R's counters: $(cat "$T/rs.json")"
	# R saw A and B at their NAT routers' public addresses
	ctl r --json peers >"$T/rp.json" || fail "R's peers"
	jq -e --arg a "/ip4/$NL_A_PUB/" --arg b "/ip4/$NL_B_PUB/" '
		([.peers[] | select(.addr | startswith($a))] | length) >= 1 and
		([.peers[] | select(.addr | startswith($b))] | length) >= 1' "$T/rp.json" >/dev/null ||
		fail "R did not see the NATs' public addresses: $(cat "$T/rp.json")"
	echo "ok: $topo $na/$nb: ping, identify and $mib MiB echoed through the natx relay"
	MATRIX+=("$(printf '%-7s %-4s %-4s %-8s %7s %6s %8s' "$topo" "$na" "$nb" relayed "$rtt" "$mib" \
		"$(((t1 - t0) / 1000000))")")
}

relay_lab routed eim eim 64
relay_lab routed sym sym 8
relay_lab flat eim sym 8
natlab_stop
echo "matrix (the transfer runs through the relay)"
printf '%-7s %-4s %-4s %-8s %7s %6s %8s\n' TOPO NATA NATB PATH RTT_MS MIB ECHO_MS
for row in "${MATRIX[@]}"; do echo "$row"; done
echo "PASS: circuit relay across the NAT lab"
