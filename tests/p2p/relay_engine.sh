#!/usr/bin/env bash
# Circuit Relay v2 in the engine, on loopback: natxd instances (own sockets, state dirs, engines
# with 2 shards, so connections reach the relay on either shard): R runs the relay
# (NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true, unlimited circuits, 10 s reservations), A and B are
# nodes.
#  1 B reserves on R (natxctl reserve): the reply and `natxctl peer` give B's /p2p-circuit
#    address; R's relay status counts the reservation
#  2 A pings (3 round trips) and identifies B (natx agent) by that address
#  3 B exposes a TCP echo server, A forwards a local port to B's /p2p-circuit address: 64 MiB
#    echoed through A -> R -> B -> echo and back, SHA-256 equal; R counts >= 128 MiB relayed,
#    top talkers name A and B
#  4 `natxctl peers` on B: A relayed via R, R direct and kept; metrics and relay status carry
#    the counters; B's reservation is renewed before its 10 s TTL ends
#  5 a natx node whose relay is off: reserving there is refused (hop not served)
#  6 limits on relay L (1 circuit, 1 MiB per circuit and direction, 1 reservation per peer): a
#    reservation flood from one peer over 16 connections (relay_driver flood) -> 1 accepted, 15
#    RESERVATION_REFUSED, counted, and connections were handed to shard 0; a second circuit ->
#    RESOURCE_LIMIT_EXCEEDED; a circuit over its data limit is reset (circuits_limited) and the
#    next circuit works
#  7 bootstrap peers (NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS): kept connected, redialled after
#    the peer restarts
#  8 js-libp2p 3.x: a js node reserves on R; js and natx ping it through R
#  9 natx A reserves on a js relay (natxctl reserve) and a js node identifies (natx agent) and
#    pings A through it (8 and 9 are skipped when the pinned js packages cannot be installed)
# Exit 77 when jq/python3 are missing.
set -uo pipefail
NODES_TAG=rly-relay NODES_LOGS="r a b l"
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/../integration/nodes_lib.sh"
BUILD=${NATX_BUILD:-$SRC/build}
PY=$SRC/tests/integration/p2p_bridge.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

# wait_relay NAME: until the engine serves the hop protocol (natxd pushes the settings)
wait_relay() {
	for _ in $(seq 1 100); do
		ctl "$1" --json relay status >"$T/$1/rs.json" 2>/dev/null &&
			jq -e .enabled "$T/$1/rs.json" >/dev/null && return 0
		sleep 0.1
	done
	cat "$T/$1/rs.json"; fail "relay on $1 did not start"
}

HPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HTTP_LISTEN=127.0.0.1:$HPORT start_natxd r NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0 NAT_TRAVERSAL_RELAY_RESERVATION_TTL_S=10
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
jq -e '.reserved == true and .expire_in_s > 5 and .expire_in_s <= 10' "$T/rsv.json" >/dev/null || { cat "$T/rsv.json"; fail "reservation"; }
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

# 3. 64 MiB through a bridged stream over the circuit (B exposes echo, A forwards to B's circuit)
python3 "$PY" echo-server >"$T/echo.port" 2>"$T/echo.err" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EPORT=$(cat "$T/echo.port")
ctl b --json p2p expose /rly/echo/1.0.0 "127.0.0.1:$EPORT" >/dev/null || fail "expose on B"
ctl a --json p2p forward /rly/echo/1.0.0 127.0.0.1:0 "$B_CIRC" >"$T/fwd.json" || { cat "$T/fwd.json"; fail "forward to B's circuit address"; }
FPORT=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
SIZE=$((64 * 1024 * 1024))
start=$(date +%s%N)
timeout 240 python3 "$PY" client "$FPORT" $SIZE 1 >"$T/c64" 2>&1 || { cat "$T/c64"; fail "64 MiB through the relay"; }
end=$(date +%s%N)
ctl r --json relay status >"$T/rs2.json"
jq -e --argjson w $((2 * SIZE)) '.counters.bytes_relayed >= $w' "$T/rs2.json" >/dev/null ||
	{ cat "$T/rs2.json"; fail "relay byte counter"; }
jq -e --arg a "$A_ID" --arg b "$B_ID" '[.top_talkers[].peer_id] | index($a) != null and index($b) != null' \
	"$T/rs2.json" >/dev/null || { cat "$T/rs2.json"; fail "top talkers"; }
ctl a --json p2p ls | jq -e --argjson w $SIZE '.services[0].bytes_to_p2p == $w and .services[0].bytes_to_tcp == $w and .services[0].streams_failed == 0' >/dev/null ||
	fail "A's forward counters"
