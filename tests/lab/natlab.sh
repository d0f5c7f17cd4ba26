# shellcheck shell=bash
# tests/lab/natlab.sh - the NAT lab, sourced by tests: a relay on a public segment and two sites
# behind Linux NAT routers, built from network namespaces, veth pairs and iptables in the test
# itself (docs/testing.md "NAT lab"). Only lab addresses: 198.18.0.0/15 (benchmarking range) for
# the public side, 10.99.0.0/16 for the sites.
#
#   natlab_up TAG TOPO NAT_A NAT_B
#       TOPO  routed - each NAT router's WAN is its own /24 behind one core router, so a packet
#                      between the sites crosses NAT A, the core and NAT B (TTL 2 from a site
#                      expires in the core: the "open the near NAT only" trick works);
#             flat   - the relay and both NAT routers share one bridged segment.
#       NAT   eim    - endpoint-independent mapping: MASQUERADE (keeps the source port when free)
#             sym    - endpoint-dependent mapping: MASQUERADE --random-fully
#             full   - full cone: eim plus DNAT of every unsolicited inbound packet to the host
#             none   - routing only (the site host is reachable at its private address only)
#   natlab_down                 remove everything natlab_up made (idempotent; call from a trap)
#   nl_exec NS CMD...           run CMD in namespace NS (a shell function: do not background
#                               it with &, $! would be a subshell and CMD outlive the kill)
#   nl_bg NS CMD...             start CMD in NS in the background; $! is CMD itself
#   nl_conntrack_port NS PROTO SRC_PORT DST_IP DST_PORT
#                               the public source port NS's router mapped a flow to
#
# After natlab_up: NL_RELAY NL_A NL_B (namespaces of the relay and the two site hosts),
# NL_NAT_A NL_NAT_B NL_CORE (routers / segment), NL_RELAY_IP NL_RELAY_IP2 (two relay
# addresses), NL_A_IP NL_B_IP (site hosts), NL_A_PUB NL_B_PUB (their routers' public addresses).
# Namespace and device names carry TAG, so labs of concurrent tests never collide; TAG must be
# at most 8 characters ([a-z0-9]).

NL_NSES=()

# nl_exec NS CMD... - run CMD in NS.
nl_exec() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# nl_bg NS CMD... - background CMD in NS; nsenter execs it, so $! is CMD and signals reach it.
nl_bg() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@" &
}

# nl_ns NAME - create namespace NAME with lo up, remembered for natlab_down.
nl_ns() {
	ip netns add "$1" || return 1
	NL_NSES+=("$1")
	ip -n "$1" link set lo up
}

# nl_link NS1 DEV1 ADDR1 NS2 DEV2 ADDR2 - a veth pair between two namespaces, addresses (CIDR or
# "-" for none) assigned and both ends up.
nl_link() {
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" || return 1
	[ "$3" = - ] || ip -n "$1" addr add "$3" dev "$2"
	[ "$6" = - ] || ip -n "$4" addr add "$6" dev "$5"
	ip -n "$1" link set "$2" up && ip -n "$4" link set "$5" up
}

# nl_nat NS LAN_NET WAN_DEV HOST_IP KIND - configure router NS's NAT.
nl_nat() {
	local ns=$1 lan=$2 wan=$3 host=$4 kind=$5
	nl_exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	case "$kind" in
	eim)
		nl_exec "$ns" iptables -t nat -A POSTROUTING -s "$lan" -o "$wan" -j MASQUERADE
		;;
	sym)
		nl_exec "$ns" iptables -t nat -A POSTROUTING -s "$lan" -o "$wan" -j MASQUERADE --random-fully
		;;
	full)
		nl_exec "$ns" iptables -t nat -A POSTROUTING -s "$lan" -o "$wan" -j MASQUERADE
		nl_exec "$ns" iptables -t nat -A PREROUTING -i "$wan" -p udp -j DNAT --to-destination "$host"
		nl_exec "$ns" iptables -t nat -A PREROUTING -i "$wan" -p tcp -j DNAT --to-destination "$host"
		;;
	none) ;;
	*)
		echo "natlab: unknown NAT kind '$kind' (eim, sym, full, none)" >&2
		return 1
		;;
	esac
}

