#!/usr/bin/env bash
# Tests of failure of issue 9 in the NAT lab (routed core, tests/lab/natlab.sh), with natxd
# nodes whose libp2p connections ping every 1 s and count as dead after 3 s unanswered
# (NAT_TRAVERSAL_LIBP2P_KEEPALIVE_S / _TIMEOUT_S):
#  (a) sym/sym, a relayed flow (`connect B --local`, a sender streaming through the local port):
#      the relay (natxd + engine) is killed with SIGKILL. The application's connection ends
#      (reset or closed) within 15 s, A's log says which connection was lost and why, both
#      daemons and engines still answer, no stream stays open (p2p ls streams_open 0 on A and
#      B), no process is left over in A's or B's namespace; a relay is started again, B reserves
#      on it and a new connect moves 8 MiB intact through it.
#  (b) eim/eim, after the DCUtR upgrade: a flow on the direct connection (R's relayed bytes do
#      not grow), then the core drops every packet between the two sites (natlab_cut_direct).
#      The open flow (flow mode, docs/migration.md) finds the dead direct connection (its stall
#      probe or the keepalive) and goes on through the relay within 15 s without the
#      application's connection ending (R's relayed bytes grow, A counts a repair, A logs the
#      direct connection as lost); after the sender stops, streams are back to 0 on both sides,
#      and new flows - through the same local port and through a new connect - go through the
#      relay again, intact (R's relayed bytes grow by their size).
# The tunnel fallback, --no-paid and an unknown node are in tests/lab/connect_tunnel_mx.sh.
# Skips (77) without root, namespaces or tools.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	local n
	echo "FAIL: $*"
	for n in r r2 a b; do
		tail -n 12 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
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
XFER=$NATX_SRC/tests/lab/mx_xfer.py
TAG=mxf$(($$ % 100000))
T=$(mktemp -d /tmp/mx-fail.XXXXXX)
PIDS=()
declare -A NODE_PID
KA=(NAT_TRAVERSAL_LIBP2P_KEEPALIVE_S=1 NAT_TRAVERSAL_LIBP2P_KEEPALIVE_TIMEOUT_S=3)

trap 'natlab_stop; rm -rf "$T"' EXIT

ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
	skip "cannot create network namespaces"

ctl() { nl_ctl "$@"; }

node_start() {
	local n=$1 ns=$2
	shift 2
	nl_natxd "$n" "$ns" 4001 "${KA[@]}" "$@"
	NODE_PID[$n]=${PIDS[-1]}
}

# node_stop NAME [SIG] - stop NAME's natxd and its engine (SIGKILL: a crash).
node_stop() {
	local p=${NODE_PID[$1]:-} sig=${2:-TERM} i
	[ -n "$p" ] || return 0
	pkill "-$sig" -P "$p" 2>/dev/null
	kill "-$sig" "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	for i in "${!PIDS[@]}"; do
		[ "${PIDS[$i]}" = "$p" ] && unset "PIDS[$i]"
	done
	NODE_PID[$1]=
}

relayed_bytes() { ctl "$RN" --json relay status | jq -r .counters.bytes_relayed; }

# relay_start NAME - a relay natxd NAME on the public side; R_ADDR its address, RN its name.
relay_start() {
	node_start "$1" "$NL_RELAY" NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
	for _ in $(seq 1 100); do
		ctl "$1" --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
		sleep 0.1
	done
	RN=$1
	R_ADDR=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$(jq -r .peer_id "$T/$1/peer.json")
}

# sites - (re)start A and B, B reserved on the relay with "sink" exposed, A knowing B only by
# its circuit address; B_ID, B_CIRC.
sites() {
	node_stop a
	node_stop b
	node_start a "$NL_A"
	node_start b "$NL_B"
	B_ID=$(jq -r .peer_id "$T/b/peer.json")
	ctl b --json reserve "$R_ADDR" >"$T/rsv.json" 2>&1 || fail "B reserve: $(cat "$T/rsv.json")"
	B_CIRC=$(jq -r .circuit_addr "$T/rsv.json")
	ctl b --json p2p expose /natx/svc/sink/1.0.0 "127.0.0.1:$SINK" >/dev/null || fail "expose on B"
	ctl a --json node set nodeb "$B_CIRC" >/dev/null || fail "node set"
}

# connect FILE - connect A to B's sink with a local port: LPORT; the path must be the relay.
connect() {
	ctl a --json connect nodeb --service sink --local 127.0.0.1:0 >"$1" 2>&1 ||
		fail "connect: $(cat "$1")"
	jq -e '.connection.path == "libp2p-relay"' "$1" >/dev/null || fail "connect: not relayed: $(cat "$1")"
	LPORT=$(jq -r .connection.local "$1" | sed 's#.*/tcp/##')
}

