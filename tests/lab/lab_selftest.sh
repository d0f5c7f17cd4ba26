#!/usr/bin/env bash
# The NAT lab checks itself: every NAT kind and topology of tests/lab/natlab.sh behaves as the
# tests that use it assume. With natx-stund on two relay addresses and natx-stunc in site A:
#  - eim:  one source port maps to the same public port for two destinations, and that port is
#          the router's conntrack mapping; an unrelated public host cannot get in;
#  - sym:  the same source port maps to different public ports for different destinations;
#  - full: an unrelated public host reaches site A through the mapped port;
#  - routed: a TTL-2 datagram from site A dies in the core (NAT B never sees it); flat: it
#          reaches NAT B (which then holds a conntrack entry for it).
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter python3; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
UDP=$NATX_SRC/tests/lab/udp.py
TAG=nls$(($$ % 100000))
PIDS=()

stop_all() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=()
	natlab_down
}
trap stop_all EXIT

# lab TOPO NAT_A NAT_B - a fresh lab with STUN responders on both relay addresses.
lab() {
	stop_all
	ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
		skip "cannot create network namespaces"
	natlab_up "$TAG" "$@" || fail "natlab_up $*"
	nl_bg "$NL_RELAY" "$NATX_BIN/natx-stund" --listen "$NL_RELAY_IP:3478" >/dev/null 2>&1
	PIDS+=($!)
	nl_bg "$NL_RELAY" "$NATX_BIN/natx-stund" --listen "$NL_RELAY_IP2:3479" >/dev/null 2>&1
	PIDS+=($!)
	nl_bg "$NL_RELAY" "$NATX_BIN/natx-stund" --listen "$NL_RELAY_IP:3479" >/dev/null 2>&1
	PIDS+=($!)
	sleep 0.3
}

# mapped NS SRC_PORT SERVER:PORT - the public address the server saw.
mapped() {
	nl_exec "$1" "$NATX_BIN/natx-stunc" "$3" --bind "0.0.0.0:$2" --timeout-ms 2000 |
		sed -n 's/^mapped //p'
}

check_eim() {
	local m1 m2 ct
	m1=$(mapped "$NL_A" 40000 "$NL_RELAY_IP:3478")
	m2=$(mapped "$NL_A" 40000 "$NL_RELAY_IP2:3479")
	[ -n "$m1" ] && [ -n "$m2" ] || fail "$1: no STUN answer ($m1 / $m2)"
	[ "${m1%:*}" = "$NL_A_PUB" ] || fail "$1: mapped address $m1 is not NAT A's $NL_A_PUB"
	[ "$m1" = "$m2" ] || fail "$1: endpoint-independent NAT mapped 40000 to $m1 and $m2"
	ct=$(nl_conntrack_port "$NL_NAT_A" udp 40000 "$NL_RELAY_IP" 3478)
	[ "$ct" = "${m1##*:}" ] || fail "$1: STUN says port ${m1##*:}, conntrack says '$ct'"
	echo "ok: $1: 40000 -> $m1 for both destinations (conntrack agrees)"
}

check_sym() {
	local m1 m2 m3
	m1=$(mapped "$NL_A" 40001 "$NL_RELAY_IP:3478")
	m2=$(mapped "$NL_A" 40001 "$NL_RELAY_IP2:3479")
	m3=$(mapped "$NL_A" 40001 "$NL_RELAY_IP:3479")
	[ -n "$m1" ] && [ -n "$m2" ] && [ -n "$m3" ] || fail "$1: no STUN answer ($m1 / $m2 / $m3)"
	[ "$m1" != "$m2" ] || [ "$m1" != "$m3" ] ||
		fail "$1: symmetric NAT mapped 40001 to $m1 for three destinations"
	echo "ok: $1: 40001 -> $m1, $m2, $m3 (endpoint-dependent)"
}

# unsolicited KIND - after A talked to the relay from 40002, a datagram to NAT A's public 40002
# from a public host A never talked to (the relay's second address) reaches A only through a
# full-cone NAT.
unsolicited() {
	local m port got
	m=$(mapped "$NL_A" 40002 "$NL_RELAY_IP:3478")
	port=${m##*:}
	[ -n "$port" ] || fail "$1: no STUN answer"
	got=$(mktemp)
	nl_exec "$NL_A" python3 "$UDP" recv --bind 40002 --timeout 2 >"$got" &
	local rp=$!
	sleep 0.3
	nl_exec "$NL_RELAY" python3 - "$NL_RELAY_IP2" "$NL_A_PUB" "$port" <<-'EOF'
		import socket, sys
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.bind((sys.argv[1], 5555))
		s.sendto(b"unsolicited", (sys.argv[2], int(sys.argv[3])))
	EOF
	wait $rp
	local rc=$?
	if [ "$2" = yes ]; then
		[ $rc = 0 ] && grep -q "^$NL_RELAY_IP2:5555 unsolicited" "$got" ||
			fail "$1: full cone: the unrelated host's datagram did not reach A ($(cat "$got"))"
		echo "ok: $1: an unrelated public host reaches A through $m"
	else
		[ $rc != 0 ] || fail "$1: an unrelated host got through a filtering NAT: $(cat "$got")"
		echo "ok: $1: an unrelated public host is filtered"
	fi
	rm -f "$got"
}

# ttl2 TOPO - whether a TTL-2 datagram from A to NAT B's public address reaches NAT B.
ttl2() {
	nl_exec "$NL_A" python3 "$UDP" send --bind 40003 --ttl 2 "$NL_B_PUB" 40003 ttl-probe ||
		fail "$1: could not send the TTL-2 datagram"
	sleep 0.3
	local seen
	seen=$(nl_exec "$NL_NAT_B" conntrack -L -p udp --dport 40003 2>/dev/null | grep -c .)
	if [ "$1" = routed ]; then
		[ "$seen" = 0 ] || fail "routed: a TTL-2 datagram crossed the core to NAT B"
		# The same datagram with a normal TTL does reach NAT B: the check above can fail.
		nl_exec "$NL_A" python3 "$UDP" send --bind 40004 "$NL_B_PUB" 40004 probe ||
			fail "$1: could not send"
		sleep 0.3
		nl_exec "$NL_NAT_B" conntrack -L -p udp --dport 40004 2>/dev/null | grep -q . ||
			fail "routed: a normal datagram from A did not reach NAT B"
		echo "ok: routed: a TTL-2 datagram from A expires in the core"
	else
		[ "$seen" != 0 ] || fail "flat: a TTL-2 datagram from A did not reach NAT B"
		echo "ok: flat: a TTL-2 datagram from A reaches NAT B"
	fi
}

lab routed eim sym
check_eim "routed eim"
unsolicited "routed eim" no
ttl2 routed
lab routed sym eim
check_sym "routed sym"
lab routed full eim
check_eim "routed full"
unsolicited "routed full" yes
lab flat eim eim
check_eim "flat eim"
ttl2 flat
stop_all
echo "PASS: NAT lab behaves as documented"