echo "    64 MiB echoed through the relay (128 MiB relayed) in $(( (end - start) / 1000000 )) ms"
pass "64 MiB echoed A -> R -> B -> echo -> back, SHA-256 equal; R counted the bytes, top talkers A and B"

# 4. peers: B sees A relayed (via R) and R direct
ctl b --json peers >"$T/peers.json" || fail "peers"
jq -e --arg a "$A_ID" --arg r "$(jq -r .peer_id "$T/r/peer.json")" '
	([.peers[] | select(.peer_id == $a and .path == "relayed" and .relay == $r)] | length) >= 1 and
	([.peers[] | select(.peer_id == $r and .path == "direct" and .kept == true)] | length) == 1 and
	([.kept[] | select(.peer_id == $r and .reserved == true)] | length) == 1 and
	(.peers | all(has("rtt_ms") and has("age_s")))' "$T/peers.json" >/dev/null ||
	{ cat "$T/peers.json"; fail "B's peers"; }
ctl b peers >"$T/peers.txt" || fail "peers (text)"
grep -q relayed "$T/peers.txt" || { cat "$T/peers.txt"; fail "peers text"; }
pass "natxctl peers on B: A relayed via R, R direct and kept with B's reservation"
ctl r --json metrics | jq -e '.metrics.relay.bytes_relayed > 0 and .metrics.relay.circuits_total >= 3' >/dev/null ||
	fail "natxd metrics without the relay counters"
ctl r relay status >"$T/rs.txt" && grep -q "bytes_relayed" "$T/rs.txt" || { cat "$T/rs.txt"; fail "relay status text"; }
if command -v curl >/dev/null; then
	curl -s --max-time 10 "http://127.0.0.1:$HPORT/metrics" >"$T/prom.txt" || fail "GET /metrics"
	grep -qE '^natx_relay_bytes_relayed_total [1-9][0-9]*$' "$T/prom.txt" &&
		grep -qE '^natx_relay_reservations_active 1$' "$T/prom.txt" ||
		{ grep natx_relay "$T/prom.txt"; fail "/metrics without natx_relay_*"; }
fi
pass "natxctl metrics, GET /metrics (natx_relay_*) and relay status (text) carry the relay counters"
# B's reservation (10 s TTL) is renewed before it expires, on the same connection
for _ in $(seq 1 150); do
	ctl r --json relay status | jq -e '.counters.reservations_renewed >= 1' >/dev/null && break
	sleep 0.1
done
ctl r --json relay status | jq -e '.counters.reservations_renewed >= 1 and .counters.reservations_active == 1' >/dev/null ||
	fail "reservation not renewed"
ctl a --json ping "$B_CIRC" >/dev/null || fail "B unreachable after the renewal"
pass "B's 10 s reservation renewed (reservations_renewed >= 1), B still reachable"

# 5. relay off: A cannot reserve on B (B's engine does not serve the hop protocol)
ctl b --json relay status | jq -e '.enabled == false' >/dev/null || fail "B's relay should be off"
ctl a reserve "$(addr_of b)" >"$T/off.out" 2>&1 && { cat "$T/off.out"; fail "reserve on a node without relay succeeded"; }
grep -qi "refused\|unavailable\|not supported" "$T/off.out" || { cat "$T/off.out"; fail "refusal text"; }
pass "relay off: hop refused ($(head -c 150 "$T/off.out"))"

# 6. limits on relay L: 1 circuit in total, 1 MiB per circuit and direction, 1 reservation per peer
start_natxd l NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_MAX_CIRCUITS=1 \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=1048576 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
wait_relay l
L_ADDR=$(addr_of l)
RD=$BUILD/tests/natx_p2p_relay_interop
[ -x "$RD" ] || fail "relay driver not built: $RD"
# 6a. one peer ID reserving over 16 connections at once: 1 accepted, 15 RESERVATION_REFUSED
timeout 60 "$RD" flood "$L_ADDR" 16 >"$T/flood.out" 2>&1 || { cat "$T/flood.out"; fail "flood driver"; }
grep -q "^flood: ok 1 refused 15 failed 0" "$T/flood.out" || { cat "$T/flood.out"; fail "flood not capped"; }
grep -q "refused: RESERVATION_REFUSED" "$T/flood.out" || { cat "$T/flood.out"; fail "refusal status"; }
ctl l --json relay status >"$T/lf.json"
jq -e '.counters.reservations_refused == 15 and .counters.reservations_total == 1' "$T/lf.json" >/dev/null ||
	{ cat "$T/lf.json"; fail "L's reservation counters"; }
