#!/usr/bin/env bash
# bench/relay.sh - Circuit Relay v2: the natx relay (natx-engine driven by natxd) against the
# js-libp2p 3.x relay (@libp2p/circuit-relay-v2 circuitRelayServer, tests/interop/relay_bench.mjs)
# on loopback, side by side, interleaved repetitions, medians; markdown on stdout and in --out.
#
#   bench/relay.sh [--quick] [--only tput,rsvp] [--reps N] [--bytes N] [--rsvp N]
#                  [--rsvp-reps N] [--rsvp-secs S] [--out FILE] [--results] [--perf] [--keep]
#
# tput: the same two endpoints, natxd A and natxd B (natx nodes, so the endpoints are not what
#   limits), hole punching off. B reserves on both relays and exposes a bench-xfer sink; A
#   forwards a local port to B's /p2p-circuit address through each relay. bench-xfer send ->
#   A -> relay -> B -> bench-xfer recv, --bytes per transfer, XXH3 compared at both ends.
#   Reported: Gbit/s, and the relay process's CPU seconds per GiB relayed (utime + stime from
#   /proc/PID/stat before and after; natx: natx-engine + natxd of the relay, js: the node
#   process). Checked: the natx relay counted the bytes, A has no direct connection to B.
# rsvp: a fresh relay of each kind; bench-reserve-flood opens --rsvp connections, each with its
#   own Ed25519 identity (distinct peers), from 127.0.0.2..127.0.0.51, each doing Noise + yamux
#   + hop RESERVE, and holds them. Reported: RSS growth of the relay process (natx: natx-engine;
#   natxd shown apart; js: node, after a full GC on both reads) per reservation. Checked: the
#   natx relay's reservations_active and the js relay's reservation store size equal the
#   generator's ok count; connections the relay dropped while held are counted. Three relays:
#   natx, js (as js ships it: connection monitor on, pinging every connection every 10 s) and
#   js-nomon (connection monitor off: js at its best). Each generator run is bounded by
#   --rsvp-secs (js with its monitor does not reach 10,000 on a loaded 2-CPU machine: the
#   per-reservation figure is then over the reservations it reached, and the table says so).
#   --rsvp-reps repetitions (default 1: a 10,000 run of js takes 10+ minutes here).
# --perf: perf record of each relay process during its first transfer; the top symbols go into
#   the report (needs perf).
# --results replaces the "Circuit Relay v2" section of bench/RESULTS.md with this run's.
# Everything is loopback; every process started here is killed on exit; every wait is bounded.
# Needs build/bin (natxd, natxctl, natx-engine, bench-xfer, bench-reserve-flood), jq, node +
# tests/interop/node_modules (npm ci there when missing). Not a test: never asserts a speed.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NATX_BIN:-$SRC/build/bin}
JS=$SRC/tests/interop
QUICK=0
ONLY="tput,rsvp"
REPS=""
BYTES=""
RSVP=""
OUT=""
KEEP=0
RESULTS=0
PERF=0
RSVP_REPS=1
RSVP_SECS=""

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
	exit "${1:-2}"
}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--only) ONLY=${2:?}; shift ;;
	--reps) REPS=${2:?}; shift ;;
	--bytes) BYTES=${2:?}; shift ;;
	--rsvp) RSVP=${2:?}; shift ;;
	--rsvp-reps) RSVP_REPS=${2:?}; shift ;;
	--rsvp-secs) RSVP_SECS=${2:?}; shift ;;
	--out) OUT=${2:?}; shift ;;
	--results) RESULTS=1 ;;
	--perf) PERF=1 ;;
	--keep) KEEP=1 ;;
	-h | --help) usage 0 ;;
	*) usage ;;
	esac
	shift
