#!/usr/bin/env bash
# libp2p between two natx nodes behind real NATs (tests/lab/natlab.sh, routed core), each node a
# natxd with its own engine in its own site namespace:
#  - B behind a full-cone NAT, A behind an endpoint-independent one: A pings and identifies B
#    at NAT B's public address (B reports A's NAT address as observed: the NAT was crossed),
#    and 2 x 8 MB go through `p2p forward` (A) -> libp2p -> `p2p expose` (B) -> echo and back
#    with SHA-256 equal;
#  - B behind an endpoint-independent NAT (no inbound mapping): A's ping to B's public address
#    fails with an error within a bounded time, nothing hangs, and A's daemon still answers.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	for n in a b; do
		tail -n 8 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter python3 jq; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
PY=$NATX_SRC/tests/integration/p2p_bridge.py
TAG=nlp$(($$ % 100000))
T=$(mktemp -d /tmp/natx-lab-p2p.XXXXXX)
PIDS=()

trap 'natlab_stop; rm -rf "$T"' EXIT

ctl() { nl_ctl "$@"; }

# node NAME NS - natxd with libp2p on 0.0.0.0:4001 in namespace NS; waits for its peer ID.
node() { nl_natxd "$1" "$2" 4001; }

# lab NAT_A NAT_B - a fresh routed lab with a natxd in each site.
lab() {
	natlab_stop
	ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
		skip "cannot create network namespaces"
	natlab_up "$TAG" routed "$1" "$2" || fail "natlab_up routed $1 $2"
	node a "$NL_A"
	node b "$NL_B"
	B_ID=$(jq -r .peer_id "$T/b/peer.json")
	B_PUB=/ip4/$NL_B_PUB/tcp/4001/p2p/$B_ID
}

# 1. Full-cone B: reachable at its NAT's public address.
lab eim full
ctl a --json ping "$B_PUB" -n 3 >"$T/ping.json" 2>&1 || fail "ping B through NAT B: $(cat "$T/ping.json")"
ctl a --json identify "$B_PUB" >"$T/id.json" 2>&1 || fail "identify B: $(cat "$T/id.json")"
jq -e --arg pub "/ip4/$NL_A_PUB/" '.observed_addr | startswith($pub)' "$T/id.json" >/dev/null ||
	fail "B did not observe A's NAT address $NL_A_PUB: $(cat "$T/id.json")"
echo "ok: eim -> full cone: ping and identify at $NL_B_PUB; B saw A as $(jq -r .observed_addr "$T/id.json")"

nl_bg "$NL_B" python3 "$PY" echo-server >"$T/echo.port"
PIDS+=($!)
for _ in $(seq 1 50); do
	[ -s "$T/echo.port" ] && break
	sleep 0.1
done
EPORT=$(cat "$T/echo.port")
[ -n "$EPORT" ] || fail "echo server in site B"
ctl b --json p2p expose /lab/echo/1.0.0 "127.0.0.1:$EPORT" >/dev/null || fail "expose on B"
ctl a --json p2p forward /lab/echo/1.0.0 127.0.0.1:0 "$B_PUB" >"$T/fwd.json" ||
	fail "forward on A: $(cat "$T/fwd.json")"
FPORT=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
nl_exec "$NL_A" timeout 120 python3 "$PY" client "$FPORT" 8000000 2 >"$T/c1" 2>&1 ||
	fail "2 x 8 MB across the NATs: $(cat "$T/c1")"
ctl b --json p2p ls | jq -e '.services[] | select(.protocol == "/lab/echo/1.0.0") |
	.bytes_to_tcp == 16000000 and .bytes_to_p2p == 16000000' >/dev/null ||
	fail "B's expose did not count 16 MB each way"
echo "ok: eim -> full cone: 2 x 8 MB echoed through forward -> libp2p -> expose, SHA-256 equal"

# 2. Endpoint-independent (filtering) B: unreachable without help; fails cleanly.
lab eim eim
start=$(date +%s)
if ctl a --json ping "$B_PUB" -n 1 >"$T/ping2.json" 2>&1; then
	fail "reached B behind a filtering NAT without traversal: $(cat "$T/ping2.json")"
fi
took=$(($(date +%s) - start))
[ "$took" -le 45 ] || fail "the failed ping took ${took}s"
grep -q . "$T/ping2.json" || fail "the failed ping printed no reason"
ctl a --json peer >/dev/null || fail "natxd A stopped answering after the failed dial"
echo "ok: eim -> eim: direct dial refused by NAT B in ${took}s with: $(head -c 160 "$T/ping2.json")"
natlab_stop
echo "PASS: libp2p across the NAT lab"
