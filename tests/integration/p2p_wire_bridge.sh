#!/usr/bin/env bash
# natxctl p2p expose / forward / ls / close on loopback, two natxd instances (A, B: own sockets,
# state dirs and engines) and js-libp2p 3.x:
#  - A exposes /p2pw/echo/1.0.0 -> a local TCP echo server; B forwards a local port to it:
#    1 x 1 MB then 4 concurrent x 16 MB through B -> libp2p -> A -> echo and back, SHA-256
#    compared per connection; both sides' p2p ls count the streams and the bytes
#  - js (peer.mjs dial) pings, identifies and pushes 1 MiB through A's exposed /natx/echo/1.0.0
#    with a digest check
#  - B forwards a port to a js listener's /natx/echo/1.0.0 handler: 2 x 8 MB with checksums
#  - p2p close: the forward's port stops accepting; closing an unknown id is not_found;
#    bad arguments are refused (exit 4)
# Skips (77) when the js packages cannot be installed.
set -uo pipefail
NODES_TAG=p2pw-bridge
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/nodes_lib.sh"
JS=$SRC/tests/interop
PY=$SRC/tests/integration/p2p_bridge.py
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v npm >/dev/null || { echo "SKIP: npm not installed"; exit 77; }
if [ ! -d "$JS/node_modules/libp2p" ] || [ ! -x "$JS/node_modules/.bin/node" ]; then
	if ! (cd "$JS" && timeout 240 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1); then
		echo "SKIP: npm could not install the interop packages"
		exit 77
	fi
fi
NODE=$JS/node_modules/.bin/node

start_natxd a
start_natxd b
A_ADDR=$(addr_of a)

python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EPORT=$(cat "$T/echo.port")

# 1. natx <-> natx
ctl a --json p2p expose /p2pw/echo/1.0.0 "127.0.0.1:$EPORT" >"$T/exp.json" || { cat "$T/exp.json"; fail "expose"; }
ctl a p2p expose /p2pw/echo/1.0.0 "127.0.0.1:$EPORT" >/dev/null 2>"$T/e0"; rc=$?
[ $rc = 17 ] || { cat "$T/e0"; fail "second expose of the same protocol: rc $rc"; }
ctl a --json p2p expose /natx/echo/1.0.0 "127.0.0.1:$EPORT" >/dev/null || fail "expose /natx/echo"
ctl b --json p2p forward /p2pw/echo/1.0.0 127.0.0.1:0 "$A_ADDR" >"$T/fwd.json" || { cat "$T/fwd.json"; fail "forward"; }
FID=$(jq -r .service_id "$T/fwd.json")
FPORT=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
timeout 60 python3 "$PY" client "$FPORT" 1000000 1 >"$T/c1" 2>&1 || { cat "$T/c1"; fail "1 MB through the bridge"; }
timeout 120 python3 "$PY" client "$FPORT" 16000000 4 >"$T/c2" 2>&1 || { cat "$T/c2"; fail "4 x 16 MB"; }
want=$((1000000 + 4 * 16000000))
ctl b --json p2p ls >"$T/lsb.json"
ctl a --json p2p ls >"$T/lsa.json"
jq -e --argjson w $want '.services[] | select(.kind=="forward") | .streams_total == 5 and
	.streams_failed == 0 and .bytes_to_p2p == $w and .bytes_to_tcp == $w' "$T/lsb.json" >/dev/null ||
	{ cat "$T/lsb.json"; fail "B's p2p ls"; }
jq -e --argjson w $want '.services[] | select(.protocol=="/p2pw/echo/1.0.0") | .streams_total == 5
	and .bytes_to_tcp == $w and .bytes_to_p2p == $w' "$T/lsa.json" >/dev/null ||
	{ cat "$T/lsa.json"; fail "A's p2p ls"; }
pass "natx<->natx: 1 MB + 4 x 16 MB echoed through forward -> expose, SHA-256 equal, counted on both sides"

# 2. js -> natx exposed echo (peer.mjs dial: 3 pings, identify, 1 MiB with a digest)
"$NODE" "$JS/peer.mjs" dial "$A_ADDR" >"$T/js1.out" 2>&1 || { cat "$T/js1.out"; fail "js through A's expose"; }
grep -q '"event":"echo","bytes":1048576,"ok":true' "$T/js1.out" || { cat "$T/js1.out"; fail "js echo"; }
pass "js -> natx expose: 1 MiB echo digest ok"

# 3. natx forward -> js protocol handler
"$NODE" "$JS/peer.mjs" listen >"$T/jsl.out" 2>"$T/jsl.err" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '"listening"' "$T/jsl.out" && break; sleep 0.1; done
JADDR=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsl.out")
[ -n "$JADDR" ] || fail "js listener"
ctl b --json p2p forward /natx/echo/1.0.0 127.0.0.1:0 "$JADDR" >"$T/fwd2.json" || { cat "$T/fwd2.json"; fail "forward to js"; }
JPORT=$(jq -r .service.listen "$T/fwd2.json" | sed 's#.*/tcp/##')
timeout 120 python3 "$PY" client "$JPORT" 8000000 2 >"$T/c3" 2>&1 || { cat "$T/c3"; fail "2 x 8 MB to js"; }
pass "natx forward -> js: 2 x 8 MB echoed by js, SHA-256 equal"

# 4. close and bad input
ctl b p2p close "$FID" >/dev/null || fail "p2p close"
closed=0
for _ in $(seq 1 50); do
	if ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$FPORT),timeout=1)" 2>/dev/null; then
		closed=1; break
	fi
	sleep 0.1
done
[ $closed = 1 ] || fail "forward port still accepting after p2p close"
ctl b --json p2p ls | jq -e --argjson id "$FID" '[.services[] | select(.id == $id)] | length == 0' >/dev/null ||
	fail "closed service still listed"
ctl b p2p close 999 >/dev/null 2>"$T/e1"; rc=$?
[ $rc = 14 ] || { cat "$T/e1"; fail "close unknown: rc $rc"; }
ctl a p2p expose noslash 127.0.0.1:1 >/dev/null 2>&1; rc=$?
[ $rc = 4 ] || fail "bad protocol: rc $rc"
ctl b p2p forward /x 127.0.0.1:0 /ip4/127.0.0.1/tcp/1 >/dev/null 2>&1; rc=$?
[ $rc = 4 ] || fail "forward without /p2p/: rc $rc"
ctl a p2p expose /y not-a-target >/dev/null 2>&1; rc=$?
[ $rc = 4 ] || fail "bad target: rc $rc"
timeout 60 python3 "$PY" client "$JPORT" 100000 1 >/dev/null 2>&1 || fail "other forward broken by the close"
pass "p2p close stops the listener, unknown id -> 14, bad arguments -> 4, other forwards unaffected"
exit 0
