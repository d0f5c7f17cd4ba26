#!/usr/bin/env bash
# The issue's bulk bridging runs against js-libp2p 3.x (tests/interop/bridge.mjs), loopback only.
# natxd A exposes /p2d/echo/1.0.0 -> a local TCP echo server; natxd B forwards local ports.
#  1. js dials A and pushes 256 MiB through the exposed echo on one stream, then 50 concurrent
#     streams x 2 MiB on one connection; js compares SHA-256 of what it sent and got back
#  2. B forwards to a js node that echoes the protocol: 256 MiB on one stream, then 50
#     concurrent connections x 1 MiB (50 streams on B's one connection to js), SHA-256 each
#  3. js forwards a TCP port to A's expose (js dials natx), and B forwards to a js expose
#     that bridges to the TCP echo (natx dials js): 64 MiB each, SHA-256 equal
#  4. the js echo node is killed (SIGKILL) in the middle of a transfer through B: the client
#     sees its connection end, B's forward counts the stream as failed and frees it, and B's
#     other forward still moves bytes
#  5. the counters: A's expose served exactly the bytes of 1 and 3, none failed
# Skips (77) when the js packages cannot be installed.
set -uo pipefail
NODES_TAG=p2d-bulkjs
# shellcheck source=tests/integration/nodes_lib.sh
. "$(dirname "$0")/nodes_lib.sh"
JS=$SRC/tests/interop
PY=$SRC/tests/integration/p2p_bulk.py
fail_extra() {
	for f in "$T"/js*.err; do [ -s "$f" ] && tail -n 5 "$f" | sed "s/^/    $(basename "$f"): /"; done
}
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

start_js() { # NAME ARGS... - background bridge.mjs; waits for its first line
	local n=$1
	shift
	"$NODE" "$JS/bridge.mjs" "$@" >"$T/$n.out" 2>"$T/$n.err" &
	PIDS+=($!)
	JSPID=$!
	for _ in $(seq 1 150); do [ -s "$T/$n.out" ] && return 0; sleep 0.1; done
	fail "js $n did not start"
}
client() { # PORT BYTES N SEED WHAT
	timeout 250 python3 "$PY" client "$1" "$2" "$3" "$4" >"$T/c.out" 2>&1 || { cat "$T/c.out"; fail "$5"; }
	jq -e --argjson n "$3" '.matched == $n' "$T/c.out" >/dev/null || { cat "$T/c.out"; fail "$5"; }
}
forward() { # PROTO PEER -> FPORT = the local port
	ctl b --json p2p forward "$1" 127.0.0.1:0 "$2" >"$T/fwd.json" || { cat "$T/fwd.json"; fail "forward $1"; }
	FPORT=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
}

start_natxd a
start_natxd b
A_ADDR=$(addr_of a)
python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EPORT=$(cat "$T/echo.port")
ctl a --json p2p expose /p2d/echo/1.0.0 "127.0.0.1:$EPORT" >"$T/exp.json" || { cat "$T/exp.json"; fail "expose"; }
BIG=$((256 << 20))
MID=$((64 << 20))

# 1. js -> natx expose
timeout 250 "$NODE" "$JS/bridge.mjs" push "$A_ADDR" /p2d/echo/1.0.0 $BIG 1 >"$T/p1" 2>"$T/js-p1.err" ||
	{ cat "$T/p1"; fail "js push 256 MiB"; }
pass "js -> natx expose: 256 MiB on one stream, SHA-256 equal: $(jq -c '{matched, ms}' "$T/p1")"
timeout 250 "$NODE" "$JS/bridge.mjs" push "$A_ADDR" /p2d/echo/1.0.0 $((2 << 20)) 50 >"$T/p2" 2>"$T/js-p2.err" ||
	{ cat "$T/p2"; fail "js push 50 streams"; }
jq -e '.matched == 50 and .conns == 1' "$T/p2" >/dev/null || { cat "$T/p2"; fail "50 streams on one connection"; }
pass "js -> natx expose: 50 concurrent streams x 2 MiB on one connection, each SHA-256 equal"

