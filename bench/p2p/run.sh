#!/usr/bin/env bash
# bench/p2p/run.sh - libp2p stream bridging: natx against js-libp2p 3.x on the same workload,
# and the raw cost of natx's Noise transport against plain BoringSSL. Interleaved repetitions,
# medians, ratios, a machine description; markdown on stdout and in --out.
#
#   bench/p2p/run.sh [--quick] [--only bridge,noise] [--reps N] [--bytes N] [--out FILE] [--keep]
#
# bridge: bench-xfer send -> TCP -> `p2p forward` -> libp2p stream (Noise + yamux over loopback
#   TCP) -> `p2p expose` -> TCP -> bench-xfer recv (XXH3 compared at both ends), through
#     natx-natx  natxd B forward -> natxd A expose (each natxd with its natx-engine)
#     js-js      tests/interop/bridge.mjs forward -> bridge.mjs expose (two node processes)
#     natx-js    natxd B forward -> bridge.mjs expose
#     js-natx    bridge.mjs forward -> natxd A expose
#     direct     bench-xfer send -> recv, no bridge (the ceiling)
#   Reported: Gbit/s (median), ratios, and CPU seconds per GiB of the two bridge processes
#   (natx-engine threads or node processes, utime + stime from /proc).
# noise: bench-p2p-noise --mode bssl|noise|stack (one thread, 65519-byte frames), and --mode hs
#   (libp2p connection setups per second in one thread).
# Everything is loopback; every process started here is killed on exit; every run is bounded.
# Needs build/bin (natxd, natxctl, natx-engine, bench-xfer, bench-p2p-noise), jq, and for the
# js rows node + tests/interop/node_modules (installed with `npm ci` there when missing).
# Not a test: never registered with ctest, never asserts a speed.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${NATX_BIN:-$SRC/build/bin}
JS=$SRC/tests/interop
QUICK=0
ONLY="bridge,noise"
REPS=""
BYTES=""
OUT=""
KEEP=0

usage() {
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-2}"
}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--only) ONLY=${2:?}; shift ;;
	--reps) REPS=${2:?}; shift ;;
	--bytes) BYTES=${2:?}; shift ;;
	--out) OUT=${2:?}; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage 0 ;;
	*) usage ;;
	esac
	shift
done
[ -n "$REPS" ] || REPS=$([ $QUICK = 1 ] && echo 3 || echo 5)
[ -n "$BYTES" ] || BYTES=$([ $QUICK = 1 ] && echo $((256 << 20)) || echo $((1 << 30)))
NOISE_BYTES=$([ $QUICK = 1 ] && echo $((256 << 20)) || echo $((1 << 30)))
HS_COUNT=$([ $QUICK = 1 ] && echo 300 || echo 1000)
[[ $REPS =~ ^[1-9][0-9]?$ ]] || { echo "--reps: 1..99" >&2; exit 2; }
[[ $BYTES =~ ^[1-9][0-9]*$ ]] || { echo "--bytes: a positive number" >&2; exit 2; }
OUT=${OUT:-$SRC/build/bench-p2p-results.md}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
command -v jq >/dev/null || { echo "bench/p2p: jq is needed" >&2; exit 2; }

