#!/usr/bin/env bash
# libp2p on natx-engine's shards, driven through natxd, against js-libp2p 3.x on loopback:
#  - natxd creates its Ed25519 identity (mode 0600) and keeps it across restarts (same peer ID)
#  - `natxctl peer` (--json: peer_id, listen_addrs) with NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR port 0
#  - js dials the engine: 3 pings + identify (agent natx/<version>, ping and id protocols)
#  - garbage bytes and a forged Noise message 3 close only their connection, are counted
#    (conns_failed, handshake_failed), and js still pings + identifies afterwards
#  - a js dial expecting another peer ID fails its Noise handshake (counted as handshake_failed)
#  - natxctl ping MULTIADDR -n 3 / natxctl identify MULTIADDR against a js listener; a refused
#    port, a wrong /p2p/ ID and a malformed address give their error codes
# Node.js 22 and the js packages come from tests/interop (pinned lock, `npm ci`); exit 77 if
# they cannot be installed.
set -uo pipefail
: "${NATX_BIN:?NATX_BIN must point at build/bin}"
SRC=${NATX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
JS=$SRC/tests/interop
NATXD=$NATX_BIN/natxd
NATXCTL=$NATX_BIN/natxctl
T=$(mktemp -d /tmp/p2pw-wire.XXXXXX)
SOCK=$T/ctl.sock
PIDS=()
export XDG_RUNTIME_DIR=$T/xdg XDG_STATE_HOME=$T/xdgstate
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	tail -n 20 "$T/natxd.log" 2>/dev/null | sed 's/^/    natxd: /'
	exit 1
}
pass() { echo "PASS $*"; }

command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v npm >/dev/null || { echo "SKIP: npm not installed"; exit 77; }
if [ ! -d "$JS/node_modules/libp2p" ] || [ ! -x "$JS/node_modules/.bin/node" ]; then
	echo "installing the pinned js-libp2p packages (npm ci)"
	if ! (cd "$JS" && timeout 240 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1); then
		tail -5 "$T/npm.log"
		echo "SKIP: npm could not install the interop packages"
		exit 77
	fi
fi
NODE=$JS/node_modules/.bin/node
ver=$("$NODE" --version 2>/dev/null | sed 's/^v//; s/\..*//')
[ "${ver:-0}" -ge 22 ] || { echo "SKIP: need Node.js >= 22"; exit 77; }

ctl() { timeout 30 "$NATXCTL" --socket "$SOCK" "$@"; }
start_natxd() {
	NAT_TRAVERSAL_ENABLE_LIBP2P=true NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 \
		"$NATXD" --socket "$SOCK" --state-dir "$T/state" --listen off >>"$T/natxd.log" 2>&1 &
	NATXD_PID=$!
	PIDS+=("$NATXD_PID")
	for _ in $(seq 1 100); do
		ctl --json peer >"$T/peer.json" 2>/dev/null && return 0
		kill -0 "$NATXD_PID" 2>/dev/null || fail "natxd exited at start"
		sleep 0.1
	done
	fail "natxctl peer never answered"
}
stop_natxd() {
	kill "$NATXD_PID"
	wait "$NATXD_PID" 2>/dev/null
}
counter() { ctl --json peer | jq -r ".counters.$1"; }
# wait_counter NAME MIN: bounded wait until the engine counter reaches MIN
wait_counter() {
	for _ in $(seq 1 50); do
		[ "$(counter "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# 1. identity and listen address
start_natxd
PEER=$(jq -r .peer_id "$T/peer.json")
LADDR=$(jq -r '.listen_addrs[0]' "$T/peer.json")
case "$PEER" in 12D3KooW*) ;; *) fail "peer_id '$PEER'" ;; esac
case "$LADDR" in /ip4/127.0.0.1/tcp/[1-9]*) ;; *) fail "listen_addrs '$LADDR'" ;; esac
KEY=$T/state/libp2p.key
[ "$(stat -c %a "$KEY")" = 600 ] || fail "key mode $(stat -c %a "$KEY")"
[ "$(stat -c %s "$KEY")" = 68 ] || fail "key size $(stat -c %s "$KEY")"
ctl peer | grep -q "^peer_id *$PEER" || fail "text output of natxctl peer"
pass "identity $PEER on $LADDR (key 0600)"
ADDR=$LADDR/p2p/$PEER

