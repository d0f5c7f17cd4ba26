#!/usr/bin/env bash
# Namespace lab for the STUN reflector (XDP) and its user-space fallback (natx-stund).
#
#   natxbpfC (client)          natxbpfR (NAT router)                   natxbpfS (relay)
#   c0 10.77.1.2/24 ──veth── r0 10.77.1.1/24                           natx-bpf (XDP) on s0
#                            r1 198.18.77.1/24 (+ .3) ──veth── s0 198.18.77.2/24, fd77::2/64
#   natxbpfD (2nd client)    MASQUERADE 10.77.1.0/24 -> .1, ports 20000-20999
#   d0 10.77.2.2/24 ──veth── r2 10.77.2.1/24, SNAT 10.77.2.0/24 -> 198.18.77.3
#                            xdp_pass on r1 (veth delivers XDP_TX only to a peer with XDP)
#
# Checks, for the XDP reflector (native, then generic) and then for natx-stund:
#  - turnutils_stunclient (coturn) and natx-stunc in natxbpfC learn 198.18.77.1:<port> and
#    <port> is the router's conntrack mapping of that flow (not the client's own port);
#  - IPv6 from the router straight to the relay (fd77::1 -> fd77::2) gets its own address;
#  - a flood of 20000 requests from C is cut to about burst + rate * time while D, a
#    different public source, is still answered; the rate_limited counter moved.
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root for namespaces and XDP"
: "${NATX_BIN:?}" "${NATX_BUILD:?}"
for t in ip iptables conntrack nsenter turnutils_stunclient; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
XDP_PASS_OBJ=$NATX_BUILD/bpf/xdp_pass.bpf.o
[ -f "$XDP_PASS_OBJ" ] || skip "BPF objects not built"

C=natxbpfC$$ R=natxbpfR$$ S=natxbpfS$$ D=natxbpfD$$
PIN=/sys/fs/bpf/natxbpf-lab-$$
RATE=50 BURST=20
PIDS=()

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	"$NATX_BIN/natx-bpf" detach s0 --pin-root "$PIN" >/dev/null 2>&1
	rmdir "$PIN" 2>/dev/null
	for n in $C $R $S $D; do ip netns del "$n" 2>/dev/null; done
}
trap cleanup EXIT

inn() { local n=$1; shift; ip netns exec "$n" "$@"; }
# natx-bpf needs the host's bpffs, which `ip netns exec` hides: enter only the net namespace.
bpfctl() { nsenter --net=/run/netns/$S "$NATX_BIN/natx-bpf" "$@" --pin-root "$PIN"; }
# Background daemons are started as plain commands (not through a function, which would fork a
# subshell): nsenter execs the program, so $! is the daemon itself and signals reach it.

for n in $C $R $S $D; do ip netns add "$n" || skip "cannot create network namespaces"; done
ip link add c0 netns $C type veth peer name r0 netns $R
ip link add d0 netns $D type veth peer name r2 netns $R
ip link add r1 netns $R type veth peer name s0 netns $S
inn $C ip addr add 10.77.1.2/24 dev c0
inn $D ip addr add 10.77.2.2/24 dev d0
inn $R ip addr add 10.77.1.1/24 dev r0
inn $R ip addr add 10.77.2.1/24 dev r2
inn $R ip addr add 198.18.77.1/24 dev r1
inn $R ip addr add 198.18.77.3/24 dev r1
inn $R ip -6 addr add fd77::1/64 dev r1 nodad
inn $S ip addr add 198.18.77.2/24 dev s0
inn $S ip -6 addr add fd77::2/64 dev s0 nodad
for n in $C $R $S $D; do inn $n ip link set lo up; done
inn $C ip link set c0 up
inn $D ip link set d0 up
for d in r0 r1 r2; do inn $R ip link set $d up; done
inn $S ip link set s0 up
inn $C ip route add default via 10.77.1.1
inn $D ip route add default via 10.77.2.1
inn $R sysctl -qw net.ipv4.ip_forward=1
inn $R iptables -t nat -A POSTROUTING -s 10.77.1.0/24 -o r1 -p udp -j MASQUERADE --to-ports 20000-20999
inn $R iptables -t nat -A POSTROUTING -s 10.77.1.0/24 -o r1 -j MASQUERADE
inn $R iptables -t nat -A POSTROUTING -s 10.77.2.0/24 -o r1 -j SNAT --to-source 198.18.77.3
inn $R ip link set dev r1 xdpdrv obj "$XDP_PASS_OBJ" sec xdp ||
	skip "cannot attach the XDP_PASS program to the veth peer"
# A user-space responder on another port: proves XDP passes traffic it does not own.
nsenter --net=/run/netns/$S "$NATX_BIN/natx-stund" --listen 198.18.77.2:3479 >/dev/null 2>&1 &
PIDS+=($!)

# conntrack_port SPORT - the router's public port for client C's flow from SPORT to 3478.
conntrack_port() {
	inn $R conntrack -L -p udp --orig-src 10.77.1.2 --orig-port-src "$1" --orig-port-dst 3478 \
		2>/dev/null | sed -n 's/.*src=198.18.77.2 dst=198.18.77.1 sport=3478 dport=\([0-9]*\).*/\1/p' | head -1
}