T=$(mktemp -d /tmp/p2d-bench.XXXXXX)
RES=$T/results.tsv # section target metric value
: >"$RES"
PIDS=()
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
CLK_TCK=$(getconf CLK_TCK)
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if [ $KEEP = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
log() { echo "[p2p-bench] $*" >&2; }
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

# wait_file FILE PATTERN - until FILE has a line matching PATTERN (bounded, 15 s).
wait_file() {
	for _ in $(seq 1 150); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

declare -A IN_PORT CPU_PIDS NA
TARGETS=(natx-natx js-js natx-js js-natx direct)

ctl() { local n=$1; shift; timeout 30 "$BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"; }
start_natxd() { # NAME
	mkdir -p "$T/$1"
	printf '[server]\naddress = off\n[engine]\ndrain_ms = 0\n' >"$T/$1/natx.conf"
	XDG_RUNTIME_DIR=$T/$1/xdg XDG_STATE_HOME=$T/$1/xs NAT_TRAVERSAL_ENABLE_LIBP2P=true \
		NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 \
		"$BIN/natxd" --config "$T/$1/natx.conf" --socket "$T/$1/ctl.sock" \
		--state-dir "$T/$1/state" --listen off >"$T/$1/natxd.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do
		ctl "$1" --json peer >"$T/$1/peer.json" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
start_sink() { # TARGET - a bench-xfer recv for REPS transfers; sets SINK
	"$BIN/bench-xfer" recv --listen 127.0.0.1:0 --conns "$REPS" --timeout 900 >"$T/sink.$1" 2>&1 &
	PIDS+=($!)
	wait_file "$T/sink.$1" '^ready' || return 1
	SINK=$(sed -n 's/^port=//p' "$T/sink.$1")
}
start_js() { # NAME ARGS... - bridge.mjs in the background; sets JSPID
	"$NODE" "$JS/bridge.mjs" "${@:2}" >"$T/$1.out" 2>"$T/$1.err" &
	JSPID=$!
	PIDS+=($JSPID)
	wait_file "$T/$1.out" '"event"'
}
natx_forward() { # PROTO PEER - B forwards a local port; sets FPORT
	ctl b --json p2p forward "$1" 127.0.0.1:0 "$2" >"$T/fwd.json" || return 1
	FPORT=$(jq -r .service.listen "$T/fwd.json" | sed 's#.*/tcp/##')
}

setup_bridge() {
	local have_natx=1 have_js=1 a_addr j_addr
	for b in natxd natxctl natx-engine bench-xfer; do
		[ -x "$BIN/$b" ] || { have_natx=0; NA[natx]="n/a ($b not built)"; }
	done
	[ -x "$BIN/bench-xfer" ] || { log "bench-xfer not built"; return 1; }
	NODE=$JS/node_modules/.bin/node
	if [ ! -x "$NODE" ] || [ ! -d "$JS/node_modules/libp2p" ]; then
		log "installing the pinned js-libp2p packages (npm ci in tests/interop)"
		(cd "$JS" && timeout 300 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1) ||
			{ have_js=0; NA[js]="n/a (npm ci failed in tests/interop)"; }
	fi
	if [ $have_natx = 1 ]; then
		if start_natxd a && start_natxd b; then
			a_addr=$(jq -r '.listen_addrs[0] + "/p2p/" + .peer_id' "$T/a/peer.json")
			ENG_A=$(ctl a --json status | jq -r .status.engine.pid)
			ENG_B=$(ctl b --json status | jq -r .status.engine.pid)
		else
			have_natx=0
			NA[natx]="n/a (natxd did not start)"
		fi
	fi
	if [ $have_natx = 1 ] && start_sink natx-natx; then
		ctl a --json p2p expose /bench/nn/1.0.0 "127.0.0.1:$SINK" >/dev/null &&
			natx_forward /bench/nn/1.0.0 "$a_addr" &&
			IN_PORT[natx-natx]=$FPORT CPU_PIDS[natx-natx]="$ENG_A $ENG_B"
	fi
	if [ $have_js = 1 ] && start_sink js-js && start_js jsexp1 expose /bench/jj/1.0.0 "127.0.0.1:$SINK"; then
		local jexp=$JSPID
		j_addr=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsexp1.out")
		if start_js jsfwd1 forward /bench/jj/1.0.0 "$j_addr"; then
			IN_PORT[js-js]=$(jq -r 'select(.event=="forwarding") | .port' "$T/jsfwd1.out")
			CPU_PIDS[js-js]="$JSPID $jexp"
		fi
	fi
	if [ $have_js = 1 ] && [ $have_natx = 1 ] && start_sink natx-js &&
		start_js jsexp2 expose /bench/nj/1.0.0 "127.0.0.1:$SINK"; then
		j_addr=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsexp2.out")
		natx_forward /bench/nj/1.0.0 "$j_addr" &&
			IN_PORT[natx-js]=$FPORT CPU_PIDS[natx-js]="$ENG_B $JSPID"
	fi
	if [ $have_js = 1 ] && [ $have_natx = 1 ] && start_sink js-natx &&
		ctl a --json p2p expose /bench/jn/1.0.0 "127.0.0.1:$SINK" >/dev/null &&
		start_js jsfwd2 forward /bench/jn/1.0.0 "$a_addr"; then
		IN_PORT[js-natx]=$(jq -r 'select(.event=="forwarding") | .port' "$T/jsfwd2.out")
		CPU_PIDS[js-natx]="$JSPID $ENG_A"
	fi
	start_sink direct && IN_PORT[direct]=$SINK CPU_PIDS[direct]=""
	for t in "${TARGETS[@]}"; do
		if [ -z "${IN_PORT[$t]:-}" ]; then
			case $t in
			natx-natx) NA[$t]=${NA[natx]:-"n/a (setup failed, see --keep)"} ;;
			js-js) NA[$t]=${NA[js]:-"n/a (setup failed, see --keep)"} ;;
			*) NA[$t]=${NA[natx]:-${NA[js]:-"n/a (setup failed, see --keep)"}} ;;
			esac
			log "$t: ${NA[$t]}"
		fi
	done
}