done
[ -n "$REPS" ] || REPS=3
[ -n "$BYTES" ] || BYTES=$([ $QUICK = 1 ] && echo $((64 << 20)) || echo $((256 << 20)))
[ -n "$RSVP" ] || RSVP=$([ $QUICK = 1 ] && echo 1000 || echo 10000)
[ -n "$RSVP_SECS" ] || RSVP_SECS=$([ $QUICK = 1 ] && echo 120 || echo 900)
[[ $REPS =~ ^[1-9][0-9]?$ ]] || { echo "--reps: 1..99" >&2; exit 2; }
[[ $RSVP_REPS =~ ^[1-9][0-9]?$ ]] || { echo "--rsvp-reps: 1..99" >&2; exit 2; }
[[ $RSVP_SECS =~ ^[1-9][0-9]*$ ]] || { echo "--rsvp-secs: seconds" >&2; exit 2; }
[[ $BYTES =~ ^[1-9][0-9]*$ ]] || { echo "--bytes: a positive number" >&2; exit 2; }
[[ $RSVP =~ ^[1-9][0-9]*$ ]] && [ "$RSVP" -le 18000 ] || { echo "--rsvp: 1..18000" >&2; exit 2; }
for s in ${ONLY//,/ }; do
	[[ $s == tput || $s == rsvp ]] || { echo "--only: tput, rsvp" >&2; exit 2; }
done
OUT=${OUT:-$SRC/build/bench-relay-results.md}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
command -v jq >/dev/null || { echo "bench/relay.sh: jq is needed" >&2; exit 2; }
for b in natxd natxctl natx-engine bench-xfer bench-reserve-flood; do
	[ -x "$BIN/$b" ] || { echo "bench/relay.sh: $BIN/$b missing: build first" >&2; exit 2; }
done

# Descriptors: a relay holds one per reservation, so does the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$RSVP" -gt $((NOFILE - 200)) ]; then
	echo "bench/relay.sh: open-file limit $NOFILE: --rsvp lowered to $((NOFILE - 200))" >&2
	RSVP=$((NOFILE - 200))
fi

T=$(mktemp -d /tmp/rb-relay-bench.XXXXXX)
RES=$T/results.tsv # section target metric value
: >"$RES"
PIDS=()
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
CLK_TCK=$(getconf CLK_TCK)
PAGE_KB=$(($(getconf PAGESIZE) / 1024))
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if [ $KEEP = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "[relay-bench] $*" >&2; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RES"; }

# cpu_ticks PID... - utime + stime of the processes (all their threads).
cpu_ticks() {
	local p total=0 t
	for p in "$@"; do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		total=$((total + ${t:-0}))
	done
	echo "$total"
}
# rss_kb PID - resident set size (kB).
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
# wait_file FILE PATTERN [SECS] - until FILE has a line matching PATTERN (bounded).
wait_file() {
	local i
	for i in $(seq 1 $((${3:-15} * 10))); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# stop_pid PID - TERM, wait (bounded), KILL.
stop_pid() {
	local i
	kill "$1" 2>/dev/null || return 0
	for i in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

ctl() { local n=$1; shift; timeout 60 "$BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"; }
# start_natxd NAME [ENV=VAL...] - natxd with libp2p on 127.0.0.1:0; NATXD[NAME], ENG[NAME]
declare -A NATXD ENG
start_natxd() {
	local n=$1 i
	shift
	mkdir -p "$T/$n"
	env XDG_RUNTIME_DIR="$T/$n/xdg" XDG_STATE_HOME="$T/$n/xs" NAT_TRAVERSAL_ENABLE_LIBP2P=true \
		NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 \
		NAT_TRAVERSAL_ENABLE_HOLE_PUNCHING=false "$@" \
		"$BIN/natxd" --socket "$T/$n/ctl.sock" --state-dir "$T/$n/state" --listen off \
		>"$T/$n/natxd.log" 2>&1 &
	NATXD[$n]=$!
	PIDS+=($!)
	for i in $(seq 1 100); do
		ctl "$n" --json peer >"$T/$n/peer.json" 2>/dev/null && break
		sleep 0.1
	done
	[ -s "$T/$n/peer.json" ] || return 1
	ENG[$n]=$(ctl "$n" --json status | jq -r .status.engine.pid)
	[[ ${ENG[$n]} =~ ^[0-9]+$ ]]
}
# start_natx_relay NAME - natxd whose engine serves hop with the bench's limits
start_natx_relay() {
	start_natxd "$1" NAT_TRAVERSAL_ENABLE_RELAY_SERVER=true \
		NAT_TRAVERSAL_RELAY_MAX_RESERVATIONS=20000 \
		NAT_TRAVERSAL_RELAY_MAX_RESERVATIONS_PER_IP=20000 \
		NAT_TRAVERSAL_RELAY_CIRCUIT_DATA_BYTES=0 NAT_TRAVERSAL_RELAY_CIRCUIT_DURATION_S=0 ||
		return 1
	for _ in $(seq 1 100); do
		ctl "$1" --json relay status 2>/dev/null | jq -e .enabled >/dev/null && return 0
		sleep 0.1
	done
	return 1
}
addr_of() { jq -r '.listen_addrs[0] + "/p2p/" + .peer_id' "$T/$1/peer.json"; }
# start_js_relay NAME [nomon] - tests/interop/relay_bench.mjs; JSR[NAME] pid, JSADDR[NAME] address
declare -A JSR JSADDR
start_js_relay() {
	local n=$1 a
	# shellcheck disable=SC2086
	"$NODE" --expose-gc "$JS/relay_bench.mjs" 20000 ${2:-} >"$T/$n.out" 2>"$T/$n.err" &
	JSR[$n]=$!
	PIDS+=($!)
	wait_file "$T/$n.out" '"listening"' 30 || return 1
	a=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/$n.out")
	case $a in */p2p/*) ;; *) a="$a/p2p/$(jq -r 'select(.event=="listening") | .peer' "$T/$n.out")" ;; esac
	JSADDR[$n]=$a
}
# js_stats NAME - ask the js relay for its stats (after GC); prints the JSON line
js_stats() {
	local n=$1 c
	c=$(grep -c '"stats"' "$T/$1.out")
	kill -USR2 "${JSR[$n]}" 2>/dev/null || return 1
	for _ in $(seq 1 300); do
		[ "$(grep -c '"stats"' "$T/$n.out")" -gt "$c" ] && break
		sleep 0.1
	done
	grep '"stats"' "$T/$n.out" | tail -n 1
}

NODE=$JS/node_modules/.bin/node
HAVE_JS=1
if [ ! -x "$NODE" ] || [ ! -d "$JS/node_modules/@libp2p/circuit-relay-v2" ]; then
	log "installing the pinned js-libp2p packages (npm ci in tests/interop)"
	(cd "$JS" && timeout 300 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1) || HAVE_JS=0
fi
[ -x "$NODE" ] || HAVE_JS=0
declare -A NA
[ $HAVE_JS = 1 ] || NA[js]="n/a (js-libp2p packages not installed: npm ci in tests/interop failed)"

# ------------------------------------------------------------------------------ throughput
declare -A FPORT
setup_tput() {
	local t circ
	start_natx_relay r || { NA[natx]="n/a (natx relay did not start)"; return 1; }
	start_natxd a || { NA[natx]="n/a (endpoint A did not start)"; return 1; }
	start_natxd b || { NA[natx]="n/a (endpoint B did not start)"; return 1; }
	[ $HAVE_JS = 1 ] && { start_js_relay j || NA[js]="n/a (js relay did not start: $(head -c 200 "$T/j.err"))"; }
	for t in natx js; do
		[ -n "${NA[$t]:-}" ] && continue
		local raddr
		[ $t = natx ] && raddr=$(addr_of r) || raddr=${JSADDR[j]}
		if ! ctl b --json reserve "$raddr" >"$T/rsv-$t.json"; then
			NA[$t]="n/a (B could not reserve: $(head -c 200 "$T/rsv-$t.json"))"
			continue
		fi
		circ=$(jq -r .circuit_addr "$T/rsv-$t.json")
		"$BIN/bench-xfer" recv --listen 127.0.0.1:0 --conns "$REPS" --timeout 900 \
			>"$T/sink-$t" 2>&1 &
		PIDS+=($!)
		wait_file "$T/sink-$t" '^ready' || { NA[$t]="n/a (sink did not start)"; continue; }
		ctl b --json p2p expose "/bench/relay-$t/1.0.0" \
			"127.0.0.1:$(sed -n 's/^port=//p' "$T/sink-$t")" >/dev/null ||
			{ NA[$t]="n/a (expose on B failed)"; continue; }
		ctl a --json p2p forward "/bench/relay-$t/1.0.0" 127.0.0.1:0 "$circ" >"$T/fwd-$t.json" ||
			{ NA[$t]="n/a (forward on A failed: $(head -c 200 "$T/fwd-$t.json"))"; continue; }
		FPORT[$t]=$(jq -r .service.listen "$T/fwd-$t.json" | sed 's#.*/tcp/##')
		log "$t: B reserved ($circ), A forwards 127.0.0.1:${FPORT[$t]}"
	done
}

# relay_pids TARGET - the relay's processes whose CPU counts
relay_pids() { [ "$1" = natx ] && echo "${ENG[r]} ${NATXD[r]}" || echo "${JSR[j]}"; }

run_tput() {
	local rep t order line c0 c1 e0 e1 b0 b1
	setup_tput
	for rep in $(seq 1 "$REPS"); do
		order=(natx js)
		[ $((rep % 2)) = 0 ] && order=(js natx)
		for t in "${order[@]}"; do
			[ -n "${FPORT[$t]:-}" ] || continue
			# shellcheck disable=SC2046
			c0=$(cpu_ticks $(relay_pids $t))
			e0=$(cpu_ticks "${ENG[a]}" "${ENG[b]}")
			b0=$(ctl r --json relay status | jq .counters.bytes_relayed)
			local perf_pid=""
			if [ $PERF = 1 ] && [ "$rep" = 1 ] && command -v perf >/dev/null; then
				# shellcheck disable=SC2046
				perf record -q -o "$T/perf-$t.data" -p "$(relay_pids $t | tr ' ' ',')" \
					>/dev/null 2>"$T/perf-$t.err" &
				perf_pid=$!
				sleep 0.5
			fi
			line=$(timeout 600 "$BIN/bench-xfer" send --connect "127.0.0.1:${FPORT[$t]}" \
				--bytes "$BYTES" --seed "$rep" --timeout 120 2>&1 | tail -n 1)
			if [ -n "$perf_pid" ]; then
				kill -INT "$perf_pid" 2>/dev/null
				wait "$perf_pid" 2>/dev/null
				# by library first: a stripped library (Debian's libcrypto) spreads over
				# many addresses below the symbol cut-off
				{
					perf report -i "$T/perf-$t.data" --stdio --no-children --percent-limit 1 \
						--sort dso 2>/dev/null | grep -E "^ +[0-9]" | head -n 6
					echo "--"
					perf report -i "$T/perf-$t.data" --stdio --no-children --percent-limit 2 \
						--sort dso,symbol 2>/dev/null | grep -E "^ +[0-9]" | cut -c1-110 | head -n 12
				} >"$T/perf-$t.top"
			fi
			# shellcheck disable=SC2046
			c1=$(cpu_ticks $(relay_pids $t))
			e1=$(cpu_ticks "${ENG[a]}" "${ENG[b]}")
			b1=$(ctl r --json relay status | jq .counters.bytes_relayed)
			log "rep $rep $t: $line (relay CPU $((c1 - c0)) ticks, endpoints $((e1 - e0)), natx relay bytes +$((b1 - b0)))"
			if [[ $line != *match=yes* ]]; then
				record tput "$t" gbps "FAIL:${line:0:80}"
				continue
			fi
			record tput "$t" gbps "$(sed -n 's/.*gbps=\([0-9.]*\).*/\1/p' <<<"$line")"
			record tput "$t" cpu_per_gib "$(awk -v c=$((c1 - c0)) -v k="$CLK_TCK" -v b="$BYTES" 'BEGIN{printf "%.3f", c / k / (b / 1073741824)}')"
			record tput "$t" ep_cpu_per_gib "$(awk -v c=$((e1 - e0)) -v k="$CLK_TCK" -v b="$BYTES" 'BEGIN{printf "%.3f", c / k / (b / 1073741824)}')"
			# through the natx relay, it must have counted both... through js, it must not have
			if [ $t = natx ] && [ $((b1 - b0)) -lt "$BYTES" ]; then
				record tput "$t" check "natx relay counted only $((b1 - b0)) of $BYTES bytes"
			elif [ $t = js ] && [ $((b1 - b0)) -gt 1048576 ]; then
				record tput "$t" check "natx relay carried $((b1 - b0)) bytes of the js path"
			fi
		done
	done
	# no direct connection between A and B (everything went through a relay)
	local bid
	bid=$(jq -r .peer_id "$T/b/peer.json")
	ctl a --json peers >"$T/a-peers.json"
	if jq -e --arg b "$bid" '[.peers[] | select(.peer_id == $b and .path == "direct")] | length > 0' \
		"$T/a-peers.json" >/dev/null; then
		record tput all check "A has a direct connection to B"
	fi
	NRELAYED=$(jq --arg b "$bid" '[.peers[] | select(.peer_id == $b and .path == "relayed")] | length' "$T/a-peers.json")
	local p
	for p in ${JSR[j]:-} "${NATXD[a]}" "${NATXD[b]}" "${NATXD[r]}"; do stop_pid "$p"; done
}

# ------------------------------------------------------------------------------ reservations
# flood TARGET ADDR - start the generator against ADDR, wait for its "ready"; FLOOD pid
flood_start() {
	"$BIN/bench-reserve-flood" --relay "$2" --count "$RSVP" --src-ips 50 --conc 128 \
		--timeout "$RSVP_SECS" --hold 3600 >"$T/flood-$1" 2>"$T/flood-$1.err" &
	FLOOD=$!
	PIDS+=($FLOOD)
	wait_file "$T/flood-$1" '^ready' $((RSVP_SECS + 60))
}
flood_stop() { # TARGET - TERM the generator, wait for its "held" line
	kill "$FLOOD" 2>/dev/null
	wait_file "$T/flood-$1" '^held' 60
	stop_pid "$FLOOD"
}

rsvp_natx() { # REP
	local n=rn$1 before dbefore after dafter line active
	start_natx_relay "$n" || { record rsvp natx kib "FAIL:natx relay did not start"; return; }
	sleep 1
	before=$(rss_kb "${ENG[$n]}") dbefore=$(rss_kb "${NATXD[$n]}")
	if ! flood_start natx "$(addr_of "$n")"; then
		record rsvp natx kib "FAIL:generator: $(tail -c 200 "$T/flood-natx.err")"
		flood_stop natx
		stop_pid "${NATXD[$n]}"
		return
	fi
	sleep 3
	line=$(grep '^reserved' "$T/flood-natx")
	active=$(ctl "$n" --json relay status | jq .counters.reservations_active)
	after=$(rss_kb "${ENG[$n]}") dafter=$(rss_kb "${NATXD[$n]}")
	flood_stop natx
	rsvp_record natx "$line" "$active" "$before" "$after" "$dbefore" "$dafter"
	stop_pid "${NATXD[$n]}"
}

rsvp_js() { # REP js|js-nomon
	local t=$2 n=$2-$1 before after line active s
	start_js_relay "$n" "$([ "$t" = js-nomon ] && echo nomon)" ||
		{ record rsvp "$t" kib "FAIL:js relay did not start"; return; }
	sleep 1
	s=$(js_stats "$n")
	before=$(jq .rss_kb <<<"$s")
	if ! flood_start "$t" "${JSADDR[$n]}"; then
		record rsvp "$t" kib "FAIL:generator: $(tail -c 200 "$T/flood-$t.err")"
		flood_stop "$t"
		stop_pid "${JSR[$n]}"
		return
	fi
	sleep 3
	line=$(grep '^reserved' "$T/flood-$t")
	s=$(js_stats "$n")
	active=$(jq .reservations <<<"$s")
	after=$(jq .rss_kb <<<"$s")
	flood_stop "$t"
	rsvp_record "$t" "$line" "$active" "$before" "$after" "" ""
	stop_pid "${JSR[$n]}"
}

# rsvp_record TARGET RESERVED_LINE ACTIVE RSS_BEFORE RSS_AFTER [NATXD_BEFORE NATXD_AFTER]
rsvp_record() {
	local t=$1 line=$2 active=$3 ok held
	ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<<"$line")
	held=$(grep '^held' "$T/flood-$t")
	log "rsvp $t: $line | relay active $active | RSS ${4} -> ${5} kB | $held${6:+ | natxd $6 -> $7 kB}"
	if [ -z "$ok" ] || [ "$ok" = 0 ]; then
		record rsvp "$t" kib "FAIL:no reservation (${line:-no answer from the generator})"
		return
	fi
	record rsvp "$t" ok "$ok"
	record rsvp "$t" active "$active"
	record rsvp "$t" refused "$(sed -n 's/.*refused=\([0-9]*\).*/\1/p' <<<"$line")"
	record rsvp "$t" failed "$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")"
	record rsvp "$t" rate "$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<<"$line")"
	record rsvp "$t" secs "$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$line")"
	record rsvp "$t" died "$(sed -n 's/.*died=\([0-9]*\).*/\1/p' <<<"$held")"
	record rsvp "$t" before_mib "$(awk -v a="$4" 'BEGIN{printf "%.1f", a / 1024}')"
	record rsvp "$t" after_mib "$(awk -v a="$5" 'BEGIN{printf "%.1f", a / 1024}')"
	record rsvp "$t" kib "$(awk -v a="$4" -v b="$5" -v n="$ok" 'BEGIN{printf "%.2f", (b - a) / n}')"
	[ -n "$6" ] && record rsvp "$t" natxd_kib "$(awk -v a="$6" -v b="$7" -v n="$ok" 'BEGIN{printf "%.3f", (b - a) / n}')"
	[ "$active" = "$ok" ] || record rsvp "$t" check "relay reports $active active reservations, generator got $ok"
}

run_rsvp() {
	local rep
	for rep in $(seq 1 "$RSVP_REPS"); do
		if [ $((rep % 2)) = 1 ]; then
			[ -z "${NA[natx]:-}" ] && rsvp_natx "$rep"
			[ -z "${NA[js]:-}" ] && rsvp_js "$rep" js-nomon && rsvp_js "$rep" js
		else
			[ -z "${NA[js]:-}" ] && rsvp_js "$rep" js && rsvp_js "$rep" js-nomon
			[ -z "${NA[natx]:-}" ] && rsvp_natx "$rep"
		fi
	done
}

# ---------------------------------------------------------------------------------- report
# med SECTION TARGET METRIC - median of the numeric values, or "fail:<first reason>".
med() {
	awk -F'\t' -v s="$1" -v t="$2" -v m="$3" '
		$1==s && $2==t && $3==m {
			if ($4 ~ /^-?[0-9.]+$/) v[n++] = $4; else if (why == "") why = $4
		}
		END {
			if (n == 0) { if (why != "") { sub(/^FAIL:/, "", why); print "fail:" why }; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			if (n % 2) print v[int(n/2)]; else print (v[n/2-1] + v[n/2]) / 2
		}' "$RES"
}
# all SECTION TARGET METRIC - every value, space-separated
all() { awk -F'\t' -v s="$1" -v t="$2" -v m="$3" '$1==s && $2==t && $3==m { printf "%s%s", (n++ ? " " : ""), $4 }' "$RES"; }
okruns() { awk -F'\t' -v s="$1" -v t="$2" -v m="$3" '$1==s && $2==t && $3==m { n++; if ($4 ~ /^[0-9.]+$/) k++ } END { printf "%d/%d", k, n }' "$RES"; }
cell() { # VALUE [FMT]
	if [ -z "$1" ]; then echo "-"; elif [[ $1 == fail:* ]]; then echo "fail (${1#fail:})"; else awk -v v="$1" -v f="${2:-%.2f}" 'BEGIN{printf f, v}'; fi
}
ratio() { # A B -> "1.23x"
	if [[ $1 =~ ^[0-9.]+$ ]] && [[ $2 =~ ^[0-9.]+$ ]] && awk -v b="$2" 'BEGIN{exit !(b>0)}'; then
		awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'
	else
		echo "-"
	fi
}
met() { # RATIO_TEXT TARGET
	[[ $1 =~ ^([0-9.]+)x$ ]] || { echo "-"; return; }
	awk -v a="${BASH_REMATCH[1]}" -v t="$2" 'BEGIN{print (a >= t) ? "yes" : "no"}'
}
checks() { # SECTION - the failed checks, one per line
	awk -F'\t' -v s="$1" '$1==s && $3=="check" { print "- check failed (" $2 "): " $4 }' "$RES"
}

machine() {
	echo "### Machine"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
	echo "- memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r)"
	echo "- load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share the 2 CPUs: absolute numbers are indicative, compare within the run)"
	echo "- natx: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?'); js: libp2p $(jq -r '.dependencies.libp2p' "$JS/package.json"), @libp2p/circuit-relay-v2 $(jq -r '.dependencies["@libp2p/circuit-relay-v2"]' "$JS/package.json"), node $("$NODE" --version 2>/dev/null || echo '?')"
	echo "- mode: $([ $QUICK = 1 ] && echo quick || echo full), $REPS repetitions, natx and js interleaved (order swapped every repetition), medians"
}

report_tput() {
	local g n j c cn cj r
	echo "### Relay throughput and relay CPU"
	echo
	echo "bench-xfer send → natxd A (\`p2p forward\` to B's /p2p-circuit address) → relay → natxd B"
	echo "(\`p2p expose\`) → bench-xfer recv; $((BYTES >> 20)) MiB per transfer, one stream, XXH3-64"
	echo "compared at both ends. Endpoints are natx nodes in both rows (hole punching off), so the"
	echo "relay is the only difference. CPU s/GiB: user + system CPU of the relay's processes during"
	echo "the transfer / GiB moved (natx: natx-engine + natxd; js: the node process)."
	echo
	echo "| relay | Gbit/s (median) | runs | relay CPU s/GiB | endpoints A+B CPU s/GiB |"
	echo "|---|---:|---|---:|---:|"
	for t in natx js; do
		if [ -n "${NA[$t]:-}" ]; then
			echo "| $t | ${NA[$t]} | | | |"
			continue
		fi
		echo "| $t | $(cell "$(med tput $t gbps)") | $(all tput $t gbps) | $(cell "$(med tput $t cpu_per_gib)" %.3f) | $(cell "$(med tput $t ep_cpu_per_gib)" %.3f) |"
	done
	echo
	n=$(med tput natx gbps) j=$(med tput js gbps)
	cn=$(med tput natx cpu_per_gib) cj=$(med tput js cpu_per_gib)
	r=$(ratio "$n" "$j")
	echo "- throughput natx / js: **$r** (target ≥ 10x: $(met "$r" 10))"
	r=$(ratio "$cj" "$cn")
	echo "- relay CPU per GiB js / natx: **$r** (target ≥ 5x less: $(met "$r" 5))"
	echo "- relayed connections from A to B at the end: ${NRELAYED:-?} (one per relay); direct: none unless a check below says so"
	checks tput
	echo
	for t in natx js; do
		[ -s "$T/perf-$t.top" ] || continue
		echo "perf, $t relay process during its first transfer (self time by library, then symbols over 2%; the perf"
		echo "run itself slows that transfer, so its numbers are in the table like the others):"
		echo
		echo '```'
		sed 's/^ *//' "$T/perf-$t.top"
		echo '```'
		echo
	done
}

report_rsvp() {
	local r
	echo "### Memory with $RSVP idle reservations"
	echo
	echo "bench-reserve-flood: $RSVP TCP connections from 127.0.0.2-51, each its own Ed25519 identity"
	echo "(distinct peer IDs), Noise XX + yamux + hop RESERVE (voucher verified), then held idle."
	echo "A fresh relay per repetition. RSS growth of the relay process from before the first"
	echo "connection to 3 s after the last answer, per reservation (natx: natx-engine; js: node,"
	echo "read after a full GC (--expose-gc) both times, so garbage is not counted against js)."
	echo
	echo "| relay | reserved / refused / failed (of $RSVP) | relay counts active | RSS before → with (MiB) | KiB per reservation | setup s (rsvp/s) | dropped while held | runs (KiB) |"
	echo "|---|---|---|---|---:|---:|---:|---|"
	for t in natx js js-nomon; do
		local na=${NA[$t]:-}
		[ "$t" = js-nomon ] && na=${NA[js]:-}
		if [ -n "$na" ]; then
			echo "| $t | $na | | | | | | |"
			continue
		fi
		echo "| $t | $(cell "$(med rsvp $t ok)" %.0f) / $(cell "$(med rsvp $t refused)" %.0f) / $(cell "$(med rsvp $t failed)" %.0f) | $(cell "$(med rsvp $t active)" %.0f) | $(cell "$(med rsvp $t before_mib)" %.1f) → $(cell "$(med rsvp $t after_mib)" %.1f) | $(cell "$(med rsvp $t kib)") | $(cell "$(med rsvp $t secs)" %.0f) ($(cell "$(med rsvp $t rate)" %.0f)) | $(cell "$(med rsvp $t died)" %.0f) | $(all rsvp $t kib) |"
	done
	echo
	echo "js: as js ships it (connection monitor on: a /ipfs/ping/1.0.0 stream to every connection"
	echo "every 10 s); js-nomon: connection monitor off, js at its best. Generator runs are bounded"
	echo "by $RSVP_SECS s: \"failed\" are connections not answered by then (timed out), and the"
	echo "per-reservation figure is over the reservations reached."
	echo
	r=$(ratio "$(med rsvp js kib)" "$(med rsvp natx kib)")
	echo "- memory per reservation js / natx: **$r** (target ≥ 10x less: $(met "$r" 10))"
	r=$(ratio "$(med rsvp js-nomon kib)" "$(med rsvp natx kib)")
	echo "- memory per reservation js-nomon / natx: **$r** (target ≥ 10x less: $(met "$r" 10))"
	echo "- natxd (control daemon) RSS growth per reservation: $(cell "$(med rsvp natx natxd_kib)" %.3f) KiB (not included above; it holds no per-connection state)"
	checks rsvp
	echo
}

want tput && { [ -z "${NA[natx]:-}" ] && run_tput; }
want rsvp && run_rsvp
report() {
	echo "## Circuit Relay v2 (issue 6): natx relay vs js-libp2p relay (bench/relay.sh)"
	echo
	machine
	echo
	want tput && report_tput
	want rsvp && report_rsvp
}
report | tee "$OUT"
if [ $RESULTS = 1 ]; then
	R=$SRC/bench/RESULTS.md
	B='<!-- bench/relay.sh: begin -->' E='<!-- bench/relay.sh: end -->'
	# the section between the markers is replaced (appended at the end the first time)
	awk -v b="$B" -v e="$E" -v out="$OUT" '
		function emit(l) { print b; while ((getline l < out) > 0) print l; print e; done = 1 }
		$0 == b { emit(); skip = 1; next }
		$0 == e { skip = 0; next }
		!skip { print }
		END { if (!done) { print ""; emit() } }' "$R" >"$T/results.md" && cp "$T/results.md" "$R"
	log "section written into $R"
fi
log "results in $OUT"
