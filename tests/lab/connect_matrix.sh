#!/usr/bin/env bash
# The NAT lab matrix of issue 9 (docs/testing.md "Connect matrix"): `natxctl connect --local`
# between two natx nodes behind every ordered pair of NAT behaviours {eim, sym, full}, in the
# routed-core lab of tests/lab/natlab.sh with a natx relay R on the public side.
#
# For each pair (A behind NAT_A, B behind NAT_B): B reserves on R and exposes service "sink"
# (tests/lab/mx_xfer.py sink-server in B's namespace: reads to EOF, answers the byte count and
# SHA-256); A knows B only by B's /p2p-circuit address (`natxctl node set`), so
# `connect B --service sink --local 127.0.0.1:0` takes the relay (path libp2p-relay, reason in
# `connections`) and B starts the DCUtR upgrade in the background. Then:
#  - 64 MiB through A's local port, paced at MX_RATE MiB/s (8) so that the transfer spans the
#    upgrade (8 s: even SYNs that cross only on the third retransmission, about 7 s, land
#    inside it), byte count and SHA-256 checked by the sink; R's relayed bytes after the switch
#    are recorded and asserted below 1 MiB for direct pairs (MX_MIGRATION=0 turns that off), the issue's
#    "relay's byte counters stop growing after the switch", once open flows migrate);
#  - wait (bounded) until B's upgrade record ends; its state and duration ("time to direct");
#  - the final path: direct when the upgrade succeeded, A's `peers` has a direct connection to
#    B at NAT B's public address and a further MIB_AFTER MiB through the same local port adds
#    less than 1 MiB to R's relayed bytes; relayed when the upgrade failed and those bytes went
#    through R (R's counter grew by at least their size).
# Assertions (issue 9): every pair connects and transfers intact; every pair without a
# symmetric NAT ends direct, and so do full cone vs symmetric (both orders); sym/sym ends
# relayed (upgrade failed after its attempts) and still works. eim/sym and sym/eim are recorded
# as they come out. Prints the matrix.
#
# Speed: the 9 pairs run in MX_LABS labs at once (default 3, each its own namespaces, relay and
# nodes); inside a lab the pairs reuse the namespaces and the relay: the NAT routers' iptables
# and conntrack are reset (natlab_nat_set) and only A's and B's natxd are restarted. A pair with
# a failing upgrade waits for B's 3 attempts (3 x MX_UPGRADE_TIMEOUT_MS, natxd's
# upgrade_timeout_ms, checked against the attempt records), so each lab gets one such pair.
#
# Environment: MX_MIB (64) MiB per pair, MX_MIB_AFTER (16), MX_RATE (8), MX_LABS (3),
# MX_UPGRADE_TIMEOUT_MS (5000),
# MX_MIGRATION (1), MX_PAIRS (all 9, e.g.
# "eim/eim sym/full"), MX_ROWS_OUT (a file to append the matrix rows to: bench/matrix.sh).
# Skips (77) without root, namespaces or tools.
set -uo pipefail

