#!/usr/bin/env bash
# UDP services between two natx nodes across real NATs (tests/lab/natlab.sh, routed core;
# docs/udp-punch.md): a natx relay R, nodes A and B behind Linux NAT routers. B reserves on R,
# runs a UDP echo service in its namespace and exposes it (`udp expose echo`); A connects with
# `connect nodeB --service echo --local udp:127.0.0.1:0` (B known only by its /p2p-circuit
# address), so coordination runs over the relayed libp2p connection and both sides learn their
# public UDP address from R's STUN responder. Two local clients then echo 1000 numbered
# datagrams each (sizes 1..1200 B, each echo compared byte for byte, so a datagram delivered to
# the wrong client fails the test).
#  - eim/eim: the connection's path becomes udp-direct, A counts one punch success; the 2000
#    datagrams pass through B's punched socket (B's direct-in counter >= 2000) and R's relayed
#    bytes grow by less than 64 KiB while about 1.2 MB are echoed. Garbage to B's punched port
#    (random bytes, a probe with the session id and a wrong MAC, a data frame with the session
#    id and a wrong tag, a data frame of another session) is counted as garbage / bad probe /
#    auth failure and changes nothing else: no datagram reaches the echo service, no flow is
#    made, the path stays direct, and a further echo run still works.
#  - sym/full: the same as eim/eim (B's full-cone NAT lets A's probes from A's unpredictable
#    port in, and B's answer goes back through A's mapping).
#  - sym/eim and eim/sym: the 3 normal rounds fail, the many-probe round (2048 TTL-2 guesses
#    from the endpoint-independent side, 256 fresh sockets on the symmetric side) gets a
#    direct path (miss probability about 3e-4 per case with Linux's random-fully mapping);
#    then the same checks as eim/eim.
#  - sym/sym: punching fails after its 4 rounds (A counts a punch failure, path udp-relayed) and
#    the same 2000-datagram echo completes through R (R's relayed bytes grow by at least the
#    echoed bytes). Loss: the relayed path is a reliable stream, so nothing should be lost; the
#    client resends an unanswered datagram after 1 s and the test prints the resend count.
# Prints a matrix (NAT pair, path, time to direct, datagrams direct/relayed at B, R's bytes).
# About 55 s. Skips (77) without root, namespaces or tools.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	for n in r a b; do
		tail -n 12 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	for n in a b; do
		ctl "$n" --json udp ls 2>/dev/null | jq -c . | cut -c1-1500 | sed "s/^/    udp ls $n: /"
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
PY=$NATX_SRC/tests/lab/udp_echo.py
TAG=up$(($$ % 100000))
T=$(mktemp -d /tmp/up-lab.XXXXXX)
PIDS=()
MATRIX=()

trap 'natlab_stop; rm -rf "$T"' EXIT

ctl() { nl_ctl "$@"; }

relayed_bytes() {
	ctl r --json relay status | jq -r .counters.bytes_relayed
}

# bsess FIELD - a field of B's (only) UDP session
bsess() {
	ctl b --json udp ls | jq -r ".sessions[0]$1"
}

# echo_run N TAG... - one client per TAG, N datagrams each, concurrently; all must pass
echo_run() {
	local n=$1 t pids=() rc=0
	shift
	for t in "$@"; do
		nl_exec "$NL_A" python3 "$PY" client "$LPORT" "$n" "$t" >"$T/cl.$t" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	for t in "$@"; do
		echo "    client $t: $(cat "$T/cl.$t")"
	done
	[ $rc = 0 ] || fail "$LAB: echo run failed"
}

