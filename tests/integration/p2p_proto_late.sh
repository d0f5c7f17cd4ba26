#!/usr/bin/env bash
# A protocol that appears after a connection was made is served on that connection (loopback,
# two natxd nodes): A and B connect (a forward to a first service, a TCP connection through it
# held open), then B exposes
# a new service; A's forward to it uses the connection that already exists and must get the
# stream accepted, not refused ("na") because the connection was made before the expose.
# The same path serves a relay restarted by natxd: peers reconnect before natxd turns the hop
# server on (tests/lab/migrate_lab.sh case 3 failed about one run in five before the fix).
set -uo pipefail
NODES_TAG=natx-protolate
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/nodes_lib.sh"
PY=$SRC/tests/integration/p2p_bridge.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
start_natxd a
start_natxd b
B_ADDR=$(addr_of b)
B_ID=$(jq -r .peer_id "$T/b/peer.json")

python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EP=$(cat "$T/echo.port")
# the connection: a first service, with a TCP connection through it held open
ctl b --json p2p expose /natx/svc/first/1.0.0 "127.0.0.1:$EP" >/dev/null || fail "expose first on B"
ctl a --json p2p forward /natx/svc/first/1.0.0 127.0.0.1:0 "$B_ADDR" >"$T/f0.json" ||
	fail "forward first on A: $(cat "$T/f0.json")"
F0=$(jq -r .service.listen "$T/f0.json" | sed 's#.*/tcp/##')
python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x"); assert s.recv(1) == b"x"; print("held", flush=True); time.sleep(60)' "$F0" \
	>"$T/held" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q held "$T/held" && break; sleep 0.1; done
grep -q held "$T/held" || fail "first service: $(cat "$T/held")"
ctl a --json peers | jq -e --arg b "$B_ID" '[.peers[] | select(.peer_id == $b)] | length == 1' \
	>/dev/null || fail "no connection from A to B: $(ctl a --json peers)"

ctl b --json p2p expose /natx/svc/late/1.0.0 "127.0.0.1:$(cat "$T/echo.port")" >/dev/null ||
	fail "expose on B"
ctl a --json p2p forward /natx/svc/late/1.0.0 127.0.0.1:0 "$B_ADDR" >"$T/f.json" ||
	fail "forward on A: $(cat "$T/f.json")"
FPORT=$(jq -r .service.listen "$T/f.json" | sed 's#.*/tcp/##')
timeout 60 python3 "$PY" client "$FPORT" 200000 2 >"$T/x" 2>&1 ||
	fail "echo through the late protocol: $(cat "$T/x")"
# still the one connection made before the expose
ctl a --json peers | jq -e --arg b "$B_ID" '[.peers[] | select(.peer_id == $b)] | length == 1' \
	>/dev/null || fail "A opened another connection to B: $(ctl a --json peers)"
pass "a protocol exposed after the connection was made is accepted on it (2 x 200 kB echoed)"