# 2. natx forward -> js echo handler
start_js jsecho echo
JECHO_PID=$JSPID
JECHO=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsecho.out")
forward /p2d/echo/1.0.0 "$JECHO"
JPORT=$FPORT
client "$JPORT" $BIG 1 21 "256 MiB through B's forward to js"
pass "natx forward -> js echo: 256 MiB on one stream, SHA-256 equal ($(jq -r .seconds "$T/c.out") s)"
client "$JPORT" $((1 << 20)) 50 300 "50 concurrent streams through B's forward to js"
ctl b --json peer | jq -e '.counters.conns_out == 1 and .counters.conns_failed == 0' >/dev/null ||
	fail "B should have dialled the js node once for all 51 streams"
pass "natx forward -> js echo: 50 concurrent streams x 1 MiB on one connection, each SHA-256 equal"

# 3. js forward -> natx expose, natx forward -> js expose -> TCP echo
start_js jsfwd forward /p2d/echo/1.0.0 "$A_ADDR"
JFPORT=$(jq -r 'select(.event=="forwarding") | .port' "$T/jsfwd.out")
client "$JFPORT" $MID 1 31 "64 MiB through a js forward to A's expose"
start_js jsexp expose /p2d/jsx/1.0.0 "127.0.0.1:$EPORT"
JEXP=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsexp.out")
forward /p2d/jsx/1.0.0 "$JEXP"
XPORT=$FPORT
client "$XPORT" $MID 1 41 "64 MiB through B's forward to a js expose"
pass "js forward -> natx expose and natx forward -> js expose: 64 MiB each, SHA-256 equal"

# 4. the js echo node dies in the middle of a transfer
FID=$(ctl b --json p2p ls | jq --arg p "$JECHO" '.services[] | select(.peer == $p) | .id')
BASE=$(ctl b --json p2p ls | jq --argjson id "$FID" '.services[] | select(.id == $id) | .bytes_to_p2p')
timeout 120 python3 "$PY" client "$JPORT" $BIG 1 51 >"$T/c4" 2>&1 &
C4=$!
for _ in $(seq 1 200); do
	ctl b --json p2p ls | jq -e --argjson id "$FID" --argjson b "$BASE" \
		'.services[] | select(.id == $id) | .bytes_to_p2p > $b + 8000000' >/dev/null && break
	sleep 0.05
done
kill -9 "$JECHO_PID"
wait "$JECHO_PID" 2>/dev/null
wait "$C4"
rc=$?
[ $rc != 0 ] || { cat "$T/c4"; fail "a transfer whose js peer died cannot have succeeded"; }
for _ in $(seq 1 100); do
	ctl b --json p2p ls >"$T/lsb.json"
	jq -e --argjson id "$FID" '.services[] | select(.id == $id) | .streams_open == 0' "$T/lsb.json" >/dev/null && break
	sleep 0.1
done
jq -e --argjson id "$FID" '.services[] | select(.id == $id) | .streams_open == 0 and
	.streams_failed == 1 and .streams_total == 52' "$T/lsb.json" >/dev/null ||
	{ cat "$T/lsb.json"; fail "B after the js peer died"; }
client "$XPORT" $((1 << 20)) 1 61 "B's other forward after the js peer died"
pass "js peer killed mid-transfer: the stream failed and was freed, B's other forward still works"

# 5. A's counters: 1 x 256 MiB + 50 x 2 MiB (js push) + 64 MiB (js forward), all echoed
want=$((BIG + 50 * (2 << 20) + MID))
ctl a --json p2p ls >"$T/lsa.json"
jq -e --argjson w $want '.services[0] | .streams_total == 52 and .streams_failed == 0 and
	.bytes_to_tcp == $w and .bytes_to_p2p == $w' "$T/lsa.json" >/dev/null ||
	{ cat "$T/lsa.json"; fail "A's expose counters"; }
pass "A's expose: 52 streams, 0 failed, $want bytes each way"
exit 0