# natlab_up TAG TOPO NAT_A NAT_B - build the lab; 0, or 1 with a message (then natlab_down).
natlab_up() {
	local tag=$1 topo=$2 nat_a=$3 nat_b=$4
	if ! [[ $tag =~ ^[a-z0-9]{1,8}$ ]]; then
		echo "natlab: TAG must be 1-8 characters [a-z0-9], not '$tag'" >&2
		return 1
	fi
	NL_RELAY=${tag}rel NL_CORE=${tag}core NL_NAT_A=${tag}nata NL_NAT_B=${tag}natb
	NL_A=${tag}a NL_B=${tag}b
	NL_RELAY_IP=198.18.0.2 NL_RELAY_IP2=198.18.0.3
	NL_A_IP=10.99.1.2 NL_B_IP=10.99.2.2
	local n
	for n in $NL_RELAY $NL_CORE $NL_NAT_A $NL_NAT_B $NL_A $NL_B; do
		nl_ns "$n" || return 1
	done
	# Sites: host .2 behind router .1.
	nl_link "$NL_A" eth0 "$NL_A_IP/24" "$NL_NAT_A" lan 10.99.1.1/24 || return 1
	nl_link "$NL_B" eth0 "$NL_B_IP/24" "$NL_NAT_B" lan 10.99.2.1/24 || return 1
	nl_exec "$NL_A" ip route add default via 10.99.1.1
	nl_exec "$NL_B" ip route add default via 10.99.2.1
	case "$topo" in
	routed)
		NL_A_PUB=198.18.1.2 NL_B_PUB=198.18.2.2
		nl_link "$NL_CORE" rel 198.18.0.1/24 "$NL_RELAY" eth0 "$NL_RELAY_IP/24" || return 1
		nl_link "$NL_CORE" wana 198.18.1.1/24 "$NL_NAT_A" wan "$NL_A_PUB/24" || return 1
		nl_link "$NL_CORE" wanb 198.18.2.1/24 "$NL_NAT_B" wan "$NL_B_PUB/24" || return 1
		nl_exec "$NL_CORE" sysctl -qw net.ipv4.ip_forward=1
		nl_exec "$NL_RELAY" ip route add default via 198.18.0.1
		nl_exec "$NL_NAT_A" ip route add default via 198.18.1.1
		nl_exec "$NL_NAT_B" ip route add default via 198.18.2.1
		;;
	flat)
		NL_A_PUB=198.18.0.11 NL_B_PUB=198.18.0.12
		nl_exec "$NL_CORE" ip link add br0 type bridge
		nl_exec "$NL_CORE" ip link set br0 up
		nl_link "$NL_CORE" prel - "$NL_RELAY" eth0 "$NL_RELAY_IP/24" || return 1
		nl_link "$NL_CORE" pnata - "$NL_NAT_A" wan "$NL_A_PUB/24" || return 1
		nl_link "$NL_CORE" pnatb - "$NL_NAT_B" wan "$NL_B_PUB/24" || return 1
		for n in prel pnata pnatb; do
			nl_exec "$NL_CORE" ip link set "$n" master br0
		done
		;;
	*)
		echo "natlab: unknown topology '$topo' (routed, flat)" >&2
		return 1
		;;
	esac
	nl_exec "$NL_RELAY" ip addr add "$NL_RELAY_IP2/24" dev eth0
	nl_nat "$NL_NAT_A" 10.99.1.0/24 wan "$NL_A_IP" "$nat_a" || return 1
	nl_nat "$NL_NAT_B" 10.99.2.0/24 wan "$NL_B_IP" "$nat_b" || return 1
	# Plain routers answer nothing themselves: no stray RSTs or port-unreachables from them.
	nl_exec "$NL_NAT_A" sysctl -qw net.ipv4.conf.all.rp_filter=0
	nl_exec "$NL_NAT_B" sysctl -qw net.ipv4.conf.all.rp_filter=0
	return 0
}

