#!/usr/bin/env bash
# natx-engine SO_REUSEPORT steering: with --steer bpf every TCP connection and UDP session lands
# on the shard the engine's flow hash names; with --steer kernel every flow is still served.
# Cases in engine_steer.py. Exit 77 when BPF is not permitted (the kernel cases still ran).
set -euo pipefail
here=$(dirname "$0")
py=${PYTHON:-python3}
# A bad --steer value is bad input: exit 2, one line naming the option.
rc=0
"$NATX_BIN/natx-engine" --steer turbo >/tmp/natxbpe-steer.$$ 2>&1 || rc=$?
msg=$(cat /tmp/natxbpe-steer.$$)
rm -f /tmp/natxbpe-steer.$$
if [[ $rc -ne 2 || $msg != *"--steer: expected auto, bpf or kernel"* ]]; then
	echo "FAIL: --steer turbo: exit $rc, '$msg'"
	exit 1
fi
for proto in tcp udp; do
	"$py" "$here/engine_steer.py" kernel "$proto"
done
if [[ ! -x "$NATX_BIN/natx-bpf" ]]; then
	# NATX_WITH_BPF=OFF: the engine must say so instead of pretending.
	"$py" - "$NATX_BIN/natx-engine" <<'PY'
import subprocess, sys
r = subprocess.run([sys.argv[1], "--steer", "bpf", "--shards", "1"], capture_output=True,
                   text=True, timeout=20)
assert r.returncode != 0 and "NATX_WITH_BPF=OFF" in r.stderr + r.stdout, (r.returncode, r.stderr)
print("[engine_steer] built without BPF: --steer bpf refused with the reason")
PY
	exit 0
fi
rc=0
for c in "tcp" "udp" "tcp 6" "udp 6"; do
	# shellcheck disable=SC2086 # "PROTO [6]" on purpose
	"$py" "$here/engine_steer.py" bpf $c || rc=$?
	if [[ $rc -ne 0 ]]; then
		exit $rc
	fi
done
