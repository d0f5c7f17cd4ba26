#!/usr/bin/env bash
# Flow mode on loopback (no root, no namespaces; docs/migration.md "In the engine"): natxd R runs
# the relay, B reserves on R and exposes service "mgecho", A knows B only by its /p2p-circuit
# address and connects with --local:
#  - connect picks flow mode (B offers /natx/flow/1.0.0); 2 x 4 MB echoed intact through the
#    relay; the flows end cleanly (flows_open back to 0 on both sides, no failure);
#  - a relay whose circuits stop at 1 MiB (data limit): an 8 MiB echo through it comes back
#    intact, the flow repaired onto a new circuit each time one hit the limit;
#  - a paced 12 MB echo runs over the relay while A gets a direct connection to B (a plain
#    `p2p forward` to B's direct address, used once). The running flow must either switch to it
#    (flows_migrated on A and B, and R relays at most 2 MiB more after the switch) or, when B's
#    engine took the direct connection on another shard than the flow's, be refused and stay on
#    the relay ("refused a switch" logged); either way the application's bytes come back intact;
#  - the 1 MiB relay again with that direct connection around: the flow moves to it, or (refused)
#    is repaired over new circuits without being stopped by the refusal; intact either way;
#  - `p2p forward` (natxctl, no flow flag) stays a plain stream forward;
#  - on A's engine socket: a flow forward with an alternative address of another peer, alt_addrs
#    without flow, or a service name over 64 bytes are refused (bad_request); a flow forward to
#    a service B does not expose ends each connection at once (B's RESET), counted in p2p.ls
#    with last_flow_failure "peer_reset".
set -uo pipefail
NODES_TAG=natx-mgloop NODES_LOGS="r a b rl"
# shellcheck source=tests/integration/nodes_lib.sh
. "${NATX_SRC:?}/tests/integration/nodes_lib.sh"
PY=$SRC/tests/migrate/flow_xfer.py
PYB=$SRC/tests/integration/p2p_bridge.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

counter() { ctl "$1" --json peer | jq -r ".counters.$2"; }
relayed_bytes() { ctl r --json relay status | jq -r .counters.bytes_relayed; }

start_natxd r NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
HPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HTTP_LISTEN=127.0.0.1:$HPORT start_natxd a
start_natxd b
for _ in $(seq 1 100); do
	ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
	sleep 0.1
done
ctl b --json reserve "$(addr_of r)" >"$T/rsv.json" || fail "reserve: $(cat "$T/rsv.json")"
B_CIRC=$(jq -r .circuit_addr "$T/rsv.json")
python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
ctl b --json p2p expose /natx/svc/mgecho/1.0.0 "127.0.0.1:$(cat "$T/echo.port")" >/dev/null ||
	fail "expose on B"

# 1. connect picks flow mode; echo through the relay
ctl a --json node set nodeB "$B_CIRC" >/dev/null || fail "node set"
ctl a --json connect nodeB --service mgecho --local 127.0.0.1:0 >"$T/c.json" || fail "connect: $(cat "$T/c.json")"
jq -e '.connection.flow == true and .connection.path == "libp2p-relay"' "$T/c.json" >/dev/null ||
	fail "connect did not pick a relayed flow: $(jq -c .connection "$T/c.json")"
P=$(jq -r .connection.local "$T/c.json" | sed 's#.*/tcp/##')
timeout 60 python3 "$PYB" client "$P" 4000000 2 >"$T/x1" 2>&1 || fail "2 x 4 MB as flows: $(cat "$T/x1")"
for _ in $(seq 1 30); do
	[ "$(counter a flows_open)" = 0 ] && [ "$(counter b flows_open)" = 0 ] && break
	sleep 0.1
done
ctl a --json peer | jq -e '.counters | .flows_total == 2 and .flows_open == 0 and .flows_failed == 0' >/dev/null ||
	fail "A's flow counters: $(ctl a --json peer | jq -c .counters)"
ctl b --json peer | jq -e '.counters | .flows_total == 2 and .flows_open == 0 and .flows_failed == 0' >/dev/null ||
	fail "B's flow counters: $(ctl b --json peer | jq -c .counters)"
ctl a --json p2p ls | jq -e '.services[] | select(.kind == "forward") | .flow == true and
	.bytes_to_p2p == 8000000 and .bytes_to_tcp == 8000000' >/dev/null ||
	fail "A's forward: $(ctl a --json p2p ls | jq -c .services)"
ctl a --json metrics | jq -e '.metrics.flows | .total == 2 and .open == 0 and .failed_total == 0' >/dev/null ||
	fail "natxd's metrics do not count the flows: $(ctl a --json metrics | jq -c .metrics.flows)"
