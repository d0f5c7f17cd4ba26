#!/usr/bin/env bash
# natxd's STUN responder control (docs/bpf.md "Control") in a private namespace pair:
#
#   natxbpfcC<pid> (client)                     natxbpfcS<pid> (relay: natxd)
#   c0 198.18.79.2/24, natx_xdp_pass  ──veth──  s0 198.18.79.1/24, XDP reflector by natxd
#
# Checks:
#  1. natxd with NAT_TRAVERSAL_XDP_INTERFACE=s0 (native mode) attaches the reflector under a
#     private pin root; turnutils_stunclient and natx-stunc in the client namespace learn
#     198.18.79.2; `natxctl bpf status` (table and --json) shows xdp, native, the program id and
#     answered >= 2; /metrics has natx_bpf_packets_total{prog="stun",...,result="answered"}
#     with the same value, and the JSON metrics carry it too.
#  2. natxd restart (SIGTERM, keep_on_exit default): the link stays attached while natxd is
#     down and still answers; the next natxd reuses it: same link id, counters not reset.
#  3. NAT_TRAVERSAL_XDP_MODE=off: the reflector is detached (pins gone), the engine's
#     user-space responder (natxd asks natx-engine with stun.set) answers, status says
#     "fallback" / responder "engine (user space)" with the reason, not accelerated, and the
#     engine's counters are in status and /metrics; the engine's own stats show it too.
#  4. xdp.keep_on_exit = false: stopping natxd detaches the reflector and removes its pins.
#  5. `natxctl reload` after editing xdp.mode: off detaches and starts the fallback, generic
#     attaches again in generic mode and stops the fallback (the engine no longer answers).
#     A reload to native mode on lo (refused there) keeps the generic reflector and says so.
#  6. natxd as nobody (no CAP_BPF): the fallback answers, the reason names the failed attach.
#  7. A bad NAT_TRAVERSAL_XDP_MODE value: natxd exits 2 naming the variable.
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root for namespaces and XDP"
: "${NATX_BIN:?}" "${NATX_BUILD:?}"
for t in ip nsenter jq curl turnutils_stunclient; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
XDP_PASS_OBJ=$NATX_BUILD/bpf/xdp_pass.bpf.o
[ -f "$XDP_PASS_OBJ" ] || skip "BPF objects not built (NATX_WITH_BPF=OFF)"
[ -x "$NATX_BIN/natx-bpf" ] || skip "natx-bpf not built"

S=natxbpfcS$$ C=natxbpfcC$$
PIN=/sys/fs/bpf/natxbpfc-$$
T=$(mktemp -d /tmp/natx-bpfc.XXXXXX)
SOCK=$T/ctl.sock
NATXD_PID=

fail() {
	echo "FAIL: $*" >&2
	echo "--- natxd log (tail)" >&2
	tail -n 30 "$T/natxd.log" >&2 || true
	exit 1
}

