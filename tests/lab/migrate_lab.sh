#!/usr/bin/env bash
# Live migration of bridged flows across real NATs (tests/lab/natlab.sh, routed core; issue 9,
# docs/migration.md "In the engine"). A natx relay R on the public side, natx nodes A and B
# behind Linux NAT routers (natxd + engine each). B reserves on R and exposes service "mgecho"
# (an echo server); A knows B only by its /p2p-circuit address (`node set`) and runs
# `connect nodeB --service mgecho --local`, which must pick flow mode (/natx/flow/1.0.0).
#  1. eim/eim (DCUtR succeeds): a paced 64 MiB echo starts over the relay; B's upgrade makes a
#     direct connection and the flow moves to it with MOVED. Asserts: the application's TCP
#     connection is never reset and what came back equals what was sent (SHA-256; an echo
#     covers both directions), A and B count the flow as migrated, R relayed bytes before the
#     switch and at most 2 MiB more after it (the tail in flight when it switched; without the
#     switch it would carry the remaining tens of MiB twice).
#  2. sym/sym (stays relayed): a paced transfer over R, then R's natxd and engine are killed.
#     With repair_ms 10 s and no other path, A's flow must give up: the application's
#     connection is closed (reset) within 10 s + 8 s, never hangs, A counts flows_failed,
#     logs the reason and `p2p ls` shows it (last_flow_failure no_path); B's side of the flow
#     closes too (after the repair time + 5 s).
#  3. sym/sym, R's engine killed and restarted by its natxd (same identity and port) while a
#     transfer runs: B reserves again, A dials a new circuit and ATTACHes; the flow continues
#     intact (flows_repaired, SHA-256).
#  4. sym/sym, B reserved on two relays R and R2 and A knowing both addresses: R dies for good
#     mid-transfer; A's flow (R2 is the forward's alternative address) goes on through R2
#     intact, and R2 carries the rest.
#  5. eim/eim: after the switch NAT A drops all packets between the NATs (iptables): the direct
#     path goes silent; A's flow finds the stall (no progress 2 s, a ping unanswered 3 s),
#     closes that connection and goes back to the relay; the echo comes back intact.
# Prints the measurements. Skips (77) without root, namespaces or tools.
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
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter python3 jq pgrep; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
PY=$NATX_SRC/tests/migrate/flow_xfer.py
TAG=mg$(($$ % 100000))
T=$(mktemp -d /tmp/mg-lab.XXXXXX)
PIDS=()
RESULTS=()

trap 'natlab_stop; rm -rf "$T"' EXIT

ctl() { nl_ctl "$@"; }

# node NAME NS [ENV=VALUE...] - natxd with libp2p on 0.0.0.0:4001 in namespace NS.
node() {
	local n=$1 ns=$2
	shift 2
	nl_natxd "$n" "$ns" 4001 "$@"
}

relay_node() {
	node r "$NL_RELAY" NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
	R_PID=${PIDS[-1]}
	for _ in $(seq 1 100); do
		ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && return 0
		sleep 0.1
	done
	fail "relay R did not start"
}

relayed_bytes() { ctl r --json relay status | jq -r .counters.bytes_relayed; }
counter() { ctl "$1" --json peer | jq -r ".counters.$2"; }
now_ms() { date +%s%3N; }

# setup NAT_A NAT_B - the lab, R, A, B; B reserved and exposing; A connected: FPORT.
setup() {
	LAB="routed $1/$2"
	natlab_stop
	ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
		skip "cannot create network namespaces"
	natlab_up "$TAG" routed "$1" "$2" || fail "natlab_up routed $1 $2"
	# The relay restart of case 3 gets the same identity and port: keep R's state.
	mkdir -p "$T/rstate"
	relay_node
	node a "$NL_A"
	node b "$NL_B"
	R_ADDR=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$(jq -r .peer_id "$T/r/peer.json")
	ctl b --json reserve "$R_ADDR" >"$T/rsv.json" 2>&1 || fail "$LAB: B reserve: $(cat "$T/rsv.json")"
	rm -f "$T/echo.port"
	nl_bg "$NL_B" python3 "$PY" echo-server >"$T/echo.port" 2>"$T/echo.err"
	PIDS+=($!)
	for _ in $(seq 1 50); do
		[ -s "$T/echo.port" ] && break
		sleep 0.1
	done
	[ -s "$T/echo.port" ] || fail "echo server in site B did not start"
	ctl b --json p2p expose /natx/svc/mgecho/1.0.0 "127.0.0.1:$(cat "$T/echo.port")" >/dev/null ||
		fail "$LAB: expose on B"
	ctl a --json node set nodeB "$(jq -r .circuit_addr "$T/rsv.json")" >/dev/null || fail "$LAB: node set"
	ctl a --json connect nodeB --service mgecho --local 127.0.0.1:0 >"$T/conn.json" 2>&1 ||
		fail "$LAB: connect: $(cat "$T/conn.json")"
	jq -e '.connection.path == "libp2p-relay" and .connection.flow == true' "$T/conn.json" >/dev/null ||
		fail "$LAB: connect did not pick a relayed flow: $(jq -c .connection "$T/conn.json")"
	FPORT=$(jq -r .connection.local "$T/conn.json" | sed 's#.*/tcp/##')
}