run_bridge() {
	local rep t order c0 c1 line i
	setup_bridge || return
	for rep in $(seq 1 "$REPS"); do
		order=()
		for i in "${!TARGETS[@]}"; do order+=("${TARGETS[$(((i + rep) % ${#TARGETS[@]}))]}"); done
		for t in "${order[@]}"; do
			[ -n "${IN_PORT[$t]:-}" ] || continue
			# shellcheck disable=SC2086
			c0=$(cpu_ticks ${CPU_PIDS[$t]})
			line=$(timeout 300 "$BIN/bench-xfer" send --connect "127.0.0.1:${IN_PORT[$t]}" \
				--bytes "$BYTES" --seed "$rep" --timeout 120 2>&1 | tail -n 1)
			# shellcheck disable=SC2086
			c1=$(cpu_ticks ${CPU_PIDS[$t]})
			log "rep $rep $t: $line"
			if [[ $line == *match=yes* ]]; then
				record bridge "$t" gbps "$(sed -n 's/.*gbps=\([0-9.]*\).*/\1/p' <<<"$line")"
				[ -n "${CPU_PIDS[$t]}" ] && record bridge "$t" cpu_per_gib \
					"$(awk -v c=$((c1 - c0)) -v k="$CLK_TCK" -v b="$BYTES" 'BEGIN{printf "%.3f", c / k / (b / 1073741824)}')"
				record bridge "$t" ok 1
			else
				record bridge "$t" gbps "FAIL:${line:0:60}"
				record bridge "$t" ok 0
			fi
		done
	done
}

run_noise() {
	local rep m line i modes=(bssl noise stack)
	[ -x "$BIN/bench-p2p-noise" ] || { NA[noise]="n/a (bench-p2p-noise not built)"; return; }
	for rep in $(seq 1 "$REPS"); do
		for i in 0 1 2; do
			m=${modes[$(((i + rep) % 3))]}
			line=$(timeout 300 "$BIN/bench-p2p-noise" --mode "$m" --bytes "$NOISE_BYTES" 2>&1 | tail -n 1)
			log "rep $rep $m: $line"
			if [[ $line == mode=* ]]; then
				record noise "$m" gibs "$(sed -n 's/.*gib_per_s=\([0-9.]*\).*/\1/p' <<<"$line")"
				record noise "$m" cpu_per_gib "$(sed -n 's/.*cpu_s_per_gib=\([0-9.]*\).*/\1/p' <<<"$line")"
			else
				record noise "$m" gibs "FAIL:${line:0:60}"
			fi
		done
		line=$(timeout 300 "$BIN/bench-p2p-noise" --mode hs --count "$HS_COUNT" 2>&1 | tail -n 1)
		log "rep $rep hs: $line"
		record noise hs per_s "$(sed -n 's/.*hs_per_s=\([0-9.]*\).*/\1/p' <<<"$line")"
	done
}

