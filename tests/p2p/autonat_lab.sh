#!/usr/bin/env bash
# AutoNAT v1 across the NAT lab (tests/lab/natlab.sh, routed core): a natx relay R on the public
# segment serves /libp2p/autonat/1.0.0 (every natx engine does, on shard 0); node A sits behind
# an endpoint-independent Linux NAT (MASQUERADE, unsolicited inbound filtered), node P is a
# second natxd in R's namespace (public, listening on 4002). A and P keep a connection to R (a
# reservation) and ask R to dial them back (`natxctl nat probe`):
#  - P ends `public`, the address R reached is P's own public address; a second agreeing
#    answer raises its confidence to 1;
#  - A ends `private`: R dialled NAT A's public address (the observed IP of A's connection)
#    and the NAT filtered it; A's claimed address carries NAT A's public IP;
#  - R's server counted at least one OK and one dial error, and refused nothing it should dial.
# Relay discovery (NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY, AutoNAT's verdict drives it), every node
# with R as its only bootstrap peer (NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS), nobody runs reserve:
#  - D behind NAT B, discovery on: ends private and reserves on R by itself; its circuit
#    address through R is in `natxctl peer` and A (behind NAT A) pings and identifies D by it;
#  - O behind NAT A, discovery off: ends private, no reservation (R's count does not move);
#  - Q on the public segment, discovery on: ends public, no reservation.
# Skips (77) without root, namespaces or the tools.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	for n in r a p; do
		tail -n 8 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter jq; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
TAG=atn$(($$ % 100000))
T=$(mktemp -d /tmp/atn-lab.XXXXXX)
PIDS=()

trap 'natlab_stop; rm -rf "$T"' EXIT

ctl() { nl_ctl "$@"; }

# node NAME NS PORT [ENV=VALUE...] - natxd with libp2p on 0.0.0.0:PORT in namespace NS.
node() { nl_natxd "$@"; }

# verdict NODE WANT - probe until NODE's reachability is WANT (at most ~60 s); leaves nat.json.
verdict() {
	local n=$1 want=$2 i
	ctl "$n" --json nat probe >"$T/$n/nat.json" 2>&1 || fail "$n: nat probe: $(cat "$T/$n/nat.json")"
	for i in $(seq 1 120); do
		ctl "$n" --json nat >"$T/$n/nat.json" 2>&1 || fail "$n: nat: $(cat "$T/$n/nat.json")"
		[ "$(jq -r .reachability "$T/$n/nat.json")" = unknown ] || break
		sleep 0.5
	done
	jq -e --arg w "$want" '.reachability == $w and .confidence >= 0' "$T/$n/nat.json" >/dev/null ||
		fail "$n: expected $want: $(cat "$T/$n/nat.json")"
}

ip netns add "${TAG}probe" 2>/dev/null && ip netns del "${TAG}probe" ||
	skip "cannot create network namespaces"
natlab_up "$TAG" routed eim eim || fail "natlab_up routed eim eim"
node r "$NL_RELAY" 4001 NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true
node a "$NL_A" 4001
node p "$NL_RELAY" 4002
for _ in $(seq 1 100); do
	ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
	sleep 0.1
done
r_addr=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$(jq -r .peer_id "$T/r/peer.json")
r_id=$(jq -r .peer_id "$T/r/peer.json")
ctl a --json reserve "$r_addr" >"$T/rsv_a.json" 2>&1 || fail "A reserve: $(cat "$T/rsv_a.json")"
ctl p --json reserve "$r_addr" >"$T/rsv_p.json" 2>&1 || fail "P reserve: $(cat "$T/rsv_p.json")"

verdict p public
jq -e --arg ip "/ip4/$NL_RELAY_IP/tcp/4002" --arg r "$r_id" '
	(.observed_addrs | index($ip)) != null and .reached_addr == $ip and
	([.results[] | select(.peer == $r and .status == 0)] | length) >= 1' "$T/p/nat.json" >/dev/null ||
	fail "P's record: $(cat "$T/p/nat.json")"
# a second agreeing answer raises the confidence
ctl p --json nat probe >/dev/null 2>&1 || fail "P: second nat probe"
for _ in $(seq 1 60); do
	ctl p --json nat >"$T/p/nat.json" 2>&1 || fail "P: nat"
	jq -e '.reachability == "public" and .confidence >= 1' "$T/p/nat.json" >/dev/null && break
	sleep 0.5
done
jq -e '.reachability == "public" and .confidence >= 1' "$T/p/nat.json" >/dev/null ||
	fail "P's confidence did not rise: $(cat "$T/p/nat.json")"
echo "ok: P on the public segment is public ($(jq -c '{confidence, reached_addr}' "$T/p/nat.json"))"

verdict a private
jq -e --arg ip "/ip4/$NL_A_PUB/tcp/4001" --arg r "$r_id" '
	(.observed_addrs | index($ip)) != null and
	([.results[] | select(.peer == $r and .status == 100)] | length) >= 1' "$T/a/nat.json" >/dev/null ||
	fail "A's record: $(cat "$T/a/nat.json")"