# xfer NAME BYTES RATE - start a paced echo transfer through A's local port in the background.
xfer() {
	rm -f "$T/$1.json"
	nl_bg "$NL_A" timeout 120 python3 "$PY" client "$FPORT" "$2" "$3" "$T/$1.json" >"$T/$1.out" 2>&1
	XPID=$!
	PIDS+=("$XPID")
}

# wait_xfer NAME SECONDS - wait for the transfer to end (bounded); its report in $T/NAME.json.
wait_xfer() {
	for _ in $(seq 1 $(($2 * 10))); do
		kill -0 "$XPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$XPID" 2>/dev/null && fail "$LAB: the application's transfer hangs after $2 s"
	wait "$XPID" 2>/dev/null
	[ -s "$T/$1.json" ] || fail "$LAB: transfer $1 wrote no report: $(cat "$T/$1.out")"
}

# ---- 1. eim/eim: the upgrade moves the open flow to the direct path ----------------------------
case_migrate() {
	MIB=64
	setup eim eim
	r0=$(relayed_bytes)
	t0=$(now_ms)
	xfer big $((MIB * 1024 * 1024)) $((4 * 1024 * 1024))
	t_switch=""
	for _ in $(seq 1 300); do
		if [ "$(counter a flows_migrated)" -ge 1 ]; then
			t_switch=$(($(now_ms) - t0))
			break
		fi
		kill -0 "$XPID" 2>/dev/null || break
		sleep 0.1
	done
	r_switch=$(relayed_bytes)
	[ -n "$t_switch" ] || fail "$LAB: the flow was not migrated (upgrades: $(ctl b --json upgrades | jq -c .counters))"
	wait_xfer big 60
	r_end=$(relayed_bytes)
	jq -e '.ok and .error == ""' "$T/big.json" >/dev/null ||
		fail "$LAB: the application's connection broke or its bytes differ: $(cat "$T/big.json")"
	[ "$(counter b flows_migrated)" -ge 1 ] || fail "$LAB: B did not count the migration"
	[ $((r_switch - r0)) -gt 0 ] || fail "$LAB: nothing went through R before the switch"
	tail_b=$((r_end - r_switch))
	[ "$tail_b" -le $((2 * 1024 * 1024)) ] ||
		fail "$LAB: R relayed $tail_b bytes after the switch (the flow did not leave the relay)"
	up_ms=$(ctl b --json upgrades | jq -r '[.upgrades[] | select(.role == "B")] | last | .duration_ms')
	[ "$(counter a flows_failed)" = 0 ] || fail "$LAB: A counted a failed flow"
	echo "ok: $LAB: $MIB MiB echo, switched to direct ${t_switch} ms after start (DCUtR took ${up_ms} ms);" \
		"R relayed $((r_switch - r0)) B before, $tail_b B after; SHA-256 equal; $(jq -r .seconds "$T/big.json") s"
	RESULTS+=("eim/eim migrate: switch at ${t_switch} ms, relay bytes before $((r_switch - r0)) after $tail_b, sha ok")

}

