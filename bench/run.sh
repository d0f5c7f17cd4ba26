#!/usr/bin/env bash
# bench/run.sh - run the same workloads through natx-engine and the proxies a relay operator
# would pick instead (haproxy, nginx stream, socat), plus "direct" (no proxy) as the ceiling,
# interleaved over several repetitions, and print markdown tables of medians and ratios.
#
#   bench/run.sh [--quick] [--only tcp|conn|udp|rss|xfer[,...]] [--reps N] [--out FILE] [--keep]
#
# Everything runs on 127.0.0.1 with ports the harness picks (below the ephemeral range, checked
# free with ss). Every process it starts gets its own process group and is killed on exit
# (trap). Every wait and every run is bounded. A peer that is not installed, or a run that
# fails, shows up in the table as "n/a (...)" or "fail (...)"; the rest still runs.
# Needs: build/bin/bench-* (cmake --build build), iperf3 and jq for the tcp section.
# Not a test: never registered with ctest, never asserts a speed.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NATX_BIN:-$SRC/build/bin}
QUICK=0
ONLY="tcp,conn,udp,rss,xfer"
REPS=""
OUT=""
KEEP=0

usage() {
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	exit "$1"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--only)
		[ $# -ge 2 ] || usage 2
		ONLY=$2
		shift
		;;
	--reps)
		[ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]?$ ]] || usage 2
		REPS=$2
		shift
		;;
	--out)
		[ $# -ge 2 ] || usage 2
		OUT=$2
		shift
		;;
	--keep) KEEP=1 ;;
	-h | --help) usage 0 ;;
	*)
		echo "run.sh: unknown argument '$1'" >&2
		usage 2
		;;
	esac
	shift
done
for s in ${ONLY//,/ }; do
	case "$s" in
	tcp | conn | udp | rss | xfer) ;;
	*)
		echo "run.sh: --only takes tcp, conn, udp, rss, xfer (comma-separated), not '$s'" >&2
		exit 2
		;;
	esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

# Workload sizes. --quick is for checking the harness, the full run is for RESULTS.md.
if [ "$QUICK" = 1 ]; then
	: "${REPS:=3}"
	IPERF_SECS=3
	CONN_COUNT=10000 CONN_SECS=5
	UDP_COUNT=300000 UDP_SECS=4
	RSS_FLOWS=2000 SOCAT_RSS_FLOWS=500
	XFER_BYTES=256M XFER_ROUNDS=2
else
	: "${REPS:=5}"
	IPERF_SECS=10
	CONN_COUNT=40000 CONN_SECS=10
	UDP_COUNT=2000000 UDP_SECS=8
	RSS_FLOWS=10000 SOCAT_RSS_FLOWS=1000
	XFER_BYTES=1G XFER_ROUNDS=4
fi
UDP_WINDOW=256
CONN_THREADS=2 CONN_CONC=32
# natx-uring: natx-engine with --tcp-mode uring (its default TCP mode is splice), when offered.
# splice-ref: bench-spliceref, the plain two-thread splice forwarder issue 3's throughput
# target refers to (TCP only; a thread pair per connection, no features).
TARGETS=(direct natx natx-uring splice-ref haproxy nginx socat)

for tool in bench-echod bench-connrate bench-udpblast bench-idleflows bench-xfer bench-spliceref; do
	if [ ! -x "$BIN/$tool" ]; then
		echo "run.sh: $BIN/$tool missing: build first (cmake -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2)" >&2
		exit 2
	fi
done
if ! command -v jq >/dev/null; then
	echo "run.sh: jq is not installed (apt-get install jq)" >&2
	exit 2
fi

TMP=$(mktemp -d /tmp/natx-bench.XXXXXX)
RES=$TMP/results.tsv
: >"$RES"
PGIDS=()

# stop_group PGID - TERM a process group we started, then KILL it after a bounded wait. Only
# while its leader is still our child: once the leader is gone the id may belong to others.
stop_group() {
	local g=$1 i
	[ "$(ps -o ppid= -p "$g" 2>/dev/null | tr -d ' ')" = "$$" ] || return 0
	kill -TERM -- "-$g" 2>/dev/null || return 0
	for i in $(seq 1 40); do
		kill -0 -- "-$g" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL -- "-$g" 2>/dev/null
	wait "$g" 2>/dev/null
	return 0
}