ctl l --json peer >"$T/lp.json"
mig=$(jq .counters.conns_migrated "$T/lp.json")
[ "$mig" -ge 1 ] || { cat "$T/lp.json"; fail "no connection was handed to shard 0 (16 connections, 2 shards)"; }
pass "reservation flood from one peer over 16 connections: 1 accepted, 15 refused (counted; $mig connections moved to shard 0)"

# 6b. B reserves on L; A holds one circuit (an idle forwarded connection) -> a second circuit
#     (ping) is refused with RESOURCE_LIMIT_EXCEEDED
ctl b --json reserve "$L_ADDR" >"$T/rsvl.json" || { cat "$T/rsvl.json"; fail "B reserve on L"; }
B_CIRC_L=$(jq -r .circuit_addr "$T/rsvl.json")
ctl a --json p2p forward /rly/echo/1.0.0 127.0.0.1:0 "$B_CIRC_L" >"$T/fwdl.json" || fail "forward via L"
LPORT=$(jq -r .service.listen "$T/fwdl.json" | sed 's#.*/tcp/##')
python3 -c "
import socket,time,sys
s=socket.create_connection(('127.0.0.1',$LPORT)); s.sendall(b'x'); s.recv(1); time.sleep(30)" &
HOLD=$!
PIDS+=($HOLD)
for _ in $(seq 1 100); do
	ctl l --json relay status | jq -e '.counters.circuits_active == 1' >/dev/null && break
	sleep 0.1
done
ctl l --json relay status | jq -e '.counters.circuits_active == 1' >/dev/null || fail "circuit through L not up"
ctl a ping "$B_CIRC_L" >"$T/over.out" 2>&1 && { cat "$T/over.out"; fail "second circuit accepted over the limit"; }
grep -q RESOURCE_LIMIT_EXCEEDED "$T/over.out" || { cat "$T/over.out"; fail "no RESOURCE_LIMIT_EXCEEDED"; }
ctl l --json relay status | jq -e '.counters.circuits_refused == 1' >/dev/null || fail "circuits_refused"
pass "over-limit circuit refused: $(head -c 160 "$T/over.out")"
kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null

# 6c. a circuit that exceeds its data limit (1 MiB per direction) is reset; L keeps serving
timeout 60 python3 "$PY" client "$LPORT" $((4 * 1024 * 1024)) 1 >"$T/lim.out" 2>&1 &&
	{ cat "$T/lim.out"; fail "4 MiB passed a 1 MiB circuit limit"; }
for _ in $(seq 1 50); do
	ctl l --json relay status >"$T/ll.json"
	jq -e '.counters.circuits_limited == 1 and .counters.circuits_active == 0' "$T/ll.json" >/dev/null && break
	sleep 0.1
done
jq -e '.counters.circuits_limited == 1 and .counters.circuits_active == 0' "$T/ll.json" >/dev/null ||
	{ cat "$T/ll.json"; fail "L did not close the circuit at its data limit"; }
jq -e '[.circuits[]] | length == 0' "$T/ll.json" >/dev/null || fail "circuit left behind"
ctl a --json ping -n 2 "$B_CIRC_L" >/dev/null || fail "L stopped serving after the limited circuit"
pass "circuit over its 1 MiB data limit reset (circuits_limited 1), the next circuit through L works"

# 7. bootstrap peers: C keeps a connection to P (NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS) and
#    reconnects with backoff after P restarts (same identity and port)
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_natxd p NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/$PPORT
P_PID=${PIDS[-1]}
P_ADDR=$(addr_of p)
start_natxd c NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS="$P_ADDR"
kept_state() { # C's kept entry for P: "connected dials losses"
	ctl c --json peers | jq -r '.kept[0] | "\(.connected) \(.dials) \(.losses)"'
}
for _ in $(seq 1 100); do [ "$(kept_state | cut -d' ' -f1)" = true ] && break; sleep 0.1; done
[ "$(kept_state | cut -d' ' -f1)" = true ] || { ctl c --json peers; fail "bootstrap peer not connected"; }
ctl c --json peers | jq -e --arg p "$(jq -r .peer_id "$T/p/peer.json")" \
	'[.peers[] | select(.peer_id == $p and .kept == true and .path == "direct")] | length == 1' >/dev/null ||
	fail "bootstrap peer missing from peers"
