#!/usr/bin/env bash
# natxctl connect --local / connections / connections close, two natxd (A, B) with libp2p on
# loopback:
#  - B exposes service "echo" (/natx/svc/echo/1.0.0) -> a local echo server; A connects to B
#    with --service echo --local 127.0.0.1:0: the reply names the path (libp2p-direct), the
#    address used and why (the selection trace); 2 x 4 MB echo through the local port intact;
#  - `connections` lists it (also GET /api/nat-traversal/connections), natxd A restarted keeps
#    the record; POST /api/nat-traversal/connect with "local" from loopback opens a second one;
#  - a service B does not offer is refused with not_found before any port opens; no --service
#    for the libp2p path and a bad service name are usage errors;
#  - connections close stops the local port and forgets the record; closing it again: not_found.
set -uo pipefail
NODES_TAG=natx-connect
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/nodes_lib.sh"
PY=$SRC/tests/integration/p2p_bridge.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl missing"; exit 77; }
HTTP_LISTEN=127.0.0.1:0
start_natxd a
start_natxd b
B_ADDR=$(addr_of b)

python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EPORT=$(cat "$T/echo.port")
ctl b --json p2p expose /natx/svc/echo/1.0.0 "127.0.0.1:$EPORT" >/dev/null || fail "expose on B"

# 1. connect with a local port
ctl a --json connect "$B_ADDR" --service echo --local 127.0.0.1:0 >"$T/c1.json" ||
	fail "connect --local: $(cat "$T/c1.json")"
jq -e '.connection.path == "libp2p-direct" and .connection.type == "libp2p" and
	(.connection.reason | test("libp2p: chosen")) and .connection.service == "echo" and
	.connection_info.traversal_type == "libp2p"' "$T/c1.json" >/dev/null ||
	fail "connect reply: $(cat "$T/c1.json")"
CID=$(jq -r .connection.id "$T/c1.json")
LPORT=$(jq -r .connection.local "$T/c1.json" | sed 's#.*/tcp/##')
timeout 60 python3 "$PY" client "$LPORT" 4000000 2 >"$T/x1" 2>&1 || fail "2 x 4 MB: $(cat "$T/x1")"
echo "ok: connect --service echo --local: $(jq -r '.connection | "\(.local) \(.path) why: \(.reason)"' "$T/c1.json"); 2 x 4 MB echoed"

# 2. listed on the socket and over HTTP; kept across a restart of natxd A
ctl a --json connections | jq -e --argjson id "$CID" '[.connections[] | select(.id == $id and
	.via != "" and .local != "")] | length == 1' >/dev/null || fail "connections list"
ctl a connections | grep -q "libp2p-direct" || fail "connections table"
HTTP=$(ctl a --json status | jq -r .status.http)
curl -sf "http://$HTTP/api/nat-traversal/connections" | jq -e 'any(.connections[]; .service == "echo")' \
	>/dev/null || fail "GET /api/nat-traversal/connections"
kill "${NODE_PID[a]}"
wait "${NODE_PID[a]}" 2>/dev/null
start_natxd a
ctl a --json connections | jq -e --argjson id "$CID" 'any(.connections[]; .id == $id)' >/dev/null ||
	fail "the connection record did not survive a natxd restart"
ok=0
for _ in $(seq 1 50); do
	if timeout 30 python3 "$PY" client "$LPORT" 1000000 1 >"$T/x1b" 2>&1; then
		ok=1
		break
	fi
	sleep 0.2
done
[ $ok = 1 ] || fail "the local port did not come back after the restart: $(cat "$T/x1b")"
echo "ok: listed (socket, HTTP); record and local port back after a natxd restart"

# 3. HTTP connect with "local" from loopback
HTTP=$(ctl a --json status | jq -r .status.http)
curl -s -X POST "http://$HTTP/api/nat-traversal/connect" -d "{\"target_node_id\":\"$B_ADDR\",
	\"service\":\"echo\",\"local\":\"127.0.0.1:0\"}" >"$T/h.json"
jq -e '.connection.path == "libp2p-direct"' "$T/h.json" >/dev/null || fail "HTTP connect: $(cat "$T/h.json")"
HPORT=$(jq -r .connection.local "$T/h.json" | sed 's#.*/tcp/##')
timeout 60 python3 "$PY" client "$HPORT" 1000000 1 >"$T/x2" 2>&1 || fail "HTTP connection: $(cat "$T/x2")"
echo "ok: POST /api/nat-traversal/connect with local: 1 MB echoed"

# 4. refusals
n0=$(ctl a --json connections | jq '.connections | length')
ctl a connect "$B_ADDR" --service nosuch --local 127.0.0.1:0 >"$T/e1" 2>&1; rc=$?
[ $rc = 14 ] && grep -q "does not offer /natx/svc/nosuch/1.0.0" "$T/e1" ||
	fail "unoffered service: rc $rc $(cat "$T/e1")"
ctl a connect "$B_ADDR" --local 127.0.0.1:0 >"$T/e2" 2>&1; rc=$?
[ $rc = 4 ] || fail "no --service: rc $rc $(cat "$T/e2")"
ctl a connect "$B_ADDR" --service 'bad name' --local 127.0.0.1:0 >"$T/e3" 2>&1; rc=$?
[ $rc = 4 ] || fail "bad service name: rc $rc $(cat "$T/e3")"
n1=$(ctl a --json connections | jq '.connections | length')
[ "$n0" = "$n1" ] || fail "a refused connect left a record ($n0 -> $n1)"
echo "ok: unoffered service (not_found), missing and bad service names (usage) refused, nothing recorded"

# 5. close
HID=$(jq -r .connection.id "$T/h.json")
n_p2p=$(ctl a --json p2p ls | jq '[.services[] | select(.kind == "forward")] | length')
ctl a connections close "$HID" >/dev/null || fail "connections close"
[ "$(ctl a --json p2p ls | jq '[.services[] | select(.kind == "forward")] | length')" = $((n_p2p - 1)) ] ||
	fail "closing the connection did not remove its p2p forward"
python3 -c "import socket; socket.create_connection(('127.0.0.1', $HPORT), timeout=1)" 2>/dev/null &&
	fail "closed connection's port still accepts"
ctl a --json connections | jq -e --argjson id "$HID" 'all(.connections[]; .id != $id)' >/dev/null ||
	fail "closed connection still listed"
ctl a connections close "$HID" >/dev/null 2>&1; rc=$?
[ $rc = 14 ] || fail "closing twice: rc $rc"
echo "PASS: natxctl connect --local, connections, close"