# ---- 2. sym/sym: the relay dies, no other path: closed with a reason, bounded -----------------
case_lost() {
	setup sym sym
	xfer lost $((32 * 1024 * 1024)) $((2 * 1024 * 1024))
	sleep 2
	kill -0 "$XPID" 2>/dev/null || fail "$LAB: the transfer ended before the relay was killed: $(cat "$T/lost.json")"
	[ "$(counter a flows_migrated)" = 0 ] || fail "$LAB: a flow migrated between symmetric NATs"
	ENG=$(pgrep -P "$R_PID" -f natx-engine | head -1)
	t0=$(now_ms)
	kill -KILL "$R_PID" ${ENG:+"$ENG"} 2>/dev/null
	wait_xfer lost 25
	t_close=$(($(now_ms) - t0))
	jq -e '.ok == false and .error != ""' "$T/lost.json" >/dev/null ||
		fail "$LAB: the transfer did not notice the lost relay: $(cat "$T/lost.json")"
	[ "$t_close" -le 18000 ] || fail "$LAB: closing the application's connection took ${t_close} ms"
	[ "$(counter a flows_failed)" -ge 1 ] || fail "$LAB: A did not count the failed flow"
	grep -q "closed: no path to the peer within" "$T/a/natxd.log" ||
		fail "$LAB: A did not log why the flow was closed"
	ctl a --json p2p ls | jq -e '[.services[] | select(.flow) | .last_flow_failure.reason] == ["no_path"]' \
		>/dev/null || fail "$LAB: p2p ls does not show why: $(ctl a --json p2p ls | jq -c .services)"
	# B, the expose side, gives up too (repair time + 5 s after losing its path): no hang
	for _ in $(seq 1 100); do
		[ "$(counter b flows_open)" = 0 ] && break
		sleep 0.1
	done
	t_b=$(($(now_ms) - t0))
	[ "$(counter b flows_open)" = 0 ] && [ "$(counter b flows_failed)" -ge 1 ] ||
		fail "$LAB: B's flow is still open $t_b ms after the relay died"
	echo "ok: $LAB: relay killed at $(jq -r .sent "$T/lost.json") B sent; the application's connection" \
		"was closed ($(jq -r .error "$T/lost.json")) after ${t_close} ms; A: $(grep -o 'closed: no path[^"]*' "$T/a/natxd.log" | head -1);" \
		"B closed its side after ${t_b} ms"
	RESULTS+=("sym/sym relay killed: app connection closed ($(jq -r .error "$T/lost.json")) after ${t_close} ms")
}

# ---- 3. sym/sym: the relay restarts: the flow continues on a new circuit ----------------------
case_restart() {
	setup sym sym
	xfer rst $((16 * 1024 * 1024)) $((2 * 1024 * 1024))
	sleep 2
	kill -0 "$XPID" 2>/dev/null || fail "$LAB: the transfer ended before the relay restarted: $(cat "$T/rst.json")"
	ENG=$(pgrep -P "$R_PID" -f natx-engine | head -1)
	[ -n "$ENG" ] || fail "$LAB: no engine under R's natxd"
	t0=$(now_ms)
	# R's engine dies: every circuit through R is gone; R's natxd starts a new engine (same
	# identity and port), B reserves again, A's flow dials a new circuit and ATTACHes it.
	kill -KILL "$ENG"
	for _ in $(seq 1 300); do
		[ "$(counter a flows_repaired)" -ge 1 ] && break
		kill -0 "$XPID" 2>/dev/null || break
		sleep 0.1
	done
	t_rep=$(($(now_ms) - t0))
	wait_xfer rst 60
	jq -e '.ok and .error == ""' "$T/rst.json" >/dev/null ||
		fail "$LAB: the flow did not survive the relay restart: $(cat "$T/rst.json")"
	[ "$(counter a flows_repaired)" -ge 1 ] || fail "$LAB: A did not count the repair"
	echo "ok: $LAB: R's engine killed and restarted mid-transfer; the flow continued on a new circuit" \
		"after ${t_rep} ms, $(jq -r .sent "$T/rst.json") B echoed intact (SHA-256), resent $(counter a flow_resent) B"
	RESULTS+=("sym/sym relay restarted: flow repaired after ${t_rep} ms, sha ok")
}

