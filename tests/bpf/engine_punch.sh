#!/usr/bin/env bash
# natx-engine punch sessions (engine/core/punch_eng.h); cases in engine_punch.py.
# Always: the session alone on its port, no steering (--steer kernel). With BPF built and root:
# sk_lookup steering inside a network namespace created here (pch-$$) with its own bpffs, so the
# pinned program and maps vanish with the namespace's mount. Exit 77 when that part cannot run.
set -euo pipefail
here=$(dirname "$0")
py=${PYTHON:-python3}
"$py" "$here/engine_punch.py" none
if [[ ! -x "$NATX_BIN/natx-bpf" ]]; then
	echo "[engine_punch] built with NATX_WITH_BPF=OFF: sk_lookup part not built, nothing more to test"
	exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null; then
	echo "[engine_punch] SKIP sk_lookup part: needs root and iproute2"
	exit 77
fi
ns=pch-$$
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
if ! ip netns add "$ns" 2>/dev/null; then
	echo "[engine_punch] SKIP sk_lookup part: cannot create a network namespace"
	exit 77
fi
ip -n "$ns" link set lo up
# ip netns exec gives the command its own mount namespace: a bpffs mounted there holds the pins
# and disappears with the command.
ip netns exec "$ns" sh -c 'mount -t bpf bpf /sys/fs/bpf && exec timeout 120 "$0" "$1" bpf /sys/fs/bpf/natx-pch' \
	"$py" "$here/engine_punch.py"