cleanup() {
	local g
	for g in "${PGIDS[@]}"; do
		stop_group "$g"
	done
	if [ "$KEEP" = 1 ]; then
		echo "run.sh: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_bg NAME CMD... - start CMD in its own process group (setsid), output to $TMP/NAME.{out,err}.
# Sets BG_PID (= its process group id). Without job control a background child is not a group
# leader, so setsid execs in place and $! is the group id.
start_bg() {
	local name=$1
	shift
	setsid "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
	BG_PID=$!
	PGIDS+=("$BG_PID")
}

# forget_group PGID - stop a group and drop it from the cleanup list.
forget_group() {
	local g=$1 i
	stop_group "$g"
	for i in "${!PGIDS[@]}"; do
		[ "${PGIDS[$i]}" = "$g" ] && unset 'PGIDS[i]'
	done
	PGIDS=("${PGIDS[@]}")
}

# port_pick - set PICK to a port below the ephemeral range (so nobody's bind(0) or connect()
# takes it) that ss shows free. Not called in $(...): PORT_NEXT must advance in this shell.
PORT_NEXT=$((20000 + ($$ % 1000) * 10))
port_pick() {
	local i p
	for i in $(seq 1 500); do
		p=$PORT_NEXT
		PORT_NEXT=$((PORT_NEXT + 1))
		[ $PORT_NEXT -ge 32000 ] && PORT_NEXT=20000
		if [ -z "$(ss -Htuna "( sport = :$p )" 2>/dev/null)" ]; then
			PICK=$p
			return 0
		fi
	done
	echo "run.sh: no free port found" >&2
	return 1
}

# wait_listen tcp|udp PORT PID - poll until PORT is bound (at most 5 s) while PID lives.
wait_listen() {
	local proto=$1 port=$2 pid=$3 i flag
	[ "$proto" = tcp ] && flag=-Hltn || flag=-Hlun
	for i in $(seq 1 100); do
		[ -n "$(ss $flag "( sport = :$port )" 2>/dev/null)" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# wait_line FILE REGEX SECS - poll until FILE has a line matching REGEX.
wait_line() {
	local f=$1 re=$2 secs=$3 i
	for i in $(seq 1 $((secs * 20))); do
		grep -qE "$re" "$f" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# record SECTION TARGET PARAM METRIC VALUE - one measurement (VALUE may be "FAIL:reason").
record() {
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RES"
}

# kv KEY LINE - value of KEY=VALUE in a tool's output line.
kv() {
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | head -1
}

# errline FILE - first line of a log, for a failure reason.
errline() {
	head -c 300 "$1" 2>/dev/null | tr '\n\t' '  ' | sed 's/ *$//' | cut -c1-120
}

# ---------------------------------------------------------------- peers: availability and start
NGINX_MOD=/usr/lib/nginx/modules/ngx_stream_module.so
declare -A MISSING
check_peers() {
	if [ ! -x "$BIN/natx-engine" ]; then
		MISSING[natx]="n/a (engine not built)"
		MISSING[natx-uring]="n/a (engine not built)"
	elif ! "$BIN/natx-engine" --help 2>&1 | grep -q -- '--tcp-mode'; then
		MISSING[natx-uring]="n/a (natx-engine has no --tcp-mode)"
	fi
	command -v haproxy >/dev/null || MISSING[haproxy]="n/a (haproxy not installed)"
	if ! command -v nginx >/dev/null; then
		MISSING[nginx]="n/a (nginx not installed)"
	elif [ ! -f "$NGINX_MOD" ]; then
		MISSING[nginx]="n/a (libnginx-mod-stream not installed)"
	fi
	command -v socat >/dev/null || MISSING[socat]="n/a (socat not installed)"
	local t
	for t in "${!MISSING[@]}"; do
		echo "run.sh: skipping $t: ${MISSING[$t]}" >&2
	done
}

# proxy_start TARGET PROTO LISTEN_PORT UPSTREAM_PORT - start one forwarder. Sets PROXY_PGID (empty
# for direct) and returns 0, or returns 1 with PROXY_ERR set.
proxy_start() {
	local t=$1 proto=$2 lp=$3 up=$4 name="$1-$2-$3" cfg
	PROXY_PGID="" PROXY_ERR=""
	case "$t" in
	direct) return 0 ;;
	natx)
		start_bg "$name" "$BIN/natx-engine" --forward "$proto:127.0.0.1:$lp=127.0.0.1:$up"
		;;
	splice-ref)
		[ "$proto" = tcp ] || {
			PROXY_ERR="n/a (TCP reference only)"
			return 1
		}
		start_bg "$name" "$BIN/bench-spliceref" --listen "127.0.0.1:$lp" \
			--upstream "127.0.0.1:$up"
		;;
	natx-uring)
		start_bg "$name" "$BIN/natx-engine" --tcp-mode uring \
			--forward "$proto:127.0.0.1:$lp=127.0.0.1:$up"
		;;
	haproxy)
		[ "$proto" = tcp ] || {
			PROXY_ERR="n/a (no UDP in haproxy)"
			return 1
		}
		cfg=$TMP/$name.cfg
		cat >"$cfg" <<-EOF
			global
			    maxconn $HAPROXY_MAXCONN
			    maxpipes $HAPROXY_MAXPIPES
			defaults
			    mode tcp
			    option splice-auto
			    timeout connect 5s
			    timeout client 10m
			    timeout server 10m
			    maxconn $HAPROXY_MAXCONN
			listen fwd
			    bind 127.0.0.1:$lp
			    server up 127.0.0.1:$up
		EOF
		if ! haproxy -c -q -f "$cfg" >"$TMP/$name.check" 2>&1; then
			PROXY_ERR="fail (haproxy config: $(errline "$TMP/$name.check"))"
			return 1
		fi
		start_bg "$name" haproxy -db -f "$cfg"
		;;
	nginx)
		cfg=$TMP/$name/nginx.conf
		mkdir -p "$TMP/$name/logs"
		local server
		if [ "$proto" = tcp ]; then
			server="listen 127.0.0.1:$lp reuseport; proxy_timeout 10m; proxy_half_close on;"
		else
			server="listen 127.0.0.1:$lp udp reuseport; proxy_timeout 30s;"
		fi
		cat >"$cfg" <<-EOF
			load_module $NGINX_MOD;
			daemon off;
			worker_processes auto;
			worker_rlimit_nofile 65536;
			pid $TMP/$name/nginx.pid;
			error_log $TMP/$name/logs/error.log warn;
			events { worker_connections 32768; }
			stream {
			    server { $server proxy_pass 127.0.0.1:$up; }
			}
		EOF
		if ! nginx -q -t -p "$TMP/$name" -e "$TMP/$name/logs/error.log" -c "$cfg" \
			>"$TMP/$name.check" 2>&1; then
			PROXY_ERR="fail (nginx config: $(errline "$TMP/$name.check"))"
			return 1
		fi
		start_bg "$name" nginx -p "$TMP/$name" -e "$TMP/$name/logs/error.log" -c "$cfg"
		;;
	socat)
		if [ "$proto" = tcp ]; then
			start_bg "$name" socat -t 10 -T 600 \
				"TCP4-LISTEN:$lp,bind=127.0.0.1,reuseaddr,fork,backlog=4096" \
				"TCP4:127.0.0.1:$up"
		else
			# One UDP session per socat process: the harness restarts it for each run.
			start_bg "$name" socat -T 30 "UDP4-LISTEN:$lp,bind=127.0.0.1,reuseaddr" \
				"UDP4:127.0.0.1:$up"
		fi
		;;
	*)
		PROXY_ERR="fail (unknown target $t)"
		return 1
		;;
	esac
	PROXY_PGID=$BG_PID
	if ! wait_listen "$proto" "$lp" "$PROXY_PGID"; then
		PROXY_ERR="fail (did not start: $(errline "$TMP/$name.err"))"
		forget_group "$PROXY_PGID"
		PROXY_PGID=""
		return 1
	fi
	return 0
}