# med SECTION TARGET METRIC - median of the numeric values, or "fail:<first reason>".
med() {
	awk -F'\t' -v s="$1" -v t="$2" -v m="$3" '
		$1==s && $2==t && $3==m {
			if ($4 ~ /^[0-9.]+$/) v[n++] = $4; else if (why == "") why = $4
		}
		END {
			if (n == 0) { if (why != "") { sub(/^FAIL:/, "", why); print "fail:" why }; exit }
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
			if (n % 2) print v[int(n/2)]; else print (v[n/2-1] + v[n/2]) / 2
		}' "$RES"
}
okruns() {
	awk -F'\t' -v s="$1" -v t="$2" '$1==s && $2==t && $3=="ok" { n++; k += $4 } END { printf "%d/%d", k, n }' "$RES"
}
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

machine() {
	echo "## Machine"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), nproc $(nproc)"
	echo "- memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "- kernel: $(uname -r)"
	echo "- load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- natx: $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?'); js: libp2p $(jq -r '.dependencies.libp2p' "$JS/package.json"), node $("${NODE:-node}" --version 2>/dev/null || echo '?')"
	echo "- mode: $([ $QUICK = 1 ] && echo quick || echo full), $REPS repetitions, interleaved (order rotated each repetition)"
}

report_bridge() {
	local t g c base direct
	base=$(med bridge js-js gbps)
	direct=$(med bridge direct gbps)
	echo "## Bridged stream throughput"
	echo
	echo "bench-xfer send -> TCP -> forward -> libp2p stream -> expose -> TCP -> bench-xfer recv, $((BYTES >> 20)) MiB per transfer, XXH3 compared at both ends; median of $REPS."
	echo
	echo "| path | Gbit/s | vs js-js | vs direct | CPU s/GiB (both bridges) | runs ok |"
	echo "|---|---|---|---|---|---|"
	for t in "${TARGETS[@]}"; do
		if [ -n "${NA[$t]:-}" ]; then
			echo "| $t | ${NA[$t]} | - | - | - | - |"
			continue
		fi
		g=$(med bridge "$t" gbps)
		c=$(med bridge "$t" cpu_per_gib)
		echo "| $t | $(cell "$g") | $(ratio "$g" "$base") | $(ratio "$g" "$direct") | $(cell "$c" %.3f) | $(okruns bridge "$t") |"
	done
	echo
	c=$(med bridge natx-natx cpu_per_gib)
	echo "CPU per GiB, js-js / natx-natx: $(ratio "$(med bridge js-js cpu_per_gib)" "$c")"
	echo
}

report_noise() {
	local m g c base
	if [ -n "${NA[noise]:-}" ]; then
		echo "## Noise transport cost"
		echo
		echo "${NA[noise]}"
		echo
		return
	fi
	base=$(med noise bssl gibs)
	echo "## Noise transport cost (one thread, 65519-byte frames, seal + open per frame)"
	echo
	echo "$((NOISE_BYTES >> 20)) MiB of payload per run; GiB/s = payload / thread CPU time; median of $REPS."
	echo
	echo "| what | GiB/s | CPU s/GiB | vs BoringSSL |"
	echo "|---|---|---|---|"
	for m in bssl noise stack; do
		g=$(med noise "$m" gibs)
		c=$(med noise "$m" cpu_per_gib)
		case $m in
		bssl) echo -n "| BoringSSL EVP_AEAD ChaCha20-Poly1305 (raw) " ;;
		noise) echo -n "| natx Noise transport (noise_seal + noise_open) " ;;
		stack) echo -n "| natx libp2p stack in memory (stream write -> yamux -> Noise -> ... -> stream data) " ;;
		esac
		echo "| $(cell "$g" %.3f) | $(cell "$c" %.3f) | $(ratio "$g" "$base") |"
	done
	echo
	echo "libp2p connection setups (multistream, Noise XX with signed identity payloads, yamux; both ends in one thread): $(cell "$(med noise hs per_s)" %.0f)/s"
	echo
}

want bridge && run_bridge
want noise && run_noise
{
	echo "# libp2p benchmark (bench/p2p/run.sh)"
	echo
	machine
	echo
	want bridge && report_bridge
	want noise && report_noise
} | tee "$OUT"
log "results in $OUT"