# 2. js dials the engine: ping + identify
"$NODE" "$JS/wire.mjs" dial "$ADDR" 3 >"$T/js1.out" 2>&1 || { cat "$T/js1.out"; fail "js dial"; }
jq -e 'select(.event=="result") | .ok and (.rtts|length==3) and (.identify.agent|startswith("natx/"))' \
	"$T/js1.out" >/dev/null || { cat "$T/js1.out"; fail "js result"; }
jq -e --arg a "$LADDR" 'select(.event=="result") | .identify.addrs | index($a) != null' "$T/js1.out" \
	>/dev/null || { cat "$T/js1.out"; fail "identify listen addrs"; }
wait_counter pings_served 3 || fail "pings_served $(counter pings_served) < 3"
pass "js pinged (3) and identified natx ($(jq -r 'select(.event=="result") | .identify.agent' "$T/js1.out"))"

# 3. bad input: garbage, then a forged Noise message 3; each closes only its connection
PORT=${LADDR##*/tcp/}
failed0=$(counter conns_failed)
hs0=$(counter handshake_failed)
python3 - "$PORT" <<'PY' || fail "garbage connection"
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(os.urandom(4096))
s.settimeout(5)
try:
    while s.recv(65536):
        pass
except ConnectionResetError:
    pass
PY
python3 - "$PORT" <<'PY' || fail "forged Noise connection"
import os, socket, struct, sys
def lp(b):  # multistream varint-prefixed line
    return bytes([len(b)]) + b
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(lp(b"/multistream/1.0.0\n") + lp(b"/noise\n"))
# Noise XX message 1: a 32-byte ephemeral key, empty payload
s.sendall(struct.pack(">H", 32) + os.urandom(32))
buf = b""
want = len(lp(b"/multistream/1.0.0\n") + lp(b"/noise\n"))
while len(buf) < want + 2:
    buf += s.recv(65536)
n = struct.unpack(">H", buf[want:want + 2])[0]
while len(buf) < want + 2 + n:
    buf += s.recv(65536)
assert n > 32 + 48, "message 2 too short: %d" % n
# message 3 with a wrong MAC: natx must drop the connection
s.sendall(struct.pack(">H", 120) + os.urandom(120))
s.settimeout(5)
try:
    while s.recv(65536):
        pass
except ConnectionResetError:
    pass
PY
wait_counter conns_failed $((failed0 + 2)) || fail "conns_failed $(counter conns_failed), want $((failed0 + 2))"
wait_counter handshake_failed $((hs0 + 2)) || fail "handshake_failed $(counter handshake_failed)"
"$NODE" "$JS/wire.mjs" noise-fail "$ADDR" >"$T/js2.out" 2>&1 || { cat "$T/js2.out"; fail "wrong peer ID accepted"; }
wait_counter handshake_failed $((hs0 + 3)) || fail "handshake_failed after js wrong-ID dial"
"$NODE" "$JS/wire.mjs" dial "$ADDR" 2 >"$T/js3.out" 2>&1 || { cat "$T/js3.out"; fail "js dial after bad input"; }
kill -0 "$NATXD_PID" || fail "natxd died"
[ "$(counter conns_open)" -le 1 ] || fail "connections left open: $(counter conns_open)"
pass "garbage + forged Noise + wrong peer ID: counted ($(counter conns_failed) failed, $(counter handshake_failed) handshakes failed), js still served"

# 4. natx dials js: natxctl ping / identify
"$NODE" "$JS/peer.mjs" listen >"$T/jsl.out" 2>"$T/jsl.err" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '"listening"' "$T/jsl.out" && break; sleep 0.1; done
JADDR=$(jq -r 'select(.event=="listening") | .addrs[0]' "$T/jsl.out")
JPEER=$(jq -r 'select(.event=="listening") | .peer' "$T/jsl.out")
[ -n "$JADDR" ] || fail "js listener did not start"
ctl --json ping "$JADDR" -n 3 >"$T/ping.json" || { cat "$T/ping.json"; fail "natxctl ping"; }
jq -e --arg p "$JPEER" '.peer_id == $p and (.rtt_ms | length == 3) and all(.rtt_ms[]; . >= 0)' \
	"$T/ping.json" >/dev/null || { cat "$T/ping.json"; fail "ping reply"; }
ctl ping "$JADDR" | grep -q '^rtt_ms:' || fail "ping text output"
ctl --json identify "$JADDR" >"$T/id.json" || { cat "$T/id.json"; fail "natxctl identify"; }
jq -e --arg p "$JPEER" '.peer_id == $p and (.agent_version | startswith("js-libp2p/")) and
	(.protocols | index("/ipfs/ping/1.0.0") != null) and (.listen_addrs | length >= 1)' \
	"$T/id.json" >/dev/null || { cat "$T/id.json"; fail "identify reply"; }
# the js side saw natx's identify on those connections
grep -q '"agent":"natx/' "$T/jsl.out" || fail "js did not identify natx"
pass "natxctl ping -n 3 ($(jq -c .rtt_ms "$T/ping.json") ms) and identify ($(jq -r .agent_version "$T/id.json"))"

# errors: refused port, wrong peer ID, malformed address
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' >"$T/freeport"
ctl ping "/ip4/127.0.0.1/tcp/$(cat "$T/freeport")" >/dev/null 2>"$T/e1"; rc=$?
[ $rc = 12 ] && grep -q connection_failed "$T/e1" || { cat "$T/e1"; fail "refused port: rc $rc"; }
# (a wrong ID is tried against our own listener: js rate-limits inbound connections per host
# and may reset a burst of dials, which would test js rather than the peer-ID check)
ctl ping "$LADDR/p2p/$JPEER" >/dev/null 2>"$T/e2"; rc=$?
[ $rc = 13 ] && grep -q authentication_failed "$T/e2" || { cat "$T/e2"; fail "wrong peer ID: rc $rc"; }
ctl ping "not-a-multiaddr" >/dev/null 2>"$T/e3"; rc=$?
[ $rc = 4 ] || { cat "$T/e3"; fail "bad address: rc $rc"; }
[ "$(counter dials_failed)" -ge 1 ] || fail "dials_failed not counted"
pass "refused (rc 12), wrong /p2p/ ID (rc 13), malformed address (rc 4)"

# 5. the libp2p adapter: registered as the free direct TCP service, connect through it
ctl --json services >"$T/svc.json" || fail "natxctl services"
jq -e '.services | map(select(.type=="libp2p")) | length == 1 and .[0].capabilities.direct and
	.[0].capabilities.tcp and (.[0].capabilities.paid | not) and .[0].operational' "$T/svc.json" \
	>/dev/null || { cat "$T/svc.json"; fail "libp2p service"; }
jq -e '.services[] | select(.type=="libp2p") | .detail | test("conns in [1-9]")' "$T/svc.json" \
	>/dev/null || { cat "$T/svc.json"; fail "service detail without the engine counters"; }
ctl --json connect "$JADDR" >"$T/conn.json" || { cat "$T/conn.json"; fail "natxctl connect"; }
jq -e --arg a "$JADDR" '.connection_info.traversal_type == "libp2p" and
	.connection_info.public_address == $a' "$T/conn.json" >/dev/null ||
	{ cat "$T/conn.json"; fail "connection info"; }
ctl connect "$LADDR/p2p/$JPEER" >/dev/null 2>"$T/e4"; rc=$?
[ $rc = 13 ] || { cat "$T/e4"; fail "connect to a wrong peer ID: rc $rc"; }
ctl connect "node-without-multiaddr" >/dev/null 2>"$T/e5"; rc=$?
grep -q node_not_found "$T/e5" || { cat "$T/e5"; fail "connect to a bare node id: rc $rc"; }
ctl --json metrics >"$T/m.json"
jq -e '.metrics.services.libp2p.connections_successful >= 1 and
	.metrics.services.libp2p.connections_failed >= 1' "$T/m.json" >/dev/null ||
	{ cat "$T/m.json"; fail "libp2p metrics"; }
pass "libp2p service: connect -> traversal_type libp2p, wrong ID fails (rc $rc), bare id not found"

# 6. the identity survives a restart
stop_natxd
start_natxd
[ "$(jq -r .peer_id "$T/peer.json")" = "$PEER" ] || fail "peer ID changed across restart"
pass "same peer ID after restart"
exit 0
