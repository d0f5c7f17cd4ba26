# shellcheck shell=bash
# tests/integration/nodes_lib.sh - sourced by tests that run several natxd instances with
# libp2p on loopback, each with its own control socket, state directory and engine.
#
# Set before sourcing (optional):
#   NODES_TAG   prefix of the test's temp directory (default natx-nodes)
#   NODES_LOGS  node names whose natxd log tails `fail` prints (default "a b")
# Define (optional): fail_extra, called by `fail` before it exits (more logs to print).
#
# Provides: T (temp dir, removed on exit), PIDS (killed and reaped on exit), fail, pass,
#   ctl NAME ARGS...               natxctl on node NAME's socket (bounded: 60 s)
#   start_natxd NAME [ENV=VAL...]  natxd with libp2p on 127.0.0.1:0 (HTTP on $HTTP_LISTEN, off
#                                  when unset); waits until `peer` answers, which it saves in
#                                  $T/NAME/peer.json; NODE_PID[NAME] is its pid
#   addr_of NAME                   NAME's first listen address with /p2p/PEER_ID
: "${NATX_BIN:?NATX_BIN must point at build/bin}"
SRC=${NATX_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
T=$(mktemp -d "/tmp/${NODES_TAG:-natx-nodes}.XXXXXX")
PIDS=()
declare -A NODE_PID

nodes_cleanup() {
	local p
	# A pid may be a wrapper (a pyenv shim runs python3 as its child): stop its children too.
	for p in "${PIDS[@]}"; do
		pkill -TERM -P "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap nodes_cleanup EXIT

fail() {
	local n
	echo "FAIL: $*"
	for n in ${NODES_LOGS:-a b}; do
		tail -n 8 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"
	done
	if [ "$(type -t fail_extra)" = function ]; then
		fail_extra
	fi
	exit 1
}

pass() { echo "PASS $*"; }

ctl() {
	local n=$1
	shift
	timeout 60 "$NATX_BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"
}

start_natxd() {
	local n=$1
	shift
	mkdir -p "$T/$n"
	env XDG_RUNTIME_DIR="$T/$n/xdg" XDG_STATE_HOME="$T/$n/xs" NAT_TRAVERSAL_ENABLE_LIBP2P=true \
		NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 "$@" \
		"$NATX_BIN/natxd" --socket "$T/$n/ctl.sock" --state-dir "$T/$n/state" \
		--listen "${HTTP_LISTEN:-off}" >>"$T/$n/natxd.log" 2>&1 &
	NODE_PID[$n]=$!
	PIDS+=($!)
	for _ in $(seq 1 100); do
		ctl "$n" --json peer >"$T/$n/peer.json" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "natxd $n did not come up"
}

addr_of() {
	jq -r '.listen_addrs[0] + "/p2p/" + .peer_id' "$T/$1/peer.json"
}
