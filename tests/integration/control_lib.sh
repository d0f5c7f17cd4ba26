#!/usr/bin/env bash
# Shared helpers for the control integration scripts (sourced, not run). Each test gets its own
# temp dir for sockets, state and database, an ephemeral HTTP port, and a trap that stops
# exactly the processes it started (by pid).
set -euo pipefail

: "${NATX_BIN:?NATX_BIN must point at build/bin}"
NATXD=$NATX_BIN/natxd
NATXCTL=$NATX_BIN/natxctl
[ -x "$NATXD" ] && [ -x "$NATXCTL" ] || { echo "natxd/natxctl not built"; exit 1; }

T=$(mktemp -d /tmp/natx-ctl-it.XXXXXX)
SOCK=$T/run/ctl.sock
PIDS=()
export XDG_RUNTIME_DIR=$T/xdg XDG_STATE_HOME=$T/xdgstate

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	if [ -f "$T/natxd.log" ]; then
		echo "--- natxd log (tail)" >&2
		tail -n 30 "$T/natxd.log" >&2
	fi
	exit 1
}

ctl() {
	"$NATXCTL" --socket "$SOCK" "$@"
}

# start_natxd ARGS... - start natxd in the background on this test's paths; waits until the
# control socket answers. Sets NATXD_PID.
start_natxd() {
	"$NATXD" --socket "$SOCK" --state-dir "$T/state" "$@" >>"$T/natxd.log" 2>&1 &
	NATXD_PID=$!
	PIDS+=("$NATXD_PID")
	for _ in $(seq 1 100); do
		if ctl version >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$NATXD_PID" 2>/dev/null || fail "natxd exited at start"
		sleep 0.05
	done
	fail "natxd socket never answered"
}

# expect_status WANT CMD... - run CMD, compare its exit status.
expect_status() {
	local want=$1 got=0
	shift
	"$@" >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, want $want: $(cat "$T/out" "$T/err")"
}

http_addr() {
	ctl --json status | jq -r .status.http
}