check_clients() {
	local what=$1 out mapped port ct sport

	# coturn's client: it prints the reflexive address; its local port comes from conntrack.
	out=$(inn $C turnutils_stunclient -p 3478 198.18.77.2 2>&1) || fail "$what: turnutils_stunclient: $out"
	mapped=$(echo "$out" | sed -n 's/.*UDP reflexive addr: \([0-9.]*:[0-9]*\).*/\1/p' | head -1)
	[ -n "$mapped" ] || fail "$what: turnutils_stunclient printed no address: $out"
	port=${mapped##*:}
	[ "${mapped%:*}" = 198.18.77.1 ] || fail "$what: coturn client learned $mapped, not the NAT address"
	inn $R conntrack -L -p udp --orig-src 10.77.1.2 --orig-port-dst 3478 2>/dev/null |
		grep -q "dst=198.18.77.1 sport=3478 dport=$port " ||
		fail "$what: $mapped (turnutils_stunclient) is not in the router's conntrack table"
	echo "ok: $what: turnutils_stunclient learned $mapped, matching conntrack"

	# natx-stunc from a known local port, with FINGERPRINT.
	sport=$((30000 + RANDOM % 10000))
	out=$(inn $C "$NATX_BIN/natx-stunc" 198.18.77.2:3478 --bind 10.77.1.2:$sport --fingerprint) ||
		fail "$what: natx-stunc: $out"
	mapped=${out#mapped }
	ct=$(conntrack_port $sport)
	[ -n "$ct" ] || fail "$what: no conntrack entry for 10.77.1.2:$sport"
	[ "$mapped" = "198.18.77.1:$ct" ] ||
		fail "$what: natx-stunc learned $mapped, conntrack maps $sport to 198.18.77.1:$ct"
	[ "$ct" != "$sport" ] || fail "$what: NAT kept the port; the check would prove nothing"
	echo "ok: $what: natx-stunc from :$sport learned $mapped = conntrack"

	out=$(inn $R "$NATX_BIN/natx-stunc" '[fd77::2]:3478' --bind '[fd77::1]:40123') ||
		fail "$what: IPv6: $out"
	[ "$out" = "mapped [fd77::1]:40123" ] || fail "$what: IPv6 answer $out"
	echo "ok: $what: IPv6 $out"
}

# check_flood - 20000 requests from C (one public source) while D asks once.
check_flood() {
	local what=$1 t0 t1 out ans secs max dout

	t0=$(date +%s%N)
	inn $C "$NATX_BIN/natx-stunc" 198.18.77.2:3478 --count 20000 --timeout-ms 300 --json \
		>/tmp/natxbpf-flood.$$ &
	local fp=$!
	sleep 0.05
	dout=$(inn $D "$NATX_BIN/natx-stunc" 198.18.77.2:3478) || fail "$what: D not answered during the flood"
	[ "$dout" = "mapped 198.18.77.3:${dout##*:}" ] || fail "$what: D learned $dout"
	wait $fp || fail "$what: flood generator failed"
	t1=$(date +%s%N)
	out=$(cat /tmp/natxbpf-flood.$$)
	rm -f /tmp/natxbpf-flood.$$
	ans=$(echo "$out" | sed -n 's/.*"answered":\([0-9]*\).*/\1/p')
	secs=$(( (t1 - t0) / 1000000000 + 1 ))
	max=$((BURST + RATE * secs + 2))
	[ -n "$ans" ] || fail "$what: no flood result: $out"
	[ "$ans" -ge "$BURST" ] || fail "$what: flood got $ans answers, fewer than the burst $BURST"
	[ "$ans" -le "$max" ] || fail "$what: flood got $ans answers, more than $max"
	echo "ok: $what: flood of 20000 -> $ans answers (<= $max); other source answered ($dout)"
}

# 1. XDP reflector, native mode, then generic mode.
for mode in native generic; do
	bpfctl attach s0 --mode $mode --port 3478 --rate $RATE --burst $BURST ||
		fail "natx-bpf attach ($mode)"
	st=$(bpfctl status s0 --json)
	echo "$st" | grep -q "\"mode\":\"$mode\"" || fail "status does not say $mode: $st"
	check_clients "XDP $mode"
	out=$(inn $C "$NATX_BIN/natx-stunc" 198.18.77.2:3479) || fail "XDP $mode: port 3479 not passed up"
	echo "ok: XDP $mode: other UDP port passed to user space ($out)"
	check_flood "XDP $mode"
	st=$(bpfctl status s0 --json)
	lim=$(echo "$st" | sed -n 's/.*"rate_limited":\([0-9]*\).*/\1/p')
	answered=$(echo "$st" | sed -n 's/.*"answered":\([0-9]*\).*/\1/p')
	[ "${lim:-0}" -gt 0 ] || fail "XDP $mode: rate_limited counter did not move: $st"
	[ "${answered:-0}" -gt 0 ] || fail "XDP $mode: answered counter did not move: $st"
	echo "ok: XDP $mode counters: $st"
	bpfctl detach s0 || fail "natx-bpf detach"
	# Let the buckets of this round drain before the next one.
	sleep 1
done

# 2. User-space fallback: no XDP, natx-stund listening on the relay.
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
nsenter --net=/run/netns/$S "$NATX_BIN/natx-stund" --listen '[::]:3478' --rate $RATE --burst $BURST \
	>/tmp/natxbpf-stund.$$ 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening /tmp/natxbpf-stund.$$ && break; sleep 0.1; done
grep -q listening /tmp/natxbpf-stund.$$ || fail "natx-stund did not start: $(cat /tmp/natxbpf-stund.$$)"
check_clients "natx-stund"
check_flood "natx-stund"
kill -INT "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
cnt=$(tail -1 /tmp/natxbpf-stund.$$)
rm -f /tmp/natxbpf-stund.$$
echo "$cnt" | grep -q '"rate_limited":[1-9]' || fail "natx-stund: rate_limited did not move: $cnt"
echo "ok: natx-stund counters: $cnt"
echo "PASS"
