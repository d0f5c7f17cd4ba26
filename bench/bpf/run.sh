#!/usr/bin/env bash
# STUN Binding responses per second: XDP reflector vs natx-stund vs coturn, in one run.
#
#   natxbpfbG<pid> (generator)                     natxbpfbS<pid> (server)
#   g0 198.18.78.1/24 [xdp_pass] ──── veth ────── s0 198.18.78.2/24
#                                                 XDP reflector | natx-stund | turnserver -S
#
# The generator is natx-stungen (bench/bpf/stun_gen.c): THREADS threads write prebuilt
# Binding request frames to an AF_PACKET socket on g0 (PACKET_QDISC_BYPASS, sendmmsg) as fast
# as the interface takes them, for SECONDS after a warm-up; an XDP program it attaches to g0
# counts valid answers and drops them. A responder's figure is answers/s inside the window;
# sent/s is the offered load. answers < sent means the responder (or the CPU it shares with
# the generator) is the bottleneck, not the generator. Each responder gets ROUNDS runs; the
# best is kept, every round is printed on stderr.
# Root only; touches nothing outside its two namespaces. Not a test: it asserts nothing.
# Usage: bench/bpf/run.sh [BUILD_DIR]   (env: THREADS=2 SECONDS_=2 ROUNDS=3 MODE=native|generic)
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "bench/bpf: needs root" >&2; exit 77; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
BIN=$BUILD/bin
THREADS=${THREADS:-2}
SECONDS_=${SECONDS_:-2}
ROUNDS=${ROUNDS:-3}
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
SMAC=$(ip -n $S -o link show s0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')

# best_of NAME - ROUNDS runs of the generator; print "best_answers/s sent/s_of_that_round".
best_of() {
	local best=0 bsent=0 r out v sent
	for r in $(seq "$ROUNDS"); do
		out=$(ip netns exec $G "$BIN/natx-stungen" --iface g0 --dst-mac "$SMAC" \
			--src 198.18.78.1 --dst 198.18.78.2 --port 3478 --threads "$THREADS" \
			--seconds "$SECONDS_")
		echo "  $1 round $r: $out" >&2
		v=$(sed -n 's/.*"answered_per_s":\([0-9]*\).*/\1/p' <<<"$out")
		sent=$(sed -n 's/.*"sent_per_s":\([0-9]*\).*/\1/p' <<<"$out")
		if [ "${v:-0}" -gt "$best" ]; then best=$v bsent=$sent; fi
		sleep 0.5
	done
	echo "$best $bsent"
}

echo "bench/bpf: $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r) $(nproc) CPU(s): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "bench/bpf: $THREADS generator threads x ${SECONDS_}s per round, $ROUNDS rounds, XDP mode $MODE, load: $(cut -d' ' -f1-3 /proc/loadavg)"

"$BIN/natx-xdp-pps" 100000
nsenter --net=/run/netns/$S "$BIN/natx-bpf" attach s0 --mode "$MODE" --pin-root "$PIN"
read -r XDP XDP_SENT < <(best_of "xdp")
nsenter --net=/run/netns/$S "$BIN/natx-bpf" status s0 --pin-root "$PIN" >&2
nsenter --net=/run/netns/$S "$BIN/natx-bpf" detach s0 --pin-root "$PIN"

nsenter --net=/run/netns/$S "$BIN/natx-stund" --listen 198.18.78.2:3478 >/dev/null &
PIDS+=($!)
sleep 0.3
read -r STUND STUND_SENT < <(best_of "natx-stund")
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

nsenter --net=/run/netns/$S turnserver -n -S -z -L 198.18.78.2 -p 3478 --no-tcp --no-tls \
	--no-dtls --no-cli --log-file "/tmp/natxbpf-bench-$$/turn.log" --simple-log \
	--pidfile "/tmp/natxbpf-bench-$$/turn.pid" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
	ip netns exec $G "$BIN/natx-stunc" 198.18.78.2:3478 --timeout-ms 100 >/dev/null 2>&1 && break
	sleep 0.1
done
read -r COTURN COTURN_SENT < <(best_of "coturn")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
printf '%-28s %12s %12s\n' "responder" "answers/s" "offered/s"
printf '%-28s %12s %12s\n' "XDP reflector ($MODE)" "$XDP" "$XDP_SENT"
printf '%-28s %12s %12s\n' "natx-stund (recvmmsg)" "$STUND" "$STUND_SENT"
printf '%-28s %12s %12s\n' "coturn turnserver -S" "$COTURN" "$COTURN_SENT"
echo "ratio XDP/coturn: $(ratio "$XDP" "$COTURN")  XDP/natx-stund: $(ratio "$XDP" "$STUND")  natx-stund/coturn: $(ratio "$STUND" "$COTURN")"