# natlab_down - delete every namespace natlab_up created (processes in them keep running:
# the caller stops its own).
natlab_down() {
	local n
	for n in "${NL_NSES[@]}"; do
		ip netns del "$n" 2>/dev/null
	done
	NL_NSES=()
	return 0
}

# nl_conntrack_port NS PROTO SRC_PORT DST_IP DST_PORT - the public port router NS mapped the flow
# from SRC_PORT to DST_IP:DST_PORT to (the reply tuple's destination port); empty when none.
nl_conntrack_port() {
	nl_exec "$1" conntrack -L -p "$2" --sport "$3" --dst "$4" --dport "$5" 2>/dev/null |
		head -1 | grep -o 'dport=[0-9]*' | tail -1 | cut -d= -f2
}

# natxd nodes in the lab. The caller owns T (a temp directory for the nodes' state and logs),
# PIDS (an array of pids to stop) and fail (its failure report); these use them.
#   nl_natxd NAME NS PORT [ENV=VAL...]  natxd with libp2p on 0.0.0.0:PORT in namespace NS, state
#                                       and log under $T/NAME; waits until `peer` answers
#                                       ($T/NAME/peer.json)
#   nl_ctl NAME ARGS...                 natxctl on that node's socket (bounded: 60 s)
#   natlab_stop                         stop every pid in PIDS (and a wrapper's children), then
#                                       natlab_down

nl_ctl() {
	local n=$1
	shift
	timeout 60 "$NATX_BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"
}

nl_natxd() {
	local n=$1 ns=$2 port=$3
	shift 3
	rm -rf "${T:?}/$n"
	mkdir -p "$T/$n"
	nl_bg "$ns" env XDG_RUNTIME_DIR="$T/$n/xdg" XDG_STATE_HOME="$T/$n/xs" \
		NAT_TRAVERSAL_ENABLE_LIBP2P=true NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/0.0.0.0/tcp/$port \
		"$@" "$NATX_BIN/natxd" --socket "$T/$n/ctl.sock" --state-dir "$T/$n/state" --listen off \
		>>"$T/$n/natxd.log" 2>&1
	PIDS+=($!)
	for _ in $(seq 1 100); do
		nl_ctl "$n" --json peer >"$T/$n/peer.json" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "natxd $n did not come up"
}

natlab_stop() {
	local p
	for p in "${PIDS[@]}"; do
		pkill -TERM -P "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	PIDS=()
	natlab_down
}

# Reconfiguring a running lab (tests that reuse one lab for several NAT pairs or cut paths):
#   natlab_nat_set a|b KIND      replace site A's or B's router NAT with KIND (eim, sym, full,
#                                none) and forget its conntrack entries (old mappings gone)
#   natlab_cut_direct on|off     routed lab: the core drops (on) or forwards again (off) every
#                                packet between the two NAT routers' WANs - the sites' direct
#                                path - while both still reach the relay; conntrack of both
#                                routers is left alone (established mappings stay, just dark)

natlab_nat_set() {
	local ns lan host
	case "$1" in
	a) ns=$NL_NAT_A lan=10.99.1.0/24 host=$NL_A_IP ;;
	b) ns=$NL_NAT_B lan=10.99.2.0/24 host=$NL_B_IP ;;
	*)
		echo "natlab: natlab_nat_set a|b KIND, not '$1'" >&2
		return 1
		;;
	esac
	nl_exec "$ns" iptables -t nat -F || return 1
	nl_nat "$ns" "$lan" wan "$host" "$2" || return 1
	nl_exec "$ns" conntrack -F 2>/dev/null
	return 0
}

natlab_cut_direct() {
	local op
	case "$1" in
	on) op=-I ;;
	off) op=-D ;;
	*)
		echo "natlab: natlab_cut_direct on|off, not '$1'" >&2
		return 1
		;;
	esac
	nl_exec "$NL_CORE" iptables "$op" FORWARD -i wana -o wanb -j DROP &&
		nl_exec "$NL_CORE" iptables "$op" FORWARD -i wanb -o wana -j DROP
}
