#!/usr/bin/env bash
# natx-bpf punch commands end to end, in a private network namespace (unshare -n; loopback
# only) under a private pin root: usage errors, punch-attach, the reflector with punch ports
# and a punch rate limit on lo (generic XDP), 10 probes from one source of which exactly
# burst pass and the rest are dropped, the flows XDP learnt reach the sk_lookup program
# (counted no_socket: no session socket registered from a shell), status --json shape,
# punch-detach and its "nothing pinned" exit code.
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root for namespaces and BPF"
: "${NATX_BIN:?}"
command -v jq >/dev/null || skip "jq not installed"
command -v unshare >/dev/null || skip "unshare not installed"
command -v socat >/dev/null || skip "socat not installed"

if [ -z "${NATX_IN_NETNS:-}" ]; then
	NATX_IN_NETNS=1 exec unshare -n "$0" "$@"
fi

B=$NATX_BIN/natx-bpf
PIN=/sys/fs/bpf/natxbpf-cli-$$
P=$((20000 + $$ % 20000))
SOCAT=
cleanup() {
	set +e
	[ -n "$SOCAT" ] && kill "$SOCAT" 2>/dev/null && wait "$SOCAT" 2>/dev/null
	"$B" punch-detach --pin-root "$PIN" >/dev/null 2>&1
	"$B" detach lo --pin-root "$PIN" >/dev/null 2>&1
	rmdir "$PIN" 2>/dev/null
}
trap cleanup EXIT
ip link set lo up

rc=0; "$B" punch-attach --pin-root "$PIN" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "punch-attach without ports: exit $rc, want 2"
rc=0; "$B" punch-attach --punch-ports 6000-5999 --pin-root "$PIN" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "inverted range: exit $rc, want 2"
rc=0; "$B" punch-detach --pin-root "$PIN" 2>/dev/null || rc=$?
[ $rc = 3 ] || fail "punch-detach with nothing pinned: exit $rc, want 3"

"$B" punch-attach --punch-ports "$P" --pin-root "$PIN" || fail "punch-attach"
"$B" attach lo --mode generic --punch-ports "$P" --punch-rate 1 --punch-burst 3 \
	--pin-root "$PIN" 2>/dev/null || fail "attach with punch ports"

# A receiver on the punch port (else every datagram draws an ICMP error, which XDP counts).
socat -u UDP-RECV:"$P",bind=127.0.0.1 /dev/null &
SOCAT=$!
for _ in $(seq 50); do
	grep -q ":$(printf %04X "$P") " /proc/net/udp && break
	sleep 0.05
done
# 10 valid probes from 127.0.0.1, each from a new source port (a new flow).
for _ in $(seq 10); do
	printf '\016NXP\001\001\000\000SESSION1\000\000\000\001' >/dev/udp/127.0.0.1/"$P"
done
# Datagrams without the magic are flow traffic: never charged, never dropped.
for _ in $(seq 5); do printf 'data' >/dev/udp/127.0.0.1/"$P"; done

J=$("$B" status --json --pin-root "$PIN")
echo "$J"
x=$(jq '.[] | select(.program == "stun_reflect")' <<<"$J")
[ "$(jq -c .punch_ports <<<"$x")" = "[$P,$P]" ] || fail "punch_ports"
[ "$(jq .punch_rate <<<"$x")" = 1 ] && [ "$(jq .punch_burst <<<"$x")" = 3 ] ||
	fail "punch rate/burst"
[ "$(jq .counters.punch_passed <<<"$x")" = 3 ] || fail "punch_passed != burst"
[ "$(jq .counters.punch_rate_limited <<<"$x")" = 7 ] || fail "punch_rate_limited != 7"
[ "$(jq .counters.passed <<<"$x")" = 5 ] || fail "flow data not passed"
p=$(jq '.[] | select(.program == "punch_steer")' <<<"$J")
[ "$(jq .attached <<<"$p")" = true ] || fail "punch_steer not attached"
[ "$(jq .flows <<<"$p")" = 3 ] || fail "flows learnt != 3"
[ "$(jq .sessions <<<"$p")" = 0 ] || fail "sessions != 0"
[ "$(jq .counters.no_socket <<<"$p")" = 3 ] || fail "no_socket != 3 (probes reaching lookup)"
[ "$(jq .counters.no_flow <<<"$p")" = 5 ] || fail "no_flow != 5 (data datagrams)"
[ "$(jq .counters.steered <<<"$p")" = 0 ] || fail "steered without a socket"

"$B" punch-detach --pin-root "$PIN" || fail "punch-detach"
J=$("$B" status --json --pin-root "$PIN")
[ "$(jq '[.[] | select(.program == "punch_steer")] | length' <<<"$J")" = 0 ] ||
	fail "punch entry after detach"
"$B" detach lo --pin-root "$PIN" || fail "detach"
echo "PASS"