if command -v curl >/dev/null; then
	curl -sf "http://127.0.0.1:$HPORT/metrics" >"$T/prom" || fail "GET /metrics"
	grep -qx 'natx_flow_total 2' "$T/prom" && grep -q '^# TYPE natx_flow_migrated_total counter' "$T/prom" ||
		fail "no natx_flow_* in /metrics: $(grep natx_flow "$T/prom")"
fi
echo "ok: connect --local to a natx node uses flows; 2 x 4 MB echoed through the relay, flows closed cleanly"

# 2. a relay that cuts every circuit after 1 MiB (its data limit): the flow goes on over new ones
# (before A has any direct connection to B, which the flow would move to)
start_natxd rl NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=1048576 \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
for _ in $(seq 1 100); do
	ctl rl --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
	sleep 0.1
done
ctl b --json reserve "$(addr_of rl)" >"$T/rsvl.json" || fail "reserve on the limited relay: $(cat "$T/rsvl.json")"
ctl a --json node set nodeBL "$(jq -r .circuit_addr "$T/rsvl.json")" >/dev/null || fail "node set nodeBL"
ctl a --json connect nodeBL --service mgecho --local 127.0.0.1:0 >"$T/cl.json" || fail "connect: $(cat "$T/cl.json")"
PL=$(jq -r .connection.local "$T/cl.json" | sed 's#.*/tcp/##')
rep0=$(counter a flows_repaired)
timeout 60 python3 "$PY" client "$PL" $((8 * 1024 * 1024)) $((4 * 1024 * 1024)) "$T/lim.json" >"$T/lim.out" 2>&1 ||
	fail "8 MiB over 1 MiB circuits: $(cat "$T/lim.json" "$T/lim.out")"
reps=$(($(counter a flows_repaired) - rep0))
limited=$(ctl rl --json relay status | jq -r .counters.circuits_limited)
[ "$reps" -ge 4 ] && [ "$limited" -ge 4 ] ||
	fail "expected several circuits cut at their limit and repaired: $reps repairs, $limited limited"
echo "ok: 8 MiB echoed intact over circuits cut every 1 MiB: $limited circuits hit the limit, $reps repairs"

# 3. a direct connection to B appears while a flow runs over the relay
timeout 60 python3 "$PY" client "$P" $((12 * 1024 * 1024)) $((3 * 1024 * 1024)) "$T/run.json" &
XPID=$!
PIDS+=("$XPID")
sleep 1
ctl a --json p2p forward /natx/svc/mgecho/1.0.0 127.0.0.1:0 "$(addr_of b)" >"$T/fd.json" ||
	fail "direct forward: $(cat "$T/fd.json")"
PD=$(jq -r .service.listen "$T/fd.json" | sed 's#.*/tcp/##')
timeout 30 python3 "$PYB" client "$PD" 1000 1 >"$T/x2" 2>&1 || fail "direct forward echo: $(cat "$T/x2")"
mode=""
for _ in $(seq 1 60); do
	if [ "$(counter a flows_migrated)" -ge 1 ]; then
		mode=migrated
		break
	fi
	if grep -q "refused a switch" "$T/a/natxd.log"; then
		mode=refused
		break
	fi
	sleep 0.1
done
[ -n "$mode" ] || fail "the running flow neither switched to the direct connection nor was refused"
r1=$(relayed_bytes)
for _ in $(seq 1 300); do kill -0 "$XPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$XPID" 2>/dev/null && fail "the transfer hangs"
wait "$XPID"
jq -e '.ok' "$T/run.json" >/dev/null || fail "the flow's bytes broke: $(cat "$T/run.json")"
r2=$(relayed_bytes)
if [ "$mode" = migrated ]; then
	[ "$(counter b flows_migrated)" -ge 1 ] || fail "B did not count the migration"
	[ $((r2 - r1)) -le $((2 * 1024 * 1024)) ] || fail "R relayed $((r2 - r1)) bytes after the switch"
	echo "ok: the running flow switched to the direct connection; R relayed $((r2 - r1)) B after; 12 MiB intact"
else
	[ $((r2 - r1)) -gt 0 ] || fail "refused switch, yet nothing more went through R"
	echo "ok: B refused the switch (direct connection on another shard); the flow stayed on R; 12 MiB intact"
fi
[ "$(counter a flows_failed)" = 0 ] || fail "A counted a failed flow"

# 4. the limited relay again, now that A has a direct connection to B: the flow either moves to
# it, or (refused, another shard of B) is repaired over new circuits and never over it
rep0=$(counter a flows_repaired)
mig0=$(counter a flows_migrated)
timeout 60 python3 "$PY" client "$PL" $((4 * 1024 * 1024)) $((4 * 1024 * 1024)) "$T/lim2.json" >"$T/lim2.out" 2>&1 ||
	fail "4 MiB over 1 MiB circuits with a direct connection around ($mode): $(cat "$T/lim2.json" "$T/lim2.out")"