cleanup() {
	set +e
	if [ -n "$NATXD_PID" ]; then
		kill "$NATXD_PID" 2>/dev/null
		wait "$NATXD_PID" 2>/dev/null
	fi
	for i in s0 lo; do
		nsenter --net=/run/netns/$S "$NATX_BIN/natx-bpf" detach $i --pin-root "$PIN" \
			>/dev/null 2>&1
	done
	rmdir "$PIN" 2>/dev/null
	ip netns del $S 2>/dev/null
	ip netns del $C 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

inS() { nsenter --net=/run/netns/$S "$@"; }
inC() { ip netns exec $C "$@"; }
ctl() { "$NATX_BIN/natxctl" --socket "$SOCK" "$@"; }
bpfstat() { inS "$NATX_BIN/natx-bpf" status s0 --json --pin-root "$PIN"; }

ip netns add $S || skip "cannot create network namespaces"
ip netns add $C || skip "cannot create network namespaces"
ip link add s0 netns $S type veth peer name c0 netns $C
inS ip addr add 198.18.79.1/24 dev s0
inC ip addr add 198.18.79.2/24 dev c0
for n in $S $C; do ip netns exec $n ip link set lo up; done
inS ip link set s0 up
inC ip link set c0 up
# veth delivers XDP_TX frames only to a peer that has an XDP program (docs/bpf.md).
inC ip link set dev c0 xdpdrv obj "$XDP_PASS_OBJ" sec xdp ||
	skip "cannot attach the XDP_PASS program to the veth peer"

cat >"$T/natx.conf" <<CONF
[server]
address = 127.0.0.1:0
[control]
socket = $SOCK
[store]
state_dir = $T/state
[engine]
path = $NATX_BIN/natx-engine
shards = 2
keep_on_exit = false
restart_base_ms = 5000
restart_max_ms = 60000
[xdp]
pin_root = $PIN
rate = 1000
CONF
sed 's/^rate = 1000$/rate = 1000\nkeep_on_exit = false/' "$T/natx.conf" >"$T/natx-nokeep.conf"

# start_natxd CONF ENV... - natxd in the relay namespace (nsenter keeps the host's bpffs, which
# `ip netns exec` would hide); waits until `bpf status` answers.
start_natxd() {
	local conf=$1
	shift
	env "$@" nsenter --net=/run/netns/$S "$NATX_BIN/natxd" --config "$conf" \
		>>"$T/natxd.log" 2>&1 &
	NATXD_PID=$!
	for _ in $(seq 1 100); do
		if ctl bpf status >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$NATXD_PID" 2>/dev/null || fail "natxd exited at start"
		sleep 0.05
	done
	fail "natxd socket never answered"
}

stop_natxd() {
	kill -TERM "$NATXD_PID"
	wait "$NATXD_PID" || fail "natxd exited with $? on SIGTERM"
	NATXD_PID=
}

# stun_ask - one Binding request from the client namespace with each client; both must learn
# the client's own address (no NAT here).
stun_ask() {
	inC turnutils_stunclient 198.18.79.1 >"$T/tc.out" 2>&1 || fail "turnutils_stunclient: $(cat "$T/tc.out")"
	grep -q "198.18.79.2" "$T/tc.out" || fail "turnutils_stunclient got no mapped address: $(cat "$T/tc.out")"
	inC "$NATX_BIN/natx-stunc" 198.18.79.1:3478 >"$T/sc.out" 2>&1 || fail "natx-stunc: $(cat "$T/sc.out")"
	grep -q "^mapped 198.18.79.2:" "$T/sc.out" || fail "natx-stunc: $(cat "$T/sc.out")"
}

# prom_value NAME_AND_LABELS - the value of one series on /metrics (empty when absent).
prom_value() {
	local http
	http=$(ctl --json status | jq -r .status.http)
	inS curl -sf "http://$http/metrics" >"$T/metrics" || fail "GET /metrics"
	grep -F "$1 " "$T/metrics" | awk '{print $2}'
}

# --- 1. XDP reflector attached by natxd -----------------------------------------------------
start_natxd "$T/natx.conf" NAT_TRAVERSAL_XDP_INTERFACE=s0
ctl --json bpf status >"$T/st.json"
jq -e '.bpf.active == "xdp" and .bpf.accelerated == true and .bpf.mode == "native" and
	.bpf.interface == "s0" and .bpf.prog_id > 0 and .bpf.xdp.attached == true and
	.bpf.xdp.ports == [3478] and .bpf.fallback.running == false and
	.bpf.responder == "xdp"' "$T/st.json" >/dev/null ||
	fail "bpf status (xdp): $(cat "$T/st.json")"
ls "$PIN/s0/link" >/dev/null || fail "link not pinned under $PIN/s0"
stun_ask
ctl --json bpf status >"$T/st.json"
A=$(jq .bpf.counters.answered "$T/st.json")
LINK=$(jq .bpf.xdp.link_id "$T/st.json")
[ "$A" -ge 2 ] || fail "answered $A after two requests: $(cat "$T/st.json")"
# natxd's numbers are the kernel's: natx-bpf reads the same pins
[ "$(bpfstat | jq '.[0].counters.answered')" = "$A" ] || fail "natx-bpf disagrees"
ctl bpf status >"$T/st.txt"
grep -q "^XDP reflector: interface s0, mode native, program id [1-9]" "$T/st.txt" ||
	fail "bpf status table: $(cat "$T/st.txt")"
grep -q "answered $A " "$T/st.txt" || fail "bpf status table counters: $(cat "$T/st.txt")"
V=$(prom_value 'natx_bpf_packets_total{prog="stun",interface="s0",result="answered"}')
[ "$V" = "$A" ] || fail "/metrics answered '$V', want $A"
[ "$(prom_value 'natx_stun_responder{state="xdp"}')" = 1 ] || fail "/metrics responder state"
ctl --json metrics | jq -e ".metrics.bpf.counters.answered == $A" >/dev/null ||
	fail "JSON metrics: $(ctl --json metrics)"

# --- 2. restart: pinned state is reused, counters kept --------------------------------------
stop_natxd
[ "$(bpfstat | jq '.[0].attached')" = true ] || fail "reflector detached at stop despite keep_on_exit"
stun_ask # answered by XDP while natxd is down
start_natxd "$T/natx.conf" NAT_TRAVERSAL_XDP_INTERFACE=s0
ctl --json bpf status >"$T/st.json"
jq -e ".bpf.active == \"xdp\" and .bpf.xdp.link_id == $LINK and
	.bpf.counters.answered >= $A + 2" "$T/st.json" >/dev/null ||
	fail "after restart (link $LINK, answered was $A): $(cat "$T/st.json")"
A2=$(jq .bpf.counters.answered "$T/st.json")
stun_ask
ctl --json bpf status | jq -e ".bpf.counters.answered >= $A2 + 2" >/dev/null ||
	fail "counting stopped after restart"

# --- 3. mode off: detached, user-space fallback answers and says so -------------------------
stop_natxd
start_natxd "$T/natx.conf" NAT_TRAVERSAL_XDP_INTERFACE=s0 NAT_TRAVERSAL_XDP_MODE=off
ctl --json bpf status >"$T/st.json"
jq -e '.bpf.active == "fallback" and .bpf.accelerated == false and
	.bpf.mode == "user-space" and .bpf.xdp == null and .bpf.fallback.running == true and
	.bpf.responder == "engine (user space)" and .bpf.fallback.where == "engine" and
	.bpf.fallback.listen == "[::]:3478" and (.bpf.steering.mode | test("^(bpf|kernel)$")) and
	(.bpf.reason | test("mode is off")) and .bpf.counters.answered == 0' "$T/st.json" >/dev/null ||
	fail "bpf status (mode off): $(cat "$T/st.json")"
got=0
bpfstat >/dev/null 2>&1 || got=$?
[ "$got" = 3 ] || fail "reflector still pinned with mode off (natx-bpf status exit $got)"
inS ip -d link show s0 | grep -q "prog/xdp" && fail "an XDP program is still on s0"
stun_ask
ctl --json bpf status >"$T/st.json"
jq -e '.bpf.fallback.counters.answered >= 2 and .bpf.counters.answered >= 2' "$T/st.json" \
	>/dev/null || fail "fallback counters: $(cat "$T/st.json")"
ctl bpf status | grep -q "^engine (user space) STUN responder: xdp.mode is off" ||
	fail "fallback table: $(ctl bpf status)"
ctl --json engine stats | jq -e '.engine.stun.counters.answered >= 2' >/dev/null ||
	fail "engine stats do not show its responder: $(ctl --json engine stats)"
V=$(prom_value 'natx_stun_userspace_packets_total{result="answered"}')
[ "${V:-0}" -ge 2 ] || fail "/metrics fallback answered '$V'"
[ "$(prom_value 'natx_stun_responder{state="fallback"}')" = 1 ] || fail "/metrics fallback state"
grep -q 'natx_bpf_packets_total{prog="stun"' "$T/metrics" && fail "/metrics claims XDP counters in fallback"
stop_natxd

# --- 4. keep_on_exit = false: stop detaches -------------------------------------------------
start_natxd "$T/natx-nokeep.conf" NAT_TRAVERSAL_XDP_INTERFACE=s0
ctl --json bpf status | jq -e '.bpf.active == "xdp" and .bpf.counters.answered == 0' >/dev/null ||
	fail "fresh attach after mode off: $(ctl --json bpf status)"
stun_ask
stop_natxd
got=0
bpfstat >/dev/null 2>&1 || got=$?
[ "$got" = 3 ] || fail "keep_on_exit=false: still pinned (natx-bpf status exit $got)"
inS ip -d link show s0 | grep -q "prog/xdp" && fail "keep_on_exit=false: XDP program still on s0"

# --- 5. reload switches between XDP and the fallback ------------------------------------------
cp "$T/natx.conf" "$T/natx-reload.conf"
start_natxd "$T/natx-reload.conf" NAT_TRAVERSAL_XDP_INTERFACE=s0
ctl --json bpf status | jq -e '.bpf.active == "xdp"' >/dev/null || fail "reload test: not xdp"
printf 'mode = off\n' >>"$T/natx-reload.conf"
ctl reload >/dev/null || fail "reload to mode off"
ctl --json bpf status | jq -e '.bpf.active == "fallback" and .bpf.fallback.running' >/dev/null ||
	fail "after reload to mode off: $(ctl --json bpf status)"
got=0
bpfstat >/dev/null 2>&1 || got=$?
[ "$got" = 3 ] || fail "reload to mode off left the reflector pinned"
stun_ask
sed -i 's/^mode = off$/mode = generic/' "$T/natx-reload.conf"
ctl reload >/dev/null || fail "reload to generic"
ctl --json bpf status | jq -e '.bpf.active == "xdp" and .bpf.mode == "generic" and
	.bpf.fallback.running == false' >/dev/null ||
	fail "after reload to generic: $(ctl --json bpf status)"
ctl --json engine stats | jq -e '.engine.stun == null' >/dev/null ||
	fail "the engine still answers next to XDP: $(ctl --json engine stats)"
stun_ask
ctl --json bpf status | jq -e '.bpf.counters.answered >= 2' >/dev/null || fail "generic answers"
stop_natxd
inS "$NATX_BIN/natx-bpf" detach s0 --pin-root "$PIN" >/dev/null

# --- 5b. a refused mode change keeps the running reflector, and says so -----------------------
# native XDP is refused on lo; generic works. keep_on_exit = false so the stop cleans lo up.
cp "$T/natx-nokeep.conf" "$T/natx-lo.conf"
printf 'mode = generic\n' >>"$T/natx-lo.conf"
start_natxd "$T/natx-lo.conf" NAT_TRAVERSAL_XDP_INTERFACE=lo
ctl --json bpf status | jq -e '.bpf.active == "xdp" and .bpf.mode == "generic"' >/dev/null ||
	fail "generic on lo: $(ctl --json bpf status)"
sed -i 's/^mode = generic$/mode = native/' "$T/natx-lo.conf"
ctl reload >/dev/null || fail "reload to native on lo"
ctl --json bpf status >"$T/st.json"
jq -e '.bpf.active == "xdp" and .bpf.mode == "generic" and .bpf.configured_mode == "native" and
	.bpf.fallback.running == false and
	(.bpf.reason | test("XDP attach on lo \\(native\\) failed.*stays attached in generic mode"))' \
	"$T/st.json" >/dev/null || fail "refused mode change: $(cat "$T/st.json")"
stop_natxd
got=0
inS "$NATX_BIN/natx-bpf" status lo --pin-root "$PIN" >/dev/null 2>&1 || got=$?
[ "$got" = 3 ] || fail "lo still pinned after keep_on_exit=false stop"

# --- 6. without privilege: the fallback, and the reason --------------------------------------
U=$(mktemp -d /tmp/natx-bpfc-u.XXXXXX)
chmod 755 "$U"
mkdir "$U/d" && chown nobody "$U/d"
sed -e "s|^socket = .*|socket = $U/d/ctl.sock|" -e "s|^state_dir = .*|state_dir = $U/d/state|" \
	"$T/natx.conf" >"$U/natx.conf"
chmod 644 "$U/natx.conf"
SOCK_ROOT=$SOCK
SOCK=$U/d/ctl.sock
env NAT_TRAVERSAL_XDP_INTERFACE=s0 NAT_TRAVERSAL_STUN_PORT=34780 \
	nsenter --net=/run/netns/$S setpriv --reuid=nobody --regid=nogroup --clear-groups \
	--inh-caps=-all "$NATX_BIN/natxd" --config "$U/natx.conf" >>"$T/natxd.log" 2>&1 &
NATXD_PID=$!
for _ in $(seq 1 100); do
	ctl bpf status >/dev/null 2>&1 && break
	sleep 0.05
done
ctl --json bpf status >"$T/st.json" || fail "unprivileged natxd did not answer"
jq -e '.bpf.active == "fallback" and .bpf.accelerated == false and
	(.bpf.reason | test("XDP attach on s0 \\(native\\) failed"))' "$T/st.json" >/dev/null ||
	fail "unprivileged status: $(cat "$T/st.json")"
inC "$NATX_BIN/natx-stunc" 198.18.79.1:34780 | grep -q "^mapped 198.18.79.2:" ||
	fail "unprivileged fallback did not answer"
stop_natxd
SOCK=$SOCK_ROOT
rm -rf "$U"

# --- 7. bad value: exit 2, the variable named --------------------------------------------------
got=0
NAT_TRAVERSAL_XDP_MODE=turbo "$NATX_BIN/natxd" --config "$T/natx.conf" >"$T/bad.out" 2>&1 || got=$?
[ "$got" = 2 ] || fail "bad NAT_TRAVERSAL_XDP_MODE: exit $got"
grep -q "environment NAT_TRAVERSAL_XDP_MODE='turbo'" "$T/bad.out" || fail "bad mode message: $(cat "$T/bad.out")"

echo "PASS: control_bpf"