skip() {
	echo "SKIP: $*"
	exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
: "${NATX_BIN:?}" "${NATX_SRC:?}"
for t in ip iptables conntrack nsenter python3 jq sha256sum; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
# shellcheck source=tests/lab/natlab.sh
. "$NATX_SRC/tests/lab/natlab.sh"
XFER=$NATX_SRC/tests/lab/mx_xfer.py
MIB=${MX_MIB:-64}
MIB_AFTER=${MX_MIB_AFTER:-16}
RATE=${MX_RATE:-8}
# B's DCUtR attempt timeout (natxd upgrade_timeout_ms): a failing upgrade ends after 3 of them
UPG_MS=${MX_UPGRADE_TIMEOUT_MS:-5000}
NLABS=${MX_LABS:-3}
PAIRS=${MX_PAIRS:-"sym/sym eim/sym sym/eim full/sym sym/full eim/eim eim/full full/eim full/full"}
TAGP=mx$(($$ % 10000))
TOP=$(mktemp -d /tmp/mx-matrix.XXXXXX)
LAB_PIDS=()

ip netns add "${TAGP}probe" 2>/dev/null && ip netns del "${TAGP}probe" ||
	skip "cannot create network namespaces"

# expect NAT_A NAT_B - what issue 9 requires of the pair: direct, relayed or any.
expect() {
	if [ "$1" = sym ] && [ "$2" = sym ]; then
		echo relayed
	elif [ "$1" != sym ] && [ "$2" != sym ]; then
		echo direct
	elif [ "$1" = full ] || [ "$2" = full ]; then
		echo direct
	else
		echo any
	fi
}

# ---- one lab (runs in a background subshell) ------------------------------------------------

# lab_fail MSG - this lab's failure: logs to stdout (the lab's output file), exit 1.
lab_fail() {
	local n
	echo "FAIL: $LAB: $*"
	for n in r a b; do
		tail -n 12 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	for n in a b; do
		nl_ctl "$n" --json upgrades 2>/dev/null | jq -c '.upgrades' | sed "s/^/    upgrades $n: /"
		nl_ctl "$n" --json peers 2>/dev/null | jq -c '.peers' | sed "s/^/    peers $n: /"
	done
	[ -n "${MX_KEEP_LOGS:-}" ] && cp -r "$T" "$MX_KEEP_LOGS/lab-${LAB//\//-}"
	echo "FAIL: $LAB: $*" >>"$ROWS"
	exit 1
}

# node_stop NAME - stop node NAME's natxd (and its engine) if it runs.
node_stop() {
	local p=${NODE_PID[$1]:-} i
	[ -n "$p" ] || return 0
	pkill -TERM -P "$p" 2>/dev/null
	kill "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	for i in "${!PIDS[@]}"; do
		[ "${PIDS[$i]}" = "$p" ] && unset "PIDS[$i]"
	done
	NODE_PID[$1]=
}

# node_start NAME NS [ENV=VAL...] - natxd with libp2p on 0.0.0.0:4001 in NS.
node_start() {
	local n=$1 ns=$2
	shift 2
	nl_natxd "$n" "$ns" 4001 "$@"
	NODE_PID[$n]=${PIDS[-1]}
	echo "${PIDS[-1]}" >>"$T/pids"
}

relayed_bytes() {
	nl_ctl r --json relay status | jq -r .counters.bytes_relayed
}

# send MIB WHAT - MIB MiB through A's local port to B's sink, count and SHA-256 checked.
send() {
	nl_exec "$NL_A" timeout 200 python3 "$XFER" send "$LPORT" $(($1 * 1024 * 1024)) 180 \
		>"$T/send.out" 2>&1 || lab_fail "$2: $1 MiB: $(tail -c 300 "$T/send.out")"
}

# pair NAT_A NAT_B - one row of the matrix.
pair() {
	local na=$1 nb=$2 want circ b_id cj state dur=- b0 b1 path rsn secs mibs direct_addr
	want=$(expect "$na" "$nb")
	LAB="$na/$nb"
	# the previous pair's nodes first: their closing packets would leave conntrack entries
	# (old mappings of port 4001) that the new NAT rules then keep using
	node_stop a
	node_stop b
	sleep 0.3
	natlab_nat_set a "$na" || lab_fail "NAT A $na"
	natlab_nat_set b "$nb" || lab_fail "NAT B $nb"
	node_start a "$NL_A"
	node_start b "$NL_B" NAT_TRAVERSAL_UPGRADE_TIMEOUT_MS="$UPG_MS"
	b_id=$(jq -r .peer_id "$T/b/peer.json")
	nl_ctl b --json reserve "$R_ADDR" >"$T/rsv.json" 2>&1 || lab_fail "B reserve: $(cat "$T/rsv.json")"
	circ=$(jq -r .circuit_addr "$T/rsv.json")
	nl_ctl b --json p2p expose /natx/svc/sink/1.0.0 "127.0.0.1:$SINK" >/dev/null || lab_fail "expose on B"
	nl_ctl a --json node set nodeb "$circ" >/dev/null || lab_fail "node set"
	cj=$T/connect.json
	nl_ctl a --json connect nodeb --service sink --local 127.0.0.1:0 >"$cj" 2>&1 ||
		lab_fail "connect: $(cat "$cj")"
	jq -e '.connection.path == "libp2p-relay" and (.connection.reason | test("relayed ok"))' "$cj" \
		>/dev/null || lab_fail "connect did not take the relay: $(cat "$cj")"
	nl_ctl a --json connections | jq -e '.connections | length == 1 and .[0].path == "libp2p-relay"' \
		>/dev/null || lab_fail "connections does not show the relayed connection"
	LPORT=$(jq -r .connection.local "$cj" | sed 's#.*/tcp/##')
	# The first transfer spans the upgrade (paced at RATE MiB/s; the upgrade ends about 1 s
	# after this first stream opened the relayed connection): R's relayed bytes when B's
	# upgrade record turns succeeded and at the end tell how much of this flow R still carried
	# after the switch (all of the rest while an open flow stays on its path; ~0 once flows
	# migrate to the direct connection, asserted unless MX_MIGRATION=0).
	nl_bg "$NL_A" timeout 200 python3 "$XFER" send "$LPORT" $((MIB * 1024 * 1024)) 180 "$RATE" \
		>"$T/send.out" 2>&1
	spid=$!
	r0=$(relayed_bytes)
	r_sw=
	for _ in $(seq 1 2000); do
		kill -0 "$spid" 2>/dev/null || break
		if [ -z "$r_sw" ] && nl_ctl b --json upgrades 2>/dev/null |
			jq -e '[.upgrades[] | select(.role == "B")] | last | .state == "succeeded"' >/dev/null; then
			r_sw=$(relayed_bytes)
		fi
		sleep 0.1
	done
	wait "$spid" || lab_fail "first transfer: $MIB MiB: $(tail -c 300 "$T/send.out")"
	after_sw=- sw=-
	if [ -n "$r_sw" ]; then
		after_sw=$(($(relayed_bytes) - r_sw))
		# MiB the relay carried before / after the switch was seen
		sw=$(awk -v b="$((r_sw - r0))" -v a="$after_sw" 'BEGIN { printf "%.1f/%.1f", b / 1048576, a / 1048576 }')
	fi
	read -r _ _ secs _ <"$T/send.out"
	# B's upgrade ends: succeeded, or failed after 3 attempts of up to UPG_MS each
	for _ in $(seq 1 450); do
		nl_ctl b --json upgrades >"$T/upg.json" 2>/dev/null
		state=$(jq -r '[.upgrades[] | select(.role == "B")] | last | .state // ""' "$T/upg.json")
		[ -n "$state" ] && [ "$state" != in_progress ] && break
		sleep 0.1
	done
	[ -n "$state" ] || lab_fail "B started no upgrade: $(jq -c . "$T/upg.json")"
	[ "$state" != in_progress ] || lab_fail "B's upgrade did not end in 45 s"
	b0=$(relayed_bytes)
	send "$MIB_AFTER" "transfer after the upgrade"
	b1=$(relayed_bytes)
	read -r _ _ _ mibs <"$T/send.out"
	nl_ctl a --json peers >"$T/peers.json"
	direct_addr=$(jq -r --arg b "$b_id" '[.peers[] | select(.peer_id == $b and .path == "direct")] |
		first | .addr // ""' "$T/peers.json")
	if [ "$state" = succeeded ]; then
		dur=$(jq -r '[.upgrades[] | select(.role == "B")] | last | .duration_ms' "$T/upg.json")
		# NAT B's public address (a symmetric NAT B maps B's port to another one)
		[[ $direct_addr == /ip4/$NL_B_PUB/tcp/* ]] ||
			lab_fail "upgrade succeeded but A has no direct connection to B at $NL_B_PUB: $(jq -c . "$T/peers.json")"
		[ $((b1 - b0)) -lt $((1024 * 1024)) ] ||
			lab_fail "$MIB_AFTER MiB after the upgrade went through R ($((b1 - b0)) bytes)"
		path=direct
	else
		[ "$state" = failed ] || lab_fail "upgrade state '$state'"
		# natxd's upgrade_timeout_ms reached the engine: no attempt ran past it (plus a tick),
		# and an unanswered one (timed_out) lasted it
		jq -e --argjson t "$UPG_MS" '[.upgrades[] | select(.role == "B")] | last | .attempts |
			all(.duration_ms <= $t + 1000) and
			all(.outcome != "timed_out" or .duration_ms >= $t - 100)' "$T/upg.json" >/dev/null ||
			lab_fail "upgrade attempts do not follow upgrade_timeout_ms $UPG_MS: $(jq -c '[.upgrades[] | select(.role == "B")] | last | .attempts' "$T/upg.json")"
		[ $((b1 - b0)) -ge $((MIB_AFTER * 1024 * 1024)) ] ||
			lab_fail "relayed path, but R relayed only $((b1 - b0)) bytes of $MIB_AFTER MiB"
		path=relayed
	fi
	if [ "${MX_MIGRATION:-1}" != 0 ] && [ "$path" = direct ]; then
		# conclusive only when a quarter of the flow was still to come at the switch
		[ "$after_sw" != - ] && [ $((r_sw - r0)) -lt $((MIB * 1024 * 1024 * 3 / 4)) ] ||
			lab_fail "the first transfer did not span the upgrade (relay: $sw MiB before/after; raise MX_MIB or lower MX_RATE)"
		[ "$after_sw" -lt $((1024 * 1024)) ] ||
			lab_fail "R carried $after_sw bytes of the open flow after the switch (not migrated)"
	fi
	if [ "$want" != any ] && [ "$want" != "$path" ]; then
		lab_fail "ended $path, issue 9 requires $want (upgrade: $(jq -c '[.upgrades[] | select(.role == "B")] | last' "$T/upg.json"))"
	fi
	[ -n "${MX_KEEP_LOGS:-}" ] && cp -r "$T" "$MX_KEEP_LOGS/lab-${LAB//\//-}"
	rsn=$(jq -r '[.upgrades[] | select(.role == "B")] | last | .error // "-"' "$T/upg.json")
	echo "ok: $LAB: connect via relay, $MIB MiB intact ($secs s, R carried $sw MiB of it before/after the switch), upgrade $state (${dur} ms), final path $path ($mibs MiB/s), R relayed $((b1 - b0)) B of $MIB_AFTER MiB after"
	printf '%s %s %s %s %s %s %s %s %s %s\n' "$na" "$nb" "$want" "$path" "$dur" "$mibs" "$sw" "$((b1 - b0))" \
		"$(jq -r '[.upgrades[] | select(.role == "B")] | last | .attempts | length' "$T/upg.json")" \
		"${rsn// /_}" >>"$ROWS"
}

# lab_run IDX PAIR... - build lab IDX (tag TAGP+IDX), run its pairs, tear it down.
lab_run() {
	local idx=$1 p
	shift
	T=$TOP/lab$idx ROWS=$TOP/lab$idx.rows LAB="lab $idx"
	mkdir -p "$T"
	PIDS=()
	declare -gA NODE_PID=()
	trap 'natlab_stop' EXIT
	trap 'exit 143' TERM INT
	natlab_up "$TAGP$idx" routed eim eim || lab_fail "natlab_up"
	nl_natxd r "$NL_RELAY" 4001 NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0
	echo "${PIDS[-1]}" >>"$T/pids"
	for _ in $(seq 1 100); do
		nl_ctl r --json relay status 2>/dev/null | jq -e .enabled >/dev/null && break
		sleep 0.1
	done
	R_ADDR=/ip4/$NL_RELAY_IP/tcp/4001/p2p/$(jq -r .peer_id "$T/r/peer.json")
	nl_bg "$NL_B" python3 "$XFER" sink-server >"$T/sink.port"
	PIDS+=($!)
	echo "$!" >>"$T/pids"
	for _ in $(seq 1 50); do
		[ -s "$T/sink.port" ] && break
		sleep 0.1
	done
	SINK=$(cat "$T/sink.port")
	[ -n "$SINK" ] || lab_fail "sink server in site B did not start"
	for p in "$@"; do
		pair "${p%/*}" "${p#*/}"
	done
	echo "DONE" >>"$ROWS"
}
# nl_natxd reports a failure with `fail`
fail() { lab_fail "$@"; }

# ---- the matrix ------------------------------------------------------------------------------

cleanup() {
	local p f n
	for p in "${LAB_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${LAB_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	# a lab killed hard leaves its nodes: stop them and its namespaces
	for f in "$TOP"/lab*/pids; do
		[ -f "$f" ] || continue
		while read -r p; do
			pkill -TERM -P "$p" 2>/dev/null
			kill "$p" 2>/dev/null
		done <"$f"
	done
	for n in $(ip netns list | awk '{print $1}' | grep "^${TAGP}[0-9]"); do
		ip netns del "$n" 2>/dev/null
	done
	rm -rf "$TOP"
}
trap cleanup EXIT

read -r -a ALL <<<"$PAIRS"
# deal the pairs to the labs round-robin (the slow, failing ones come first in the default order)
declare -a DEAL
for i in "${!ALL[@]}"; do
	DEAL[i % NLABS]+="${ALL[$i]} "
done
t0=$(date +%s)
for i in "${!DEAL[@]}"; do
	# shellcheck disable=SC2086
	(lab_run "$i" ${DEAL[$i]}) >"$TOP/lab$i.out" 2>&1 &
	LAB_PIDS+=($!)
done
rc=0
for i in "${!LAB_PIDS[@]}"; do
	wait "${LAB_PIDS[$i]}" || rc=1
	cat "$TOP/lab$i.out"
done
LAB_PIDS=()
took=$(($(date +%s) - t0))

echo
echo "NAT lab matrix (routed core, natx relay, connect --local, $MIB MiB + $MIB_AFTER MiB per pair, ${took} s)"
printf '%-5s %-5s %-8s %-8s %8s %11s %14s %14s %8s %s\n' NAT_A NAT_B REQUIRED PATH T_DIRECT \
	"FINAL_MiB/s" "R_SWITCH_MiB" "R_AFTER_UPG_B" ATTEMPTS LAST_ERROR
rows=$(cat "$TOP"/lab*.rows 2>/dev/null | grep -v -e '^DONE' -e '^FAIL' | sort)
while read -r na nb want path dur mibs sw rel att err; do
	[ -n "$na" ] || continue
	printf '%-5s %-5s %-8s %-8s %8s %11s %14s %14s %8s %s\n' "$na" "$nb" "$want" "$path" "$dur" "$mibs" \
		"$sw" "$rel" "$att" "$err"
done <<<"$rows"
echo "T_DIRECT: ms, B's DCUtR upgrade record; FINAL_MiB/s: the $MIB_AFTER MiB after the upgrade, on the final"
echo "path; R_SWITCH_MiB: MiB of the first (paced, $RATE MiB/s) $MIB MiB flow the relay carried before/after"
echo "the upgrade was seen to succeed (after: the tail until the open flow migrated); R_AFTER_UPG_B:"
echo "relayed bytes during the $MIB_AFTER MiB (0 = direct)"
if [ -n "${MX_ROWS_OUT:-}" ]; then
	echo "$rows" >>"$MX_ROWS_OUT"
fi
n=$(grep -c . <<<"$rows")
if [ $rc != 0 ] || [ "$n" != "${#ALL[@]}" ]; then
	grep -h '^FAIL' "$TOP"/lab*.rows 2>/dev/null
	echo "FAIL: $n of ${#ALL[@]} pairs passed"
	exit 1
fi
echo "PASS: NAT lab matrix, ${#ALL[@]} pairs in ${took} s"