kill "$P_PID"; wait "$P_PID" 2>/dev/null
for _ in $(seq 1 100); do [ "$(kept_state | cut -d' ' -f1)" = false ] && break; sleep 0.1; done
read -r up dials losses <<<"$(kept_state)"
[ "$up" = false ] && [ "$losses" -ge 1 ] || fail "loss of the bootstrap peer not seen ($up $dials $losses)"
start_natxd p NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/$PPORT
for _ in $(seq 1 300); do [ "$(kept_state | cut -d' ' -f1)" = true ] && break; sleep 0.1; done
read -r up dials2 losses <<<"$(kept_state)"
[ "$up" = true ] && [ "$dials2" -gt "$dials" ] || { ctl c --json peers; fail "bootstrap peer not redialled"; }
ctl c peers | grep -q "(bootstrap): connected" || { ctl c peers; fail "peers text for kept peers"; }
pass "bootstrap peer kept: connected, lost when P stopped, redialled with backoff ($dials2 dials) when P came back"

# 8. js-libp2p 3.x through the natx engine relay R: a js node reserves on R; another js node
#    and natx A ping it by its /p2p-circuit address
JS=$SRC/tests/interop
NODE=$JS/node_modules/.bin/node
if [ ! -x "$NODE" ] || [ ! -d "$JS/node_modules/@libp2p/circuit-relay-v2" ]; then
	(cd "$JS" && timeout 240 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1) || true
fi
if [ ! -x "$NODE" ] || [ ! -d "$JS/node_modules/@libp2p/circuit-relay-v2" ]; then
	echo "SKIP js part: the pinned js-libp2p packages could not be installed (tests/interop: npm ci)"
	exit 0
fi
"$NODE" "$JS/relay.mjs" reserve "$R_ADDR" >"$T/jsr.out" 2>"$T/jsr.err" &
PIDS+=($!)
for _ in $(seq 1 250); do grep -q '"reserved"' "$T/jsr.out" && break; sleep 0.1; done
JCIRC=$(jq -r 'select(.event=="reserved") | .addrs[0]' "$T/jsr.out")
J_ID=$(jq -r 'select(.event=="reserved") | .peer' "$T/jsr.out")
[ -n "$JCIRC" ] || { cat "$T/jsr.out" "$T/jsr.err"; fail "js did not reserve on the natx relay"; }
timeout 60 "$NODE" "$JS/relay.mjs" dial-circuit "$JCIRC" >"$T/jsd.out" 2>&1 || { cat "$T/jsd.out"; fail "js -> js through the natx relay"; }
grep -q '"relayed":true' "$T/jsd.out" || { cat "$T/jsd.out"; fail "js connection not relayed"; }
ctl a --json ping -n 3 "$JCIRC" >"$T/jping.json" || { cat "$T/jping.json"; fail "natx -> js through the natx relay"; }
jq -e --arg j "$J_ID" '.peer_id == $j and (.rtt_ms | length) == 3' "$T/jping.json" >/dev/null || fail "ping js reply"
ctl r --json relay status | jq -e '.counters.reservations_active >= 2' >/dev/null || fail "R does not count js's reservation"
pass "js reserved on the natx engine relay; js and natx pinged it through R (3 pings each)"

# 9. natx reserves on a js relay (circuitRelayServer) and a js node reaches it (identify + 3 pings)
"$NODE" "$JS/relay.mjs" relay >"$T/jsrelay.out" 2>"$T/jsrelay.err" &
PIDS+=($!)
for _ in $(seq 1 250); do grep -q '"listening"' "$T/jsrelay.out" && break; sleep 0.1; done
JR=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsrelay.out")
[ -n "$JR" ] || { cat "$T/jsrelay.err"; fail "js relay did not start"; }
case "$JR" in */p2p/*) ;; *) JR="$JR/p2p/$(jq -r 'select(.event=="listening") | .peer' "$T/jsrelay.out")" ;; esac
ctl a --json reserve "$JR" >"$T/ajs.json" || { cat "$T/ajs.json"; fail "natx reserve on the js relay"; }
A_CIRC=$(jq -r .circuit_addr "$T/ajs.json")
timeout 60 "$NODE" "$JS/relay.mjs" dial-circuit "$A_CIRC" >"$T/jsa.out" 2>&1 || { cat "$T/jsa.out"; fail "js -> natx through the js relay"; }
grep -q '"relayed":true' "$T/jsa.out" && grep -q '"agent":"natx/' "$T/jsa.out" ||
	{ cat "$T/jsa.out"; fail "js did not identify natx over a relayed connection"; }
pass "natx reserved on a js relay (voucher checked) and js identified + pinged it through that relay"
exit 0