# group_pids PGID - the live processes of a group.
group_pids() {
	pgrep -g "$1" 2>/dev/null
}

# group_cpu_ticks PGID - utime+stime (+ reaped children's) of every process in the group.
group_cpu_ticks() {
	local p total=0 t
	for p in $(group_pids "$1"); do
		# Fields after "pid (comm) ": $12 utime, $13 stime, $14 cutime, $15 cstime.
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13+$14+$15}')
		total=$((total + ${t:-0}))
	done
	echo "$total"
}

# group_mem PGID - "rss_kb hwm_kb pss_kb nproc" summed over the group.
group_mem() {
	local p rss=0 hwm=0 pss=0 n=0 v
	for p in $(group_pids "$1"); do
		v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null)
		rss=$((rss + ${v:-0}))
		v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null)
		hwm=$((hwm + ${v:-0}))
		v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
		pss=$((pss + ${v:-0}))
		n=$((n + 1))
	done
	echo "$rss $hwm $pss $n"
}

# rotate N - the target list rotated by N, so no target always runs first or last.
rotate() {
	local n=$(($1 % ${#TARGETS[@]}))
	echo "${TARGETS[@]:n}" "${TARGETS[@]:0:n}"
}

# Forwarders of the current section: PORT[target] is where the workload connects.
declare -A PORT PGID STARTERR
# section_proxies PROTO UPSTREAM_PORT - start every available target for a section.
section_proxies() {
	local proto=$1 up=$2 t lp
	PORT=() PGID=() STARTERR=()
	for t in "${TARGETS[@]}"; do
		if [ -n "${MISSING[$t]:-}" ]; then
			STARTERR[$t]=${MISSING[$t]}
			continue
		fi
		if [ "$t" = direct ]; then
			PORT[$t]=$up
			continue
		fi
		port_pick || return 1
		lp=$PICK
		if proxy_start "$t" "$proto" "$lp" "$up"; then
			PORT[$t]=$lp
			PGID[$t]=$PROXY_PGID
		else
			STARTERR[$t]=$PROXY_ERR
			echo "run.sh: $t ($proto): $PROXY_ERR" >&2
		fi
	done
}

# section_stop - stop the section's forwarders.
section_stop() {
	local t
	for t in "${!PGID[@]}"; do
		[ -n "${PGID[$t]}" ] && forget_group "${PGID[$t]}"
	done
	PGID=()
}

# alive TARGET - the target's forwarder is still running (direct always is).
alive() {
	[ "$1" = direct ] && return 0
	[ -n "${PGID[$1]:-}" ] && kill -0 "${PGID[$1]}" 2>/dev/null
}

# -------------------------------------------------------------------------------- sections
run_tcp() {
	if ! command -v iperf3 >/dev/null; then
		echo "run.sh: iperf3 is not installed: tcp section skipped" >&2
		record tcp _section _ _ "FAIL:iperf3 not installed"
		return
	fi
	local ip t rep streams out j bps bytes c0 c1 clk
	clk=$(getconf CLK_TCK)
	port_pick || return
	ip=$PICK
	start_bg iperf3-server iperf3 -s -B 127.0.0.1 -p "$ip"
	local srv=$BG_PID
	if ! wait_listen tcp "$ip" "$srv"; then
		record tcp _section _ _ "FAIL:iperf3 server did not start"
		forget_group "$srv"
		return
	fi
	section_proxies tcp "$ip"
	for rep in $(seq 1 "$REPS"); do
		for streams in 1 8; do
			for t in $(rotate "$rep"); do
				if [ -n "${STARTERR[$t]:-}" ]; then
					continue
				fi
				if ! alive "$t"; then
					record tcp "$t" "P$streams" gbps "FAIL:forwarder died"
					continue
				fi
				out=$TMP/iperf-$t-$streams-$rep.json
				c0=0
				[ "$t" != direct ] && c0=$(group_cpu_ticks "${PGID[$t]}")
				timeout $((IPERF_SECS + 20)) iperf3 -c 127.0.0.1 -p "${PORT[$t]}" \
					-t "$IPERF_SECS" -P "$streams" -J --connect-timeout 3000 \
					>"$out" 2>"$out.err"
				j=$?
				bps=$(jq -r '.end.sum_received.bits_per_second // empty' "$out" 2>/dev/null)
				bytes=$(jq -r '.end.sum_received.bytes // empty' "$out" 2>/dev/null)
				if [ $j -ne 0 ] || [ -z "$bps" ]; then
					local why
					why=$(jq -r '.error // empty' "$out" 2>/dev/null)
					[ -z "$why" ] && why="iperf3 exit $j"
					record tcp "$t" "P$streams" gbps "FAIL:$why"
					# iperf3's server may be stuck on a half-dead test: give it a moment.
					sleep 1
					continue
				fi
				record tcp "$t" "P$streams" gbps "$(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1e9}')"
				if [ "$t" != direct ]; then
					c1=$(group_cpu_ticks "${PGID[$t]}")
					record tcp "$t" "P$streams" cpu_s_per_gib "$(awk -v d=$((c1 - c0)) \
						-v hz="$clk" -v b="$bytes" 'BEGIN{printf "%.3f", (d/hz)/(b/1073741824)}')"
				fi
				echo "tcp rep $rep P$streams $t: $(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1e9}') Gbit/s" >&2
			done
		done
	done
	section_stop
	forget_group "$srv"
}

run_conn() {
	local ep t rep out line
	port_pick || return
	ep=$PICK
	start_bg echod-conn "$BIN/bench-echod" --tcp "127.0.0.1:$ep" --threads 2
	local srv=$BG_PID
	if ! wait_listen tcp "$ep" "$srv"; then
		record conn _section _ _ "FAIL:echo server did not start"
		forget_group "$srv"
		return
	fi
	section_proxies tcp "$ep"
	for rep in $(seq 1 "$REPS"); do
		for t in $(rotate "$rep"); do
			[ -n "${STARTERR[$t]:-}" ] && continue
			if ! alive "$t"; then
				record conn "$t" - rate "FAIL:forwarder died"
				continue
			fi
			out=$TMP/conn-$t-$rep.out
			timeout $((CONN_SECS + 30)) "$BIN/bench-connrate" \
				--connect "127.0.0.1:${PORT[$t]}" --count "$CONN_COUNT" \
				--time-limit "$CONN_SECS" --threads "$CONN_THREADS" \
				--concurrency "$CONN_CONC" --payload 64 --timeout 5 >"$out" 2>&1
			line=$(grep '^ok=' "$out")
			if [ -z "$line" ]; then
				record conn "$t" - rate "FAIL:$(errline "$out")"
				continue
			fi
			if [ "$(kv ok "$line")" = 0 ]; then
				record conn "$t" - rate "FAIL:no connection completed"
			else
				record conn "$t" - rate "$(kv rate "$line")"
			fi
			record conn "$t" - errors "$(kv err "$line")"
			record conn "$t" - conns "$(kv ok "$line")"
			echo "conn rep $rep $t: $line" >&2
			# Let TIME_WAIT and the forwarders settle so one run does not tax the next.
			sleep 1
		done
	done
	section_stop
	forget_group "$srv"
}

run_udp() {
	local ep t rep size out line lp c0 c1 clk
	clk=$(getconf CLK_TCK)
	port_pick || return
	ep=$PICK
	start_bg echod-udp "$BIN/bench-echod" --udp "127.0.0.1:$ep"
	local srv=$BG_PID
	if ! wait_listen udp "$ep" "$srv"; then
		record udp _section _ _ "FAIL:echo server did not start"
		forget_group "$srv"
		return
	fi
	# haproxy has no UDP; socat serves one client per process and is started per run.
	local saved=("${TARGETS[@]}")
	TARGETS=(direct natx nginx)
	section_proxies udp "$ep"
	TARGETS=("${saved[@]}")
	[ -n "${MISSING[socat]:-}" ] && STARTERR[socat]=${MISSING[socat]}
	for rep in $(seq 1 "$REPS"); do
		for size in 64 1200; do
			for t in $(rotate "$rep"); do
				# No UDP in haproxy; --tcp-mode does not change UDP forwarding.
				[ "$t" = haproxy ] || [ "$t" = natx-uring ] && continue
				[ -n "${STARTERR[$t]:-}" ] && continue
				if [ "$t" = socat ]; then
					port_pick || continue
					lp=$PICK
					if ! proxy_start socat udp "$lp" "$ep"; then
						record udp socat "B$size" pps "FAIL:$PROXY_ERR"
						continue
					fi
					PORT[socat]=$lp
					PGID[socat]=$PROXY_PGID
				fi
				if ! alive "$t"; then
					record udp "$t" "B$size" pps "FAIL:forwarder died"
					continue
				fi
				out=$TMP/udp-$t-$size-$rep.out
				c0=0
				[ "$t" != direct ] && c0=$(group_cpu_ticks "${PGID[$t]}")
				timeout $((UDP_SECS + 20)) "$BIN/bench-udpblast" \
					--target "127.0.0.1:${PORT[$t]}" --size "$size" \
					--count "$UDP_COUNT" --time-limit "$UDP_SECS" \
					--window "$UDP_WINDOW" >"$out" 2>&1
				line=$(grep '^sent=' "$out")
				if [ "$t" != direct ] && [ -n "$line" ] && [ "$(kv recv "$line")" != 0 ]; then
					# Forwarder CPU per datagram it moved (two per round trip).
					c1=$(group_cpu_ticks "${PGID[$t]}")
					record udp "$t" "B$size" cpu_us_per_pkt "$(awk -v d=$((c1 - c0)) \
						-v hz="$clk" -v n="$(kv recv "$line")" \
						'BEGIN{printf "%.2f", (d/hz)*1e6/(2*n)}')"
				fi
				if [ "$t" = socat ]; then
					forget_group "${PGID[socat]}"
					unset 'PGID[socat]'
				fi
				if [ -z "$line" ]; then
					record udp "$t" "B$size" pps "FAIL:$(errline "$out")"
					continue
				fi
				if [ "$(kv recv "$line")" = 0 ]; then
					record udp "$t" "B$size" pps "FAIL:no datagram came back"
				else
					record udp "$t" "B$size" pps "$(kv pps "$line")"
				fi
				record udp "$t" "B$size" sent "$(kv sent "$line")"
				record udp "$t" "B$size" lost "$(kv lost "$line")"
				record udp "$t" "B$size" corrupt "$(($(kv corrupt "$line") + $(kv dup "$line")))"
				echo "udp rep $rep ${size}B $t: $line" >&2
			done
		done
	done
	section_stop
	forget_group "$srv"
}

run_rss() {
	local ep t flows lp out before after mem i
	port_pick || return
	ep=$PICK
	start_bg echod-rss "$BIN/bench-echod" --tcp "127.0.0.1:$ep" --threads 2
	local srv=$BG_PID
	if ! wait_listen tcp "$ep" "$srv"; then
		record rss _section _ _ "FAIL:echo server did not start"
		forget_group "$srv"
		return
	fi
	for t in natx natx-uring haproxy nginx socat; do
		if [ -n "${MISSING[$t]:-}" ]; then
			record rss "$t" - rss_kb "NA:${MISSING[$t]}"
			continue
		fi
		# socat forks one process per flow; on a shared box with pid_max 32768 it gets fewer.
		flows=$RSS_FLOWS
		[ "$t" = socat ] && flows=$SOCAT_RSS_FLOWS
		port_pick || continue
		lp=$PICK
		if ! proxy_start "$t" tcp "$lp" "$ep"; then
			record rss "$t" - rss_kb "FAIL:$PROXY_ERR"
			continue
		fi
		local g=$PROXY_PGID
		sleep 0.5
		before=$(group_mem "$g")
		out=$TMP/idle-$t.out
		start_bg "idle-$t" "$BIN/bench-idleflows" --connect "127.0.0.1:$lp" --count "$flows" \
			--concurrency 256 --hold 120 --timeout 5 --setup-limit 60
		local holder=$BG_PID
		if ! wait_line "$TMP/idle-$t.out" '^ready' 75; then
			record rss "$t" - rss_kb "FAIL:bench-idleflows did not finish setup: $(errline "$TMP/idle-$t.err")"
			forget_group "$holder"
			forget_group "$g"
			continue
		fi
		sleep 1
		after=$(group_mem "$g")
		local line
		line=$(grep '^open=' "$TMP/idle-$t.out")
		forget_group "$holder"
		grep -q '^closed_early=0' "$TMP/idle-$t.out" || line="$line closed_early=$(kv closed_early "$(cat "$TMP/idle-$t.out")")"
		forget_group "$g"
		read -r -a mb <<<"$before"
		read -r -a ma <<<"$after"
		record rss "$t" - flows "$(kv open "$line")"
		record rss "$t" - flows_wanted "$flows"
		record rss "$t" - failed "$(kv failed "$line")"
		if [ "$(kv failed "$line")" != 0 ]; then
			record rss "$t" - note "$(kv failed "$line") of $flows flows did not open; forwarder's last warning: $(grep -iE 'warn|error|alert|emerg|crit' "$TMP/$t-tcp-$lp.err" 2>/dev/null | tail -n 1 | tr '\t' ' ' | cut -c1-160)"
		fi
		record rss "$t" - rss_before_kb "${mb[0]}"
		record rss "$t" - rss_kb "${ma[0]}"
		record rss "$t" - hwm_kb "${ma[1]}"
		record rss "$t" - pss_kb "${ma[2]}"
		record rss "$t" - pss_before_kb "${mb[2]}"
		record rss "$t" - procs "${ma[3]}"
		echo "rss $t: $line before=[$before] after=[$after] (rss hwm pss kB, procs)" >&2
		sleep 1
	done
	forget_group "$srv"
}

# run_xfer - XFER_ROUNDS checksummed transfers per forwarder, interleaved, through one forwarder
# instance per target, so a forwarder that leaks state from one flow into the next is caught.
run_xfer() {
	local xp t out line rline rc round
	port_pick || return
	xp=$PICK
	section_proxies tcp "$xp"
	for round in $(seq 1 "$XFER_ROUNDS"); do
		for t in $(rotate "$round"); do
			[ -n "${STARTERR[$t]:-}" ] && continue
			if ! alive "$t"; then
				record xfer "$t" - match "FAIL:forwarder died"
				continue
			fi
			start_bg "xfer-recv-$t-$round" "$BIN/bench-xfer" recv --listen "127.0.0.1:$xp" \
				--timeout 60
			local r=$BG_PID
			if ! wait_line "$TMP/xfer-recv-$t-$round.out" '^ready' 5; then
				record xfer "$t" - match "FAIL:receiver did not start: $(errline "$TMP/xfer-recv-$t-$round.err")"
				forget_group "$r"
				continue
			fi
			out=$TMP/xfer-send-$t-$round.out
			timeout 300 "$BIN/bench-xfer" send --connect "127.0.0.1:${PORT[$t]}" \
				--bytes "$XFER_BYTES" --seed $((RANDOM + 1)) --timeout 60 >"$out" 2>&1
			rc=$?
			wait_line "$TMP/xfer-recv-$t-$round.out" '^bytes=' 10
			forget_group "$r"
			line=$(grep '^sent_bytes=' "$out")
			rline=$(grep '^bytes=' "$TMP/xfer-recv-$t-$round.out")
			if [ -z "$line" ]; then
				record xfer "$t" - match "FAIL:round $round: sender: $(errline "$out")"
				continue
			fi
			local m=no
			if [ -n "$rline" ] && [ "$(kv sent_bytes "$line")" = "$(kv bytes "$rline")" ] &&
				[ "$(kv sent_xxh3 "$line")" = "$(kv xxh3 "$rline")" ]; then
				m=yes
			fi
			record xfer "$t" - match "$m"
			record xfer "$t" - bytes "$(kv sent_bytes "$line")"
			[ "$m" = no ] && record xfer "$t" - bad "round $round: sent $(kv sent_bytes "$line") B xxh3 $(kv sent_xxh3 "$line"), received ${rline:-nothing}"
			record xfer "$t" - halfclose "$([ $rc -eq 3 ] && echo no || echo yes)"
			echo "xfer round $round $t: $line | receiver: $rline" >&2
		done
	done
	section_stop
}

# ---------------------------------------------------------------------------------- report
# med SECTION TARGET PARAM METRIC - median of the numeric values, or the first failure reason.
med() {
	awk -F'\t' -v s="$1" -v t="$2" -v p="$3" -v m="$4" '
		$1==s && $2==t && $3==p && $4==m {
			if ($5 ~ /^-?[0-9.]+$/) v[n++] = $5; else if (why == "") why = $5
		}
		END {
			if (n == 0) { if (why != "") { sub(/^(FAIL|NA):/, "", why); print "fail:" why } ; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			if (n % 2) print v[int(n/2)]; else print (v[n/2-1] + v[n/2]) / 2
		}' "$RES"
}

# sum SECTION TARGET PARAM METRIC - sum of the numeric values (empty when none).
sum() {
	awk -F'\t' -v s="$1" -v t="$2" -v p="$3" -v m="$4" '
		$1==s && $2==t && $3==p && $4==m && $5 ~ /^[0-9.]+$/ { x += $5; n++ }
		END { if (n) print x }' "$RES"
}

# okruns SECTION TARGET PARAM METRIC - "k/n" numeric results over all attempts.
okruns() {
	awk -F'\t' -v s="$1" -v t="$2" -v p="$3" -v m="$4" '
		$1==s && $2==t && $3==p && $4==m { n++; if ($5 ~ /^-?[0-9.]+$/) k++ }
		END { printf "%d/%d", k, n }' "$RES"
}

# cell VALUE [FMT] - a table cell: formatted number, "fail (...)" or the n/a reason.
cell() {
	local v=$1 fmt=${2:-%.2f}
	if [ -z "$v" ]; then
		echo "-"
	elif [[ $v == fail:* ]]; then
		echo "fail (${v#fail:})"
	else
		awk -v v="$v" -v f="$fmt" 'BEGIN{printf f, v}'
	fi
}

# ratio A B - A/B as "1.23x", or "-" when either is not a number.
ratio() {
	if [[ $1 =~ ^[0-9.]+$ ]] && [[ $2 =~ ^[0-9.]+$ ]] && awk -v b="$2" 'BEGIN{exit !(b>0)}'; then
		awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", a/b}'
	else
		echo "-"
	fi
}

# na_or TARGET SECTION TEXT - the target's n/a or its start failure in SECTION, else TEXT.
na_or() {
	if [ -n "${MISSING[$1]:-}" ]; then
		echo "${MISSING[$1]}"
	elif [ -n "${STARTERR_ALL[$1,$2]:-}" ]; then
		echo "${STARTERR_ALL[$1,$2]}"
	else
		echo "$3"
	fi
}

machine() {
	echo "## Machine"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
	echo "- memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "- kernel: $(uname -r)"
	echo "- load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- natx: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')$([ -x "$BIN/natx-engine" ] || echo ' (natx-engine not built)')"
	echo "- peers: $(haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | head -1 | sed 's/.*: //'); $(socat -V 2>/dev/null | sed -n 2p | cut -d' ' -f1-3); $(iperf3 -v 2>/dev/null | head -1 | cut -d' ' -f1-2)"
	echo "- mode: $([ "$QUICK" = 1 ] && echo quick || echo full), $REPS repetitions, interleaved (target order rotated each repetition)"
}

report_tcp() {
	echo "## TCP throughput (iperf3, Gbit/s received, median of $REPS runs of ${IPERF_SECS} s)"
	echo
	echo "| target | 1 stream | vs haproxy | vs direct | 8 streams | vs haproxy | vs direct | CPU s/GiB (1 / 8 streams) | runs ok |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	local h1 h8 d1 d8 t v1 v8 c1 c8
	h1=$(med tcp haproxy P1 gbps) h8=$(med tcp haproxy P8 gbps)
	d1=$(med tcp direct P1 gbps) d8=$(med tcp direct P8 gbps)
	for t in "${TARGETS[@]}"; do
		local na
		na=$(na_or "$t" tcp "")
		if [ -n "$na" ]; then
			echo "| $t | $na | | | | | | | |"
			continue
		fi
		v1=$(med tcp "$t" P1 gbps) v8=$(med tcp "$t" P8 gbps)
		c1=$(med tcp "$t" P1 cpu_s_per_gib) c8=$(med tcp "$t" P8 cpu_s_per_gib)
		local cpu="-"
		[ "$t" != direct ] && cpu="$(cell "$c1" %.3f) / $(cell "$c8" %.3f)"
		echo "| $t | $(cell "$v1") | $(ratio "$v1" "$h1") | $(ratio "$v1" "$d1") | $(cell "$v8") | $(ratio "$v8" "$h8") | $(ratio "$v8" "$d8") | $cpu | $(okruns tcp "$t" P1 gbps) + $(okruns tcp "$t" P8 gbps) |"
	done
	echo
	echo "CPU s/GiB: user+system CPU seconds of the forwarder's processes (all threads, workers and"
	echo "reaped children) during the run, divided by GiB received by iperf3. The direct row has no"
	echo "forwarder."
}

report_conn() {
	echo "## New connections per second (connect, 64 B echo, close; $CONN_THREADS threads x $CONN_CONC in flight; up to $CONN_COUNT connections or ${CONN_SECS} s; median of $REPS)"
	echo
	echo "| target | conn/s | vs haproxy | vs direct | connections ok (sum) | errors (sum) | runs ok |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	local h d t v
	h=$(med conn haproxy - rate) d=$(med conn direct - rate)
	for t in "${TARGETS[@]}"; do
		local na
		na=$(na_or "$t" conn "")
		if [ -n "$na" ]; then
			echo "| $t | $na | | | | | |"
			continue
		fi
		v=$(med conn "$t" - rate)
		echo "| $t | $(cell "$v" %.0f) | $(ratio "$v" "$h") | $(ratio "$v" "$d") | $(sum conn "$t" - conns) | $(sum conn "$t" - errors) | $(okruns conn "$t" - rate) |"
	done
}

report_udp() {
	echo "## UDP forwarding (echo round trips/s through the forwarder, window $UDP_WINDOW in flight, up to $UDP_COUNT datagrams or ${UDP_SECS} s; median of $REPS)"
	echo
	echo "Each round trip crosses the forwarder twice (client to echo server and back), so the"
	echo "forwarder moves 2x the packets/s shown. haproxy has no UDP: ratios are to nginx stream."
	echo "CPU µs/datagram: user+system CPU of the forwarder's processes during the run divided by"
	echo "the datagrams it forwarded (2 per round trip that came back)."
	echo
	echo "| target | 64 B pkt/s | vs nginx | vs direct | loss | 1200 B pkt/s | vs nginx | vs direct | loss | corrupt+dup | CPU µs/datagram (64 / 1200 B) | runs ok |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	local n64 n12 d64 d12 t v64 v12
	n64=$(med udp nginx B64 pps) n12=$(med udp nginx B1200 pps)
	d64=$(med udp direct B64 pps) d12=$(med udp direct B1200 pps)
	for t in direct natx nginx socat; do
		local na
		na=$(na_or "$t" udp "")
		if [ -n "$na" ]; then
			echo "| $t | $na | | | | | | | | | | |"
			continue
		fi
		v64=$(med udp "$t" B64 pps) v12=$(med udp "$t" B1200 pps)
		local cpu="-"
		[ "$t" != direct ] && cpu="$(cell "$(med udp "$t" B64 cpu_us_per_pkt)" %.2f) / $(cell "$(med udp "$t" B1200 cpu_us_per_pkt)" %.2f)"
		local l64 l12 c
		l64=$(awk -v l="$(sum udp "$t" B64 lost)" -v s="$(sum udp "$t" B64 sent)" 'BEGIN{if (s>0) printf "%.3f%%", 100*l/s; else print "-"}')
		l12=$(awk -v l="$(sum udp "$t" B1200 lost)" -v s="$(sum udp "$t" B1200 sent)" 'BEGIN{if (s>0) printf "%.3f%%", 100*l/s; else print "-"}')
		c=$(awk -v a="$(sum udp "$t" B64 corrupt)" -v b="$(sum udp "$t" B1200 corrupt)" 'BEGIN{print a+b}')
		echo "| $t | $(cell "$v64" %.0f) | $(ratio "$v64" "$n64") | $(ratio "$v64" "$d64") | $l64 | $(cell "$v12" %.0f) | $(ratio "$v12" "$n12") | $(ratio "$v12" "$d12") | $l12 | $c | $cpu | $(okruns udp "$t" B64 pps) + $(okruns udp "$t" B1200 pps) |"
	done
}

report_rss() {
	echo "## Memory at idle flows (bench-idleflows: each flow echoed once end to end, then held idle)"
	echo
	echo "Sums over every process of the forwarder (nginx master + workers; socat: one process per"
	echo "flow), read from /proc/PID/status (VmRSS, VmHWM) and /proc/PID/smaps_rollup (Pss) after"
	echo "every flow is open. RSS counts shared pages once per process, PSS splits them among the"
	echo "processes; per-flow cost is (value with flows - value before) / flows."
	echo
	echo "| target | flows open / wanted | processes | RSS before MiB | RSS with flows MiB | VmHWM MiB | PSS MiB | KiB/flow (RSS) | KiB/flow (PSS) | PSS/flow vs haproxy (lower is better) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	local t hp
	hp=$(awk -F'\t' '$1=="rss" && $2=="haproxy" {v[$4]=$5} END {if (v["flows"]>0 && v["pss_kb"] ~ /^[0-9]+$/) printf "%.3f", (v["pss_kb"]-v["pss_before_kb"])/v["flows"]}' "$RES")
	for t in natx natx-uring haproxy nginx socat; do
		awk -F'\t' -v t="$t" -v hp="$hp" '
			$1=="rss" && $2==t { v[$4]=$5 }
			END {
				if (!("rss_kb" in v)) { print "| " t " | not run | | | | | | | | |"; exit }
				if (v["rss_kb"] !~ /^[0-9]+$/) { w = v["rss_kb"]; sub(/^(FAIL|NA):/, "", w); print "| " t " | " w " | | | | | | | | |"; exit }
				pf = v["flows"] > 0 ? (v["rss_kb"] - v["rss_before_kb"]) / v["flows"] : 0
				pp = v["flows"] > 0 ? (v["pss_kb"] - v["pss_before_kb"]) / v["flows"] : 0
				r = (hp > 0 && v["flows"] > 0) ? sprintf("%.2fx", pp / hp) : "-"
				printf "| %s | %d / %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %s |\n", t, v["flows"], v["flows_wanted"], v["procs"], v["rss_before_kb"]/1024, v["rss_kb"]/1024, v["hwm_kb"]/1024, v["pss_kb"]/1024, pf, pp, r
			}' "$RES"
	done
	echo
	awk -F'\t' '$1=="rss" && $4=="note" { print "- " $2 ": " $5 }' "$RES"
	if [ "$RSS_FLOWS" != "$RSS_FLOWS_WANTED" ]; then
		echo "Flows: $RSS_FLOWS instead of $RSS_FLOWS_WANTED because the open-file limit here is $NOFILE"
		echo "(hard limit; raising it needs CAP_SYS_RESOURCE) and a one-process forwarder needs two"
		echo "descriptors per flow."
	fi
	echo "socat is measured at fewer flows (one process per flow on a machine with pid_max 32768);"
	echo "compare it by KiB per flow."
}

report_xfer() {
	echo "## Data integrity (bench-xfer: $XFER_ROUNDS transfers of $XFER_BYTES per forwarder, seeded pattern, XXH3-64 at both ends)"
	echo
	echo "Transfers are interleaved across targets and go through one forwarder instance per target,"
	echo "so state leaking from one flow into the next shows up as a mismatch."
	echo
	echo "| target | transfers | checksums equal | reply after half-close | first problem |"
	echo "|---|---:|---:|---:|---|"
	local t
	for t in "${TARGETS[@]}"; do
		local na
		na=$(na_or "$t" xfer "")
		if [ -n "$na" ]; then
			echo "| $t | $na | | | |"
			continue
		fi
		awk -F'\t' -v t="$t" '
			$1=="xfer" && $2==t && $4=="match" { n++; if ($5=="yes") ok++; else if ($5 ~ /^FAIL:/ && why=="") { why=$5; sub(/^FAIL:/, "", why) } }
			$1=="xfer" && $2==t && $4=="halfclose" { h++; if ($5=="yes") hy++ }
			$1=="xfer" && $2==t && $4=="bad" && bad=="" { bad=$5 }
			END {
				p = bad != "" ? bad : (why != "" ? why : "-")
				printf "| %s | %d | %d/%d | %d/%d | %s |\n", t, n, ok, n, hy, h, p
			}' "$RES"
	done
}

report() {
	echo "# natx benchmark results"
	echo
	machine
	local s
	for s in tcp conn udp rss xfer; do
		want "$s" || continue
		echo
		"report_$s"
	done
}

# ------------------------------------------------------------------------------------ main
# Forwarders inherit the open-file limit: N idle flows need 2N+ descriptors in a one-process
# forwarder. Raise it as far as allowed (raising the hard limit needs CAP_SYS_RESOURCE) and fit
# the idle-flow count and haproxy's maxconn under it.
ulimit -Hn 1048576 2>/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
# haproxy needs 2 descriptors per connection and 2 per splice pipe; 200 pipes cover 8 streams.
HAPROXY_MAXPIPES=200
HAPROXY_MAXCONN=$(((NOFILE - 2 * HAPROXY_MAXPIPES - 100) / 2))
[ "$HAPROXY_MAXCONN" -gt 60000 ] && HAPROXY_MAXCONN=60000
RSS_FLOWS_WANTED=$RSS_FLOWS
if [ $((RSS_FLOWS + 50)) -gt "$HAPROXY_MAXCONN" ]; then
	RSS_FLOWS=$((HAPROXY_MAXCONN - 50))
	echo "run.sh: open-file limit $NOFILE: idle-flow test uses $RSS_FLOWS flows, not $RSS_FLOWS_WANTED" >&2
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
check_peers
declare -A STARTERR_ALL
for s in tcp conn udp rss xfer; do
	want "$s" || continue
	echo "== $s" >&2
	"run_$s"
	for t in "${!STARTERR[@]}"; do
		[ -z "${MISSING[$t]:-}" ] && STARTERR_ALL[$t,$s]=${STARTERR[$t]}
	done
	STARTERR=()
done
if [ -z "$OUT" ]; then
	mkdir -p "$SRC/build" 2>/dev/null && OUT=$SRC/build/bench-results.md || OUT=$TMP/bench-results.md
fi
report | tee "$OUT"
echo "run.sh: table written to $OUT; raw measurements: $([ "$KEEP" = 1 ] && echo "$RES" || echo "--keep to keep them")" >&2