# garbage - bytes to B's punched socket that must change nothing but the reject counters
garbage() {
	local sid pport b0 b1 hdr
	sid=$(bsess .sid)
	pport=$(bsess .punch_port)
	[ -n "$pport" ] && [ "$pport" != null ] || fail "$LAB: B's session has no punch port"
	ctl b --json udp ls >"$T/g0.json"
	b0=$(jq -c '.sessions[0] | [.counters, .flows, .path]' "$T/g0.json")
	# random bytes; a probe (magic 0E4E5850, v1, PROBE) with the session id and a wrong MAC;
	# a data frame (magic 0D4E5844) with the session id, flow 1, seq 999 and a wrong tag; a
	# data frame of another session
	nl_exec "$NL_B" python3 "$PY" send "$NL_B_IP" "$pport" 00ff13371337deadbeefcafef00d
	nl_exec "$NL_B" python3 "$PY" send "$NL_B_IP" "$pport" \
		0e4e5850010100$(printf '00')"$sid"000000070123456789abcdef0123456789abcdef
	hdr=0d4e5844"$sid"0000000100000000000003e7
	nl_exec "$NL_B" python3 "$PY" send "$NL_B_IP" "$pport" "${hdr}68656c6c6f0123456789abcdef0123456789abcdef"
	nl_exec "$NL_B" python3 "$PY" send "$NL_B_IP" "$pport" \
		0d4e58441111111111111111000000010000000000000001aabbccddeeff00112233445566778899aabbcc
	sleep 0.5
	ctl b --json udp ls >"$T/g1.json"
	jq -e --argjson a "$(jq '.sessions[0].counters' "$T/g0.json")" '.sessions[0].counters as $b |
		($b.garbage - $a.garbage) == 2 and ($b.probes_bad - $a.probes_bad) == 1 and
		($b.auth_failed - $a.auth_failed) == 1 and $b.datagrams_direct_in == $a.datagrams_direct_in and
		$b.datagrams_relayed_in == $a.datagrams_relayed_in and $b.probes_ok <= $a.probes_ok + 2' \
		"$T/g1.json" >/dev/null || fail "$LAB: garbage changed more than the reject counters: $b0 -> $(jq -c \
		'.sessions[0] | [.counters, .flows, .path]' "$T/g1.json")"
	jq -e --argjson f "$(jq '.sessions[0].flows' "$T/g0.json")" '.sessions[0].flows == $f and
		.sessions[0].path == "udp-direct"' "$T/g1.json" >/dev/null ||
		fail "$LAB: garbage made a flow or changed the path"
	echo "    garbage: 4 datagrams rejected (2 garbage, 1 bad probe, 1 auth failure), nothing else changed"
}