echo "ok: A behind NAT A is private ($(jq -c '{confidence, observed_addrs}' "$T/a/nat.json"))"

ctl r --json nat >"$T/r/nat.json" || fail "R's nat"
jq -e '.server.ok >= 1 and .server.dial_errors >= 1 and .server.bad_requests == 0' \
	"$T/r/nat.json" >/dev/null || fail "R's server counters: $(cat "$T/r/nat.json")"
echo "ok: R's AutoNAT server: $(jq -c .server "$T/r/nat.json")"
ctl a --json services >"$T/svc.json" 2>&1 || fail "A's services: $(cat "$T/svc.json")"
jq -e '.services[] | select(.type=="libp2p") | .detail | test("nat private")' "$T/svc.json" >/dev/null ||
	fail "A's libp2p service detail: $(cat "$T/svc.json")"
echo "ok: A's libp2p service detail: $(jq -r '.services[] | select(.type=="libp2p") | .detail' "$T/svc.json")"

# ---- relay discovery ----
rsv_before=$(ctl r --json relay status | jq -r .counters.reservations_active)
node d "$NL_B" 4001 NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS="$r_addr" NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY=true
node o "$NL_A" 4003 NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS="$r_addr"
node q "$NL_RELAY" 4004 NAT_TRAVERSAL_LIBP2P_BOOTSTRAP_PEERS="$r_addr" NAT_TRAVERSAL_ENABLE_RELAY_DISCOVERY=true
d_id=$(jq -r .peer_id "$T/d/peer.json")
d_circ=$r_addr/p2p-circuit/p2p/$d_id
t0=$(date +%s%N)
for _ in $(seq 1 120); do
	ctl d --json peer >"$T/d/peer2.json" 2>/dev/null &&
		jq -e --arg c "$d_circ" '.circuit_addrs | index($c) != null' "$T/d/peer2.json" >/dev/null && break
	sleep 0.5
done
t1=$(date +%s%N)
jq -e --arg c "$d_circ" '.circuit_addrs | index($c) != null' "$T/d/peer2.json" >/dev/null ||
	fail "D (discovery on, private) did not reserve on R by itself: $(cat "$T/d/peer2.json"); nat: $(ctl d --json nat)"
ctl d --json nat >"$T/d/nat.json" || fail "D's nat"
jq -e --arg r "$r_id" '.reachability == "private" and .relay_discovery.enabled == true and
	([.relay_discovery.relays[] | select(.peer_id == $r and .reserved and .discovered)] | length) == 1' \
	"$T/d/nat.json" >/dev/null || fail "D's nat / relay discovery: $(cat "$T/d/nat.json")"
ctl d nat >"$T/d/nat.txt" || fail "D's nat (text)"
grep -q "^relay discovery: on" "$T/d/nat.txt" && grep -qF "reserved $d_circ" "$T/d/nat.txt" ||
	fail "D's nat text lacks the discovered relay: $(cat "$T/d/nat.txt")"
echo "ok: D behind NAT B, discovery on: private, reserved on R by itself in $(((t1 - t0) / 1000000)) ms: $d_circ"
ctl a --json ping -n 3 "$d_circ" >"$T/dping.json" 2>&1 || fail "A cannot ping D through its discovered reservation: $(cat "$T/dping.json")"
jq -e --arg d "$d_id" '.peer_id == $d and (.rtt_ms | length) == 3' "$T/dping.json" >/dev/null ||
	fail "ping reply: $(cat "$T/dping.json")"
ctl a --json identify "$d_circ" >"$T/did.json" 2>&1 || fail "A cannot identify D: $(cat "$T/did.json")"
jq -e --arg d "$d_id" '.peer_id == $d and (.agent_version | startswith("natx/"))' "$T/did.json" >/dev/null ||
	fail "identify record: $(cat "$T/did.json")"
echo "ok: A (behind NAT A) pings (3) and identifies D by that circuit address"
# O (off) and Q (public) reach their verdicts; neither reserves
verdict o private
verdict q public
sleep 3 # several shard ticks after the verdicts
for n in o q; do
	ctl "$n" --json peer >"$T/$n/peer2.json" || fail "$n: peer"
	jq -e '(.circuit_addrs // []) | length == 0' "$T/$n/peer2.json" >/dev/null ||
		fail "$n reserved without discovery or while public: $(cat "$T/$n/peer2.json")"
	ctl "$n" --json nat | jq -e '.relay_discovery.relays | length == 0' >/dev/null ||
		fail "$n: relay discovery asked for a reservation: $(ctl "$n" --json nat)"
done
ctl r --json relay status >"$T/r/rs.json" || fail "R's relay status"
jq -e --argjson b "$rsv_before" '.counters.reservations_active == $b + 1' "$T/r/rs.json" >/dev/null ||
	fail "R holds other than $rsv_before + 1 (D's) reservations: $(jq -c .counters "$T/r/rs.json")"
echo "ok: O (discovery off, private) and Q (discovery on, public) made no reservation; R holds $((rsv_before + 1))"
echo "PASS: AutoNAT across the NAT lab"
