#!/usr/bin/env bash
# connect NODE by the best of its known paths: natxd R runs the relay, B reserves on R and
# exposes service "echo", A knows B only through `natxctl node set` (loopback, 2-shard engines):
#  - B's direct address is unreachable (a closed port) and its /p2p-circuit address works:
#    `connect B --service echo --local` takes the relay (path libp2p-relay), the reason says the
#    direct address failed and the relayed one answered; 4 MB echo intact through R;
#  - with B's real direct address recorded, the same connect takes the direct path;
#  - node ls / node rm; a bad multiaddr is a usage error; an unknown node is node_not_found.
set -uo pipefail
NODES_TAG=natx-connrly NODES_LOGS="r a b"
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/nodes_lib.sh"
PY=$SRC/tests/integration/p2p_bridge.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
start_natxd r NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
start_natxd a
start_natxd b
for _ in $(seq 1 100); do
	ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
	sleep 0.1
done
R_ADDR=$(addr_of r)
B_ID=$(jq -r .peer_id "$T/b/peer.json")
B_DIRECT=$(addr_of b)
ctl b --json reserve "$R_ADDR" >"$T/rsv.json" || fail "reserve: $(cat "$T/rsv.json")"
B_CIRC=$(jq -r .circuit_addr "$T/rsv.json")
# A closed port on loopback: bind one, read it, close it.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B_DEAD=/ip4/127.0.0.1/tcp/$DEAD/p2p/$B_ID

python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
ctl b --json p2p expose /natx/svc/echo/1.0.0 "127.0.0.1:$(cat "$T/echo.port")" >/dev/null ||
	fail "expose on B"

# 1. direct unreachable, relay works
ctl a --json node set nodeB "$B_CIRC" "$B_DEAD" >"$T/ns.json" || fail "node set: $(cat "$T/ns.json")"
jq -e '.node.multiaddrs | length == 2' "$T/ns.json" >/dev/null || fail "node set reply: $(cat "$T/ns.json")"
ctl a --json connect nodeB --service echo --local 127.0.0.1:0 >"$T/c1.json" ||
	fail "connect via the relay: $(cat "$T/c1.json")"
jq -e --arg c "$B_CIRC" '.connection.path == "libp2p-relay" and .connection.via == $c and
	(.connection.reason | test("direct failed")) and (.connection.reason | test("relayed ok"))' \
	"$T/c1.json" >/dev/null || fail "relayed connect reply: $(cat "$T/c1.json")"
P1=$(jq -r .connection.local "$T/c1.json" | sed 's#.*/tcp/##')
timeout 120 python3 "$PY" client "$P1" 4000000 1 >"$T/x1" 2>&1 || fail "4 MB via the relay: $(cat "$T/x1")"
ctl r --json relay status | jq -e '.counters.bytes_relayed >= 8000000' >/dev/null ||
	fail "the relay did not carry the bytes"
echo "ok: direct address dead -> libp2p-relay ($(jq -r .connection.reason "$T/c1.json")); 4 MB echoed through R"

# 2. a working direct address wins
ctl a --json node set nodeB "$B_CIRC" "$B_DIRECT" >/dev/null || fail "node set (direct)"
ctl a --json connect nodeB --service echo --local 127.0.0.1:0 >"$T/c2.json" ||
	fail "connect direct: $(cat "$T/c2.json")"
jq -e --arg d "$B_DIRECT" '.connection.path == "libp2p-direct" and .connection.via == $d' \
	"$T/c2.json" >/dev/null || fail "direct connect reply: $(cat "$T/c2.json")"
P2=$(jq -r .connection.local "$T/c2.json" | sed 's#.*/tcp/##')
timeout 60 python3 "$PY" client "$P2" 1000000 1 >"$T/x2" 2>&1 || fail "1 MB direct: $(cat "$T/x2")"
echo "ok: with a live direct address the direct path is chosen (relayed one listed first, tried second)"

# 3. node management and refusals
ctl a --json node ls | jq -e '.nodes | length == 1 and .[0].node_id == "nodeB"' >/dev/null ||
	fail "node ls"
ctl a node ls | grep -q "^nodeB" || fail "node ls table"
ctl a node set nodeC /ip4/127.0.0.1/tcp/1 >"$T/e1" 2>&1; rc=$?
[ $rc = 4 ] || fail "multiaddr without /p2p/: rc $rc $(cat "$T/e1")"
ctl a connect nodeC --service echo --local 127.0.0.1:0 >"$T/e2" 2>&1; rc=$?
[ $rc = 14 ] || fail "unknown node: rc $rc $(cat "$T/e2")"
ctl a node rm nodeB >/dev/null || fail "node rm"
ctl a node rm nodeB >/dev/null 2>&1; rc=$?
[ $rc = 14 ] || fail "node rm twice: rc $rc"
echo "PASS: connect NODE tries direct addresses first, then relayed ones"