if [ "$mode" = migrated ]; then
	[ "$(counter a flows_migrated)" -gt "$mig0" ] || fail "the flow did not move to the direct connection"
else
	[ $(($(counter a flows_repaired) - rep0)) -ge 2 ] || fail "the flow was not repaired over new circuits"
fi
echo "ok: 4 MiB over 1 MiB circuits with a direct connection to B around ($mode): intact"

# 5. natxctl p2p forward has no flow flag: plain streams
ctl a --json p2p ls | jq -e --arg p "$PD" '[.services[] | select(.listen | endswith("/tcp/" + $p))][0].flow == false' \
	>/dev/null || fail "a p2p forward without flow is not plain: $(ctl a --json p2p ls | jq -c .services)"
echo "ok: p2p forward without the flow flag stays a plain stream forward"

# 6. the engine's own checks of flow forwards (its control socket, as natxd uses it)
ESOCK=$(ctl a --json status | jq -r '.. | objects | select(has("socket") and has("restarts")) | .socket' | head -1)
[ -S "$ESOCK" ] || fail "A's engine socket not found: $ESOCK"
eng() { timeout 20 python3 "$PY" engine "$ESOCK" "$1"; }
fwd_req() { echo "{\"v\":1,\"id\":1,\"cmd\":\"p2p.forward\",\"listen\":\"127.0.0.1:0\",$1}"; }
eng "$(fwd_req "\"protocol\":\"/natx/svc/mgecho/1.0.0\",\"addr\":\"$B_CIRC\",\"flow\":true,\"alt_addrs\":[\"$(addr_of r)\"]")" \
	>"$T/e1" || fail "engine request"
jq -e '.ok == false and .error.code == "bad_request" and (.error.message | test("same peer"))' "$T/e1" >/dev/null ||
	fail "an alternative address of another peer was accepted: $(cat "$T/e1")"
eng "$(fwd_req "\"protocol\":\"/natx/svc/mgecho/1.0.0\",\"addr\":\"$B_CIRC\",\"alt_addrs\":[\"$(addr_of b)\"]")" \
	>"$T/e2" || fail "engine request"
jq -e '.ok == false and (.error.message | test("flow"))' "$T/e2" >/dev/null ||
	fail "alt_addrs without flow was accepted: $(cat "$T/e2")"
LONG=/natx/svc/$(printf 'x%.0s' $(seq 1 60))/1.0.0
eng "$(fwd_req "\"protocol\":\"$LONG\",\"addr\":\"$B_CIRC\",\"flow\":true")" >"$T/e3" || fail "engine request"
jq -e '.ok == false and (.error.message | test("64"))' "$T/e3" >/dev/null ||
	fail "a flow service name over 64 bytes was accepted: $(cat "$T/e3")"
# a flow to a service B does not expose: B answers OPEN with RESET, the connection ends at once
eng "$(fwd_req "\"protocol\":\"/natx/svc/mgnone/1.0.0\",\"addr\":\"$B_CIRC\",\"flow\":true,\"alt_addrs\":[\"$(addr_of b)\"]")" \
	>"$T/e4" || fail "engine request"
jq -e '.ok and .service.flow and (.service.alt_addrs | length) == 1' "$T/e4" >/dev/null ||
	fail "flow forward with an alternative address: $(cat "$T/e4")"
PN=$(jq -r .service.listen "$T/e4" | sed 's#.*/tcp/##')
SN=$(jq -r .service_id "$T/e4")
timeout 20 python3 "$PY" client "$PN" 100000 1000000 "$T/none.json" >"$T/none.out" 2>&1
jq -e '.ok == false' "$T/none.json" >/dev/null || fail "a flow to a missing service carried data: $(cat "$T/none.json" "$T/none.out")"
eng '{"v":1,"id":2,"cmd":"p2p.ls"}' >"$T/els"
jq -e --argjson id "$SN" '.services[] | select(.id == $id) | .flows_failed == 1 and
	.last_flow_failure.reason == "peer_reset"' "$T/els" >/dev/null ||
	fail "the refused OPEN was not counted: $(jq -c --argjson id "$SN" '.services[] | select(.id == $id)' "$T/els")"
eng "{\"v\":1,\"id\":3,\"cmd\":\"p2p.close\",\"fwd_id\":$SN}" >/dev/null
echo "ok: the engine refuses bad flow forwards; an OPEN of a service B does not expose ends at once ($(jq -r .error "$T/none.json"), counted)"

pass "flow mode on loopback ($mode)"