# send PORT MIB WHAT - MIB MiB through A's local PORT, count and SHA-256 checked by the sink.
send() {
	nl_exec "$NL_A" timeout 120 python3 "$XFER" send "$1" $(($2 * 1024 * 1024)) 100 >"$T/send.out" 2>&1 ||
		fail "$3: $2 MiB: $(cat "$T/send.out")"
}

# stream_start PORT - a sender streaming through A's local PORT (for up to 60 s): SPID, out in
# $T/stream.out.
stream_start() {
	nl_bg "$NL_A" python3 "$XFER" stream "$1" 60 >"$T/stream.out" 2>&1
	SPID=$!
	PIDS+=("$SPID")
}

# stream_wait_end WHAT - the sender's connection ends within 15 s: ENDED_S (seconds).
stream_wait_end() {
	local t0=$SECONDS
	for _ in $(seq 1 150); do
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SPID" 2>/dev/null; then
		kill "$SPID"
		wait "$SPID" 2>/dev/null
		fail "$1: the application's connection still hangs 15 s later"
	fi
	wait "$SPID" 2>/dev/null
	ENDED_S=$((SECONDS - t0))
	grep -q '^ended ' "$T/stream.out" || fail "$1: sender: $(cat "$T/stream.out")"
}

# streams_zero NAME - no bridged stream left open in NAME's engine (waits up to 10 s).
streams_zero() {
	for _ in $(seq 1 100); do
		ctl "$1" --json p2p ls | jq -e '[.services[].streams_open] | add // 0 | . == 0' >/dev/null &&
			return 0
		sleep 0.1
	done
	fail "$1 still has open streams: $(ctl "$1" --json p2p ls | jq -c '[.services[] | {kind, streams_open}]')"
}

# healthy NAME - natxd NAME answers, its engine is up, never restarted, has no TCP flow open,
# and its libp2p side answers.
healthy() {
	ctl "$1" --json engine stats >"$T/es.json" || fail "natxd $1 does not answer"
	jq -e '.engine.state == "up" and .engine.restarts == 0 and .engine.total.flows_open == 0' \
		"$T/es.json" >/dev/null || fail "engine of $1: $(jq -c '.engine | del(.shards)' "$T/es.json")"
	ctl "$1" --json peer >/dev/null || fail "the libp2p side of $1 does not answer"
}

# ns_comms NS - the command names of the processes in namespace NS, one a line.
ns_comms() {
	local p
	for p in $(ip netns pids "$1"); do
		cat "/proc/$p/comm" 2>/dev/null
	done
}

# only_daemons NS - nothing but natxd and one natx-engine runs in namespace NS.
only_daemons() {
	local extra
	extra=$(ns_comms "$1" | grep -v -x -e natxd -e natx-engine | tr '\n' ' ')
	[ -z "$extra" ] || fail "left over in $1: $extra"
	[ "$(ns_comms "$1" | grep -c -x natx-engine)" = 1 ] || fail "not exactly one engine in $1"
}

natlab_up "$TAG" routed sym sym || fail "natlab_up"
nl_bg "$NL_B" python3 "$XFER" sink-server >"$T/sink.port"
PIDS+=($!)
for _ in $(seq 1 50); do
	[ -s "$T/sink.port" ] && break
	sleep 0.1
done
SINK=$(cat "$T/sink.port")
[ -n "$SINK" ] || fail "sink server in site B"

# ---- (a) the relay dies under a relayed flow (sym/sym: no direct path) ----------------------
relay_start r
sites
connect "$T/c1.json"
C1=$(jq -r .connection.id "$T/c1.json")
stream_start "$LPORT"
b0=$(relayed_bytes)
for _ in $(seq 1 50); do
	[ "$(relayed_bytes)" -gt $((b0 + 4 * 1024 * 1024)) ] && break
	sleep 0.1
done
[ "$(relayed_bytes)" -gt $((b0 + 4 * 1024 * 1024)) ] || fail "(a) the flow does not go through R"
node_stop r KILL
stream_wait_end "(a) relay killed"
grep -q "relayed connection to $B_ID lost" "$T/a/natxd.log" ||
	fail "(a) A's log does not say the relayed connection to B was lost"