# ---- 4. sym/sym, two relays: the one in use dies, the flow goes on through the other ----------
case_second() {
	setup sym sym
	nl_natxd r2 "$NL_RELAY" 4002 NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
	for _ in $(seq 1 100); do
		ctl r2 --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
		sleep 0.1
	done
	R2_ADDR=/ip4/$NL_RELAY_IP2/tcp/4002/p2p/$(jq -r .peer_id "$T/r2/peer.json")
	ctl b --json reserve "$R2_ADDR" >"$T/rsv2.json" 2>&1 || fail "$LAB: B reserve on R2: $(cat "$T/rsv2.json")"
	# A learns both of B's circuit addresses; a new connect takes R first, R2 as alternative
	ctl a --json connections close "$(jq -r .connection.id "$T/conn.json")" >/dev/null ||
		fail "$LAB: connections close"
	ctl a --json node set nodeB "$(jq -r .circuit_addr "$T/rsv.json")" "$(jq -r .circuit_addr "$T/rsv2.json")" \
		>/dev/null || fail "$LAB: node set with two relays"
	ctl a --json connect nodeB --service mgecho --local 127.0.0.1:0 >"$T/conn.json" 2>&1 ||
		fail "$LAB: connect: $(cat "$T/conn.json")"
	jq -e --arg r "$R_ADDR" '.connection.flow and (.connection.via | startswith($r))' "$T/conn.json" >/dev/null ||
		fail "$LAB: the connect did not take R: $(jq -c .connection "$T/conn.json")"
	ctl a --json p2p ls | jq -e --arg r2 "$R2_ADDR" '[.services[] | select(.flow) | .alt_addrs[] |
		startswith($r2)] | any' >/dev/null || fail "$LAB: the forward does not know R2: $(ctl a --json p2p ls | jq -c .services)"
	FPORT=$(jq -r .connection.local "$T/conn.json" | sed 's#.*/tcp/##')
	xfer two $((16 * 1024 * 1024)) $((2 * 1024 * 1024))
	sleep 2
	kill -0 "$XPID" 2>/dev/null || fail "$LAB: the transfer ended before R was killed: $(cat "$T/two.json")"
	q0=$(ctl r2 --json relay status | jq -r .counters.bytes_relayed)
	ENG=$(pgrep -P "$R_PID" -f natx-engine | head -1)
	t0=$(now_ms)
	kill -KILL "$R_PID" ${ENG:+"$ENG"} 2>/dev/null
	for _ in $(seq 1 300); do
		[ "$(counter a flows_repaired)" -ge 1 ] && break
		kill -0 "$XPID" 2>/dev/null || break
		sleep 0.1
	done
	t_rep=$(($(now_ms) - t0))
	wait_xfer two 60
	jq -e '.ok and .error == ""' "$T/two.json" >/dev/null ||
		fail "$LAB: the flow did not survive the loss of R: $(cat "$T/two.json")"
	[ "$(counter a flows_repaired)" -ge 1 ] || fail "$LAB: A did not count the repair"
	q1=$(ctl r2 --json relay status | jq -r .counters.bytes_relayed)
	[ $((q1 - q0)) -gt $((4 * 1024 * 1024)) ] || fail "$LAB: R2 relayed only $((q1 - q0)) bytes"
	echo "ok: $LAB: R killed for good mid-transfer; the flow went on through R2 after ${t_rep} ms" \
		"(R2 relayed $((q1 - q0)) B), $(jq -r .sent "$T/two.json") B echoed intact (SHA-256)"
	RESULTS+=("sym/sym second relay: flow repaired through R2 after ${t_rep} ms, sha ok")
}

# ---- 5. eim/eim: the direct path is dropped (iptables) after the switch: back to the relay ------
case_drop() {
	setup eim eim
	xfer drop $((16 * 1024 * 1024)) $((2 * 1024 * 1024))
	for _ in $(seq 1 300); do
		[ "$(counter a flows_migrated)" -ge 1 ] && break
		kill -0 "$XPID" 2>/dev/null || break
		sleep 0.1
	done
	[ "$(counter a flows_migrated)" -ge 1 ] || fail "$LAB: the flow was not migrated"
	sleep 1
	kill -0 "$XPID" 2>/dev/null || fail "$LAB: the transfer ended before the drop: $(cat "$T/drop.json")"
	# NAT A drops everything to and from NAT B: the direct path goes silent (no RST, no FIN)
	t0=$(now_ms)
	nl_exec "$NL_NAT_A" iptables -I FORWARD -d "$NL_B_PUB" -j DROP
	nl_exec "$NL_NAT_A" iptables -I FORWARD -s "$NL_B_PUB" -j DROP
	for _ in $(seq 1 300); do
		[ "$(counter a flows_repaired)" -ge 1 ] && break
		kill -0 "$XPID" 2>/dev/null || break
		sleep 0.1
	done
	t_rep=$(($(now_ms) - t0))
	wait_xfer drop 60
	jq -e '.ok and .error == ""' "$T/drop.json" >/dev/null ||
		fail "$LAB: the flow did not survive the dropped direct path: $(cat "$T/drop.json")"
	[ "$(counter a flows_repaired)" -ge 1 ] || fail "$LAB: A did not count the repair"
	grep -q "stalled, no answer to a ping" "$T/a/natxd.log" || fail "$LAB: A did not log the stalled path"
	echo "ok: $LAB: direct path dropped after the switch; the stall was found and the flow went back" \
		"to the relay after ${t_rep} ms; $(jq -r .sent "$T/drop.json") B echoed intact (SHA-256)"
	RESULTS+=("eim/eim direct path dropped: back on the relay after ${t_rep} ms, sha ok")
}

for c in ${MG_CASES:-migrate lost restart second drop}; do
	"case_$c"
done

natlab_stop
echo "results (routed core):"
for row in "${RESULTS[@]}"; do echo "  $row"; done
echo "PASS: live migration of bridged flows across the NAT lab"