# udp_lab NAT_A NAT_B EXPECT - one lab (EXPECT direct or relayed), a matrix row.
udp_lab() {
	local na=$1 nb=$2 expect=$3 r_addr b_circ eport path="" t_direct=- b0 b1 t0 t1 din rin
	LAB="routed $na/$nb"
	natlab_stop
	ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
		skip "cannot create network namespaces"
	natlab_up "$TAG" routed "$na" "$nb" || fail "natlab_up routed $na $nb"
	# R answers STUN Binding requests (the user-space responder: XDP on a veth needs a peer
	# program, tests/bpf/lab_stun.sh covers the reflector itself)
	nl_natxd r "$NL_RELAY" 4001 NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0 \
		NAT_TRAVERSAL_STUN_FALLBACK=always
	# DCUtR off: the libp2p connection stays relayed, so R's counters see every relayed byte
	nl_natxd a "$NL_A" 4001 NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING=false
	nl_natxd b "$NL_B" 4001 NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING=false
	for _ in $(seq 1 100); do
		ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null &&
			ctl r --json bpf status 2>/dev/null | jq -e '.bpf.fallback.running == true' >/dev/null && break
		sleep 0.1
	done
	ctl r --json bpf status | jq -e '.bpf.fallback.running == true' >/dev/null ||
		fail "$LAB: R's STUN responder is not running: $(ctl r --json bpf status)"
	r_addr=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$(jq -r .peer_id "$T/r/peer.json")
	ctl b --json reserve "$r_addr" >"$T/rsv.json" 2>&1 || fail "$LAB: B reserve: $(cat "$T/rsv.json")"
	b_circ=$(jq -r .circuit_addr "$T/rsv.json")
	rm -f "$T/echo.port"
	nl_exec "$NL_B" python3 "$PY" server >"$T/echo.port" 2>"$T/echo.err" &
	PIDS+=($!)
	for _ in $(seq 1 50); do
		[ -s "$T/echo.port" ] && break
		sleep 0.1
	done
	eport=$(head -1 "$T/echo.port" 2>/dev/null)
	[ -n "$eport" ] || fail "echo server in site B did not start"
	ctl b --json udp expose echo "127.0.0.1:$eport" >"$T/exp.json" || fail "$LAB: udp expose: $(cat "$T/exp.json")"
	jq -e '.protocol == "/natx/udp/echo/1.0.0"' "$T/exp.json" >/dev/null || fail "$LAB: expose reply $(cat "$T/exp.json")"
	ctl a --json node set nodeB "$b_circ" >/dev/null || fail "$LAB: node set"
	# a service B does not offer is refused before any port opens
	ctl a --json connect nodeB --service nope --local udp:127.0.0.1:0 >"$T/bad.json" 2>&1 &&
		fail "$LAB: connect to a service B does not offer succeeded"
	t0=$(date +%s%N)
	ctl a --json connect nodeB --service echo --local udp:127.0.0.1:0 >"$T/c.json" ||
		fail "$LAB: connect: $(cat "$T/c.json")"
	LPORT=$(jq -r .connection.local "$T/c.json" | sed 's/.*://')
	CID=$(jq -r .connection.id "$T/c.json")
	[ -n "$LPORT" ] && [ "$LPORT" != 0 ] || fail "$LAB: no local port in $(cat "$T/c.json")"
	# wait for the punch to end: direct, or A's failure after its rounds
	for _ in $(seq 1 150); do
		ctl a --json udp ls >"$T/a.json" 2>/dev/null
		path=$(jq -r '.sessions[0].path' "$T/a.json")
		[ "$path" = udp-direct ] && break
		jq -e '.counters.punch_failures >= 1' "$T/a.json" >/dev/null && break
		sleep 0.1
	done
	t1=$(date +%s%N)
	ctl a --json connections >"$T/conns.json"
	jq -e --arg id "$CID" --arg p "$path" '.connections[] | select((.id | tostring) == $id) |
		.path == $p and (.reason | length) > 0' "$T/conns.json" >/dev/null ||
		fail "$LAB: connections does not show path $path: $(cat "$T/conns.json")"
	b0=$(relayed_bytes)
	if [ "$expect" = direct ]; then
		[ "$path" = udp-direct ] || fail "$LAB: path is '$path', not udp-direct: $(jq -c .sessions "$T/a.json")"
		jq -e '.counters.punch_successes == 1 and .counters.punch_attempts == 1' "$T/a.json" >/dev/null ||
			fail "$LAB: A's punch counters: $(jq -c .counters "$T/a.json")"
		t_direct=$(jq -r '.sessions[0].time_to_direct_ms' "$T/a.json")
		echo "    $LAB: direct after ${t_direct} ms of punching ($(( (t1 - t0) / 1000000 )) ms from connect); $(jq -r '.sessions[0].reason' "$T/a.json")"
		echo_run 1000 c1 c2
		b1=$(relayed_bytes)
		[ $((b1 - b0)) -lt 65536 ] || fail "$LAB: $((b1 - b0)) bytes went through R after the punch"
		din=$(bsess .counters.datagrams_direct_in)
		rin=$(bsess .counters.datagrams_relayed_in)
		[ "$din" -ge 2000 ] || fail "$LAB: B received only $din datagrams directly"
		garbage
		echo_run 100 c3
		[ "$(bsess .path)" = udp-direct ] || fail "$LAB: B's path is not direct after the garbage"
	else
		[ "$path" = udp-relayed ] || fail "$LAB: path is '$path', not udp-relayed"
		jq -e '.counters.punch_failures == 1 and .counters.punch_successes == 0' "$T/a.json" >/dev/null ||
			fail "$LAB: A's punch counters: $(jq -c .counters "$T/a.json")"
		echo "    $LAB: $(jq -r '.sessions[0].reason' "$T/a.json")"
		echo_run 1000 c1 c2
		b1=$(relayed_bytes)
		din=$(bsess .counters.datagrams_direct_in)
		rin=$(bsess .counters.datagrams_relayed_in)
		[ "$rin" -ge 2000 ] || fail "$LAB: B received only $rin datagrams over the relay"
		[ "$din" = 0 ] || fail "$LAB: $din datagrams went direct on a failed punch"
		# 2 x 1000 datagrams of 1..1200 bytes (about 600 B on average) each way
		[ $((b1 - b0)) -ge 2000000 ] || fail "$LAB: R relayed only $((b1 - b0)) bytes for the echo"
	fi
	ctl a --json metrics | jq -e '.metrics.udp.punch_attempts == 1' >/dev/null ||
		fail "$LAB: natxd metrics do not count the punch attempt"
	ctl a connections close "$CID" >/dev/null || fail "$LAB: connections close"
	ctl a --json udp ls | jq -e '.sessions | length == 0' >/dev/null || fail "$LAB: session left after close"
	echo "ok: $LAB: $path, datagrams at B direct $din / relayed $rin, R relayed $((b1 - b0)) bytes during the echo"
	MATRIX+=("$(printf '%-4s %-4s %-12s %14s %8s %8s %10s' "$na" "$nb" "$path" "$t_direct" "$din" "$rin" \
		"$((b1 - b0))")")
}

# UP_LABS (e.g. "sym:eim:direct") runs a subset, for debugging
for lab in ${UP_LABS:-eim:eim:direct sym:full:direct sym:eim:direct eim:sym:direct sym:sym:relayed}; do
	IFS=: read -r na nb expect <<<"$lab"
	udp_lab "$na" "$nb" "$expect"
done
natlab_stop
echo "matrix (UDP services through Linux NATs, routed core)"
printf '%-4s %-4s %-12s %14s %8s %8s %10s\n' NATA NATB PATH PUNCH_MS DIRECT RELAYED R_BYTES
for row in "${MATRIX[@]}"; do echo "$row"; done
echo "PASS: UDP hole punching across the NAT lab"