why=$(grep "relayed connection to $B_ID lost" "$T/a/natxd.log" | tail -1 | sed 's/.*lost: //')
healthy a
healthy b
streams_zero a
streams_zero b
only_daemons "$NL_A"
echo "ok: (a) relay killed: application connection $(cut -d' ' -f2 "$T/stream.out") after ${ENDED_S} s; A logs: lost: $why; daemons fine, 0 streams open"
relay_start r2
ctl b --json reserve "$R_ADDR" >"$T/rsv2.json" 2>&1 || fail "(a) B reserve on the new relay: $(cat "$T/rsv2.json")"
ctl a --json node set nodeb "$(jq -r .circuit_addr "$T/rsv2.json")" >/dev/null || fail "(a) node set"
connect "$T/c2.json"
send "$LPORT" 8 "(a) new connect through the new relay"
ctl a connections close "$C1" >/dev/null || fail "(a) closing the dead relay's connection"
ctl a --json connections | jq -e '.connections | length == 1' >/dev/null || fail "(a) connections after close"
echo "ok: (a) a relay back: new connect through it, 8 MiB intact"

# ---- (b) the direct path goes dark after the upgrade (eim/eim) ------------------------------
node_stop a
node_stop b
sleep 0.3
natlab_nat_set a eim || fail "NAT A eim"
natlab_nat_set b eim || fail "NAT B eim"
sites
connect "$T/c3.json"
send "$LPORT" 1 "(b) first flow (starts the upgrade)"
state=
for _ in $(seq 1 300); do
	state=$(ctl b --json upgrades | jq -r '[.upgrades[] | select(.role == "B")] | last | .state // ""')
	[ -n "$state" ] && [ "$state" != in_progress ] && break
	sleep 0.1
done
[ "$state" = succeeded ] || fail "(b) the upgrade did not succeed: $state"
stream_start "$LPORT"
sleep 1
b0=$(relayed_bytes)
sleep 1
b1=$(relayed_bytes)
grep -q '' "$T/stream.out" && fail "(b) the sender ended early: $(cat "$T/stream.out")"
[ $((b1 - b0)) -lt $((1024 * 1024)) ] || fail "(b) the flow after the upgrade goes through R"
ctl a --json peers | jq -e --arg b "$B_ID" 'any(.peers[]; .peer_id == $b and .path == "direct")' \
	>/dev/null || fail "(b) no direct connection to B"
natlab_cut_direct on || fail "natlab_cut_direct on"
# connect --local between natx nodes runs in flow mode (docs/migration.md): the open flow must
# not end but come back to the relay (the dead direct connection is found by the flow's stall
# probe or the keepalive) and go on there within 15 s, with the sender still connected.
bc=$(relayed_bytes)
t0=$SECONDS
for _ in $(seq 1 150); do
	[ "$(relayed_bytes)" -gt $((bc + 1024 * 1024)) ] && break
	kill -0 "$SPID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$SPID" 2>/dev/null || fail "(b) direct path dropped: the application's connection ended: $(cat "$T/stream.out")"
[ "$(relayed_bytes)" -gt $((bc + 1024 * 1024)) ] ||
	fail "(b) direct path dropped: the open flow did not come back to the relay within 15 s"
MOVED_S=$((SECONDS - t0))
[ "$(ctl a --json peer | jq -r .counters.flows_repaired)" -ge 1 ] || fail "(b) A did not count the flow's repair"
kill "$SPID"
wait "$SPID" 2>/dev/null
grep -q "direct connection to $B_ID lost" "$T/a/natxd.log" ||
	fail "(b) A's log does not say the direct connection was lost"
healthy a
healthy b
streams_zero a
streams_zero b
only_daemons "$NL_A"
echo "ok: (b) direct path dark: the open flow went on through the relay after ${MOVED_S} s; 0 streams open after the sender stopped"
b0=$(relayed_bytes)
send "$LPORT" 4 "(b) a new flow through the same local port"
b1=$(relayed_bytes)
[ $((b1 - b0)) -ge $((4 * 1024 * 1024)) ] || fail "(b) the new flow did not go through R ($((b1 - b0)) bytes)"
connect "$T/c4.json"
jq -e '.connection.reason | test("relayed ok")' "$T/c4.json" >/dev/null || fail "(b) new connect: $(cat "$T/c4.json")"
send "$LPORT" 4 "(b) a new connect"
b2=$(relayed_bytes)
[ $((b2 - b1)) -ge $((4 * 1024 * 1024)) ] || fail "(b) the new connect did not go through R"
natlab_cut_direct off || fail "natlab_cut_direct off"
echo "ok: (b) new flows and a new connect go through the relay again, intact"
natlab_stop
echo "PASS: relay killed and direct path dropped: flows end or move in bounded time, nothing leaks, relay path again"
