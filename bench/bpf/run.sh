#!/usr/bin/env bash
# STUN Binding responses per second: XDP reflector vs natx-stund vs coturn, in one run.
#
#   natxbpfbG<pid> (generator)                     natxbpfbS<pid> (server)
#   g0 198.18.78.1/24 [xdp_pass] ──── veth ────── s0 198.18.78.2/24
#                                                 XDP reflector | natx-stund | turnserver -S
#
# The generator is natx-stunc --count N: it sends N Binding requests with sendmmsg as fast as
# the socket takes them while draining answers, and reports valid answers per second (time
# from the first send to the last answer). Each responder gets ROUNDS runs; the best is kept.
# Root only; touches nothing outside its two namespaces. Not a test: it asserts nothing.
# Usage: bench/bpf/run.sh [BUILD_DIR]   (env: COUNT=200000 ROUNDS=3 PAR=2 MODE=native|generic)
# PAR generators (separate sockets, so separate source ports) run at once.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/bpf: needs root" >&2; exit 77; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
BIN=$BUILD/bin
COUNT=${COUNT:-200000}
ROUNDS=${ROUNDS:-3}
PAR=${PAR:-2}
MODE=${MODE:-native}
G=natxbpfbG$$ S=natxbpfbS$$
PIN=/sys/fs/bpf/natxbpf-bench-$$
PIDS=()

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	"$BIN/natx-bpf" detach s0 --pin-root "$PIN" >/dev/null 2>&1
	rmdir "$PIN" 2>/dev/null
	ip netns del $G 2>/dev/null
	ip netns del $S 2>/dev/null
	rm -rf "/tmp/natxbpf-bench-$$"
}
trap cleanup EXIT
mkdir -p "/tmp/natxbpf-bench-$$"

ip netns add $G
ip netns add $S
ip link add g0 netns $G type veth peer name s0 netns $S
ip -n $G addr add 198.18.78.1/24 dev g0
ip -n $S addr add 198.18.78.2/24 dev s0
ip -n $G link set g0 up
ip -n $S link set s0 up
ip -n $G link set lo up
ip -n $S link set lo up
ip -n $G link set dev g0 xdpdrv obj "$BUILD/bpf/xdp_pass.bpf.o" sec xdp

# best_of NAME - run PAR generators at once, ROUNDS times; print the best total answers/s
# (sum of answers over the longest generator's time).
best_of() {
	local best=0 r i v tot secs
	for r in $(seq "$ROUNDS"); do
		for i in $(seq "$PAR"); do
			ip netns exec $G "$BIN/natx-stunc" 198.18.78.2:3478 --count "$COUNT" \
				--timeout-ms 500 --json >"/tmp/natxbpf-bench-$$/gen.$i" &
		done
		wait
		tot=0 secs=0
		for i in $(seq "$PAR"); do
			echo "  $1 round $r gen $i: $(cat "/tmp/natxbpf-bench-$$/gen.$i")" >&2
			tot=$((tot + $(sed -n 's/.*"answered":\([0-9]*\).*/\1/p' "/tmp/natxbpf-bench-$$/gen.$i")))
			secs=$(awk -v a="$secs" -v b="$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' \
				"/tmp/natxbpf-bench-$$/gen.$i")" 'BEGIN { print (b > a) ? b : a }')
		done
		v=$(awk -v t="$tot" -v s="$secs" 'BEGIN { printf "%d", (s > 0) ? t / s : 0 }')
		echo "  $1 round $r: $tot answers in $secs s = $v/s" >&2
		[ "$v" -gt "$best" ] && best=$v
		sleep 0.5
	done
	echo "$best"
}

echo "bench/bpf: $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) CPU(s): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "bench/bpf: $PAR generators x $COUNT requests per round, $ROUNDS rounds, XDP mode $MODE"

"$BIN/natx-xdp-pps" 100000
nsenter --net=/run/netns/$S "$BIN/natx-bpf" attach s0 --mode "$MODE" --pin-root "$PIN"
XDP=$(best_of "xdp")
nsenter --net=/run/netns/$S "$BIN/natx-bpf" status s0 --pin-root "$PIN" >&2
nsenter --net=/run/netns/$S "$BIN/natx-bpf" detach s0 --pin-root "$PIN"

nsenter --net=/run/netns/$S "$BIN/natx-stund" --listen 198.18.78.2:3478 >/dev/null &
PIDS+=($!)
sleep 0.3
STUND=$(best_of "natx-stund")
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

nsenter --net=/run/netns/$S turnserver -n -S -z -L 198.18.78.2 -p 3478 --no-tcp --no-tls \
	--no-dtls --no-cli --log-file "/tmp/natxbpf-bench-$$/turn.log" --simple-log \
	--pidfile "/tmp/natxbpf-bench-$$/turn.pid" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
	ip netns exec $G "$BIN/natx-stunc" 198.18.78.2:3478 --timeout-ms 100 >/dev/null 2>&1 && break
	sleep 0.1
done
COTURN=$(best_of "coturn")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
printf '%-28s %12s\n' "responder" "answers/s"
printf '%-28s %12s\n' "XDP reflector ($MODE)" "$XDP"
printf '%-28s %12s\n' "natx-stund (recvmmsg)" "$STUND"
printf '%-28s %12s\n' "coturn turnserver -S" "$COTURN"
echo "ratio XDP/coturn: $(ratio "$XDP" "$COTURN")  XDP/natx-stund: $(ratio "$XDP" "$STUND")  natx-stund/coturn: $(ratio "$STUND" "$COTURN")"
