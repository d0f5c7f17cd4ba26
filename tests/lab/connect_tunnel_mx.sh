#!/usr/bin/env bash
# Tests of failure of issue 9 that need no NAT (loopback): the fallback to the paid tunnel and
# the refusals of `natxctl connect --local`.
# natxd A runs with NAT_TRAVERSAL_ENABLE_LIBP2P=false and the tunnel service on (regtest
# payments: no real money). node-1's tunnel registration is bought over L402 (402 -> settle ->
# register) and a bare natx-engine plays node-1's tunnel client in front of a sink server.
#  (c) libp2p off: `connect node-1 --service sink --local 127.0.0.1:PORT` picks the tunnel
#      (path tunnel, the reason says why libp2p was passed over), 16 MiB through the local port
#      arrive intact (byte count and SHA-256 checked by the sink); closing the connection
#      removes its forward and frees the port; the engine has no flow left open;
#  (d) the same connect with --no-paid: refused (exit 11) with "payment required" in the
#      message, within a bounded time;
#  (e) an unknown node: refused (exit 14) with "node not found".
# Each refusal leaves nothing behind: same connections and forwards as before, the requested
# port not listening, no process but the ones the test started.
set -uo pipefail
: "${NATX_BIN:?}" "${NATX_SRC:?}"
ENGINE=$NATX_BIN/natx-engine
for t in curl jq python3 base64 od; do
	command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
XFER=$NATX_SRC/tests/lab/mx_xfer.py
T=$(mktemp -d /tmp/mx-tun.XXXXXX)
SOCK=$T/ctl.sock
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		pkill -TERM -P "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	tail -n 20 "$T/natxd.log" 2>/dev/null | sed 's/^/    natxd: /'
	tail -n 5 "$T/node.log" 2>/dev/null | sed 's/^/    node engine: /'
	exit 1
}

ctl() { timeout 60 "$NATX_BIN/natxctl" --socket "$SOCK" "$@"; }

# free ports: the tunnel server, node-1's public port, A's local port, a probe port
read -r P_SRV P_PUB P_LOCAL P_OTHER <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"

python3 "$XFER" sink-server >"$T/sink.port" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/sink.port" ] && break; sleep 0.1; done
SINK=$(cat "$T/sink.port")
[ -n "$SINK" ] || fail "sink server"

cat >"$T/natx.conf" <<EOF
[nat_traversal]
enable_rathole = true
enable_libp2p = false
[rathole]
server_address = 127.0.0.1:$P_SRV
public_host = 127.0.0.1
port_min = $P_PUB
port_max = $P_PUB
quota_mib = 256
token_duration_s = 3600
[tunnel]
heartbeat_interval = 1
heartbeat_timeout = 3
EOF
env XDG_RUNTIME_DIR="$T/xdg" XDG_STATE_HOME="$T/xs" NAT_TRAVERSAL_ENABLE_LIBP2P=false \
	SERVER_ADDRESS=127.0.0.1:0 "$NATX_BIN/natxd" --socket "$SOCK" --state-dir "$T/state" \
	--config "$T/natx.conf" >>"$T/natxd.log" 2>&1 &
NATXD=$!
PIDS+=("$NATXD")
for _ in $(seq 1 100); do ctl version >/dev/null 2>&1 && break; sleep 0.05; done
ctl version >/dev/null 2>&1 || fail "natxd did not come up"
H=http://$(ctl --json status | jq -r .status.http)
ctl --json services | jq -e '[.services[] | select(.type == "libp2p")] | length == 0' >/dev/null ||
	fail "libp2p is not off: $(ctl --json services | jq -c .)"

# buy node-1's tunnel: 402 with a macaroon and an invoice, settle it (regtest), register
REQ='{"service_type":"tcp","node_id":"node-1","local_addr":"127.0.0.1:1"}'
code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$REQ" \
	"$H/api/rathole/proxy/register")
[ "$code" = 402 ] || fail "offer: HTTP $code $(cat "$T/body")"
MAC=$(jq -r .macaroon "$T/body")
ctl --json invoice settle "$(jq -r .payment_hash "$T/body")" >"$T/settle" || fail "settle: $(cat "$T/settle")"
PRE=$(jq -r .preimage "$T/settle")
code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
	-H "Authorization: L402 $MAC:$PRE" --data-binary "$REQ" "$H/api/rathole/proxy/register")
[ "$code" = 200 ] || fail "register: HTTP $code $(cat "$T/body")"
[ "$(jq -r .public_port "$T/body")" = "$P_PUB" ] || fail "public port: $(cat "$T/body")"

# node-1: a bare engine as its tunnel client, in front of the sink
"$ENGINE" --shards 1 --ctl "$T/node.sock" >"$T/node.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -S "$T/node.sock" ] && break; sleep 0.05; done
ectl() {
	python3 - "$T/node.sock" "$1" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
req = json.loads(sys.argv[2]); req.update(v=1, id=1)
s.sendall((json.dumps(req) + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode().strip())
EOF
}
MAC_HEX=$(printf '%s' "$MAC" | base64 -d | od -An -tx1 | tr -d ' \n')
ectl "{\"cmd\":\"tunnel.client\",\"server\":\"127.0.0.1:$P_SRV\"}" >/dev/null
r=$(ectl "{\"cmd\":\"tunnel.add\",\"role\":\"client\",\"name\":\"paid-$P_PUB\",\"type\":\"tcp\",\"key_hex\":\"$PRE\",\"macaroon_hex\":\"$MAC_HEX\",\"local\":\"127.0.0.1:$SINK\"}")
jq -e .ok <<<"$r" >/dev/null || fail "node tunnel.add: $r"
for _ in $(seq 1 100); do
	ctl --json tunnel ls | jq -e --arg n "paid-$P_PUB" '.services[] | select(.name == $n) | .state == "up"' \
		>/dev/null 2>&1 && break
	sleep 0.1
done
ctl --json tunnel ls | jq -e --arg n "paid-$P_PUB" '.services[] | select(.name == $n) | .state == "up"' \
	>/dev/null || fail "node-1's paid tunnel never came up"

# snapshot - connections and forwards now (refusals must not change them)
snapshot() {
	echo "$(ctl --json connections | jq -c '[.connections[].id]') $(ctl --json forward list | jq -c '[.forwards[].spec]')"
}
# not_listening PORT
not_listening() {
	python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=1)" "$1" \
		2>/dev/null && fail "port $1 accepts connections after a refused connect"
	return 0
}

# ---- (c) libp2p off: the tunnel is chosen and carries the flow ------------------------------
ctl --json connect node-1 --service sink --local "127.0.0.1:$P_LOCAL" >"$T/c.json" 2>&1 ||
	fail "(c) connect: $(cat "$T/c.json")"
jq -e --arg pub "127.0.0.1:$P_PUB" '.connection.path == "tunnel" and .connection.type == "rathole" and
	.connection.via == $pub and (.connection.reason | test("libp2p: disabled")) and
	(.connection.reason | test("rathole: chosen"))' "$T/c.json" >/dev/null ||
	fail "(c) connect reply: $(cat "$T/c.json")"
CID=$(jq -r .connection.id "$T/c.json")
ctl --json forward list | jq -e --arg p "127.0.0.1:$P_LOCAL=" '[.forwards[] | select(.spec | contains($p))] | length == 1' \
	>/dev/null || fail "(c) no engine forward for the connection: $(ctl --json forward list)"
ctl connections | grep -q "tunnel" || fail "(c) connections table does not show the tunnel"
timeout 120 python3 "$XFER" send "$P_LOCAL" $((16 * 1024 * 1024)) 100 >"$T/x" 2>&1 ||
	fail "(c) 16 MiB through the tunnel: $(cat "$T/x")"
echo "ok: (c) libp2p off -> tunnel ($(jq -r .connection.reason "$T/c.json")); 16 MiB intact ($(cut -d' ' -f4 "$T/x") MiB/s)"

# ---- (d) the tunnel needs payment and --no-paid forbids it ----------------------------------
before=$(snapshot)
start=$SECONDS
ctl connect node-1 --no-paid --service sink --local "127.0.0.1:$P_OTHER" >"$T/d" 2>&1
rc=$?
[ $rc = 11 ] || fail "(d) --no-paid: exit $rc, want 11 (payment_required): $(cat "$T/d")"
grep -qi "payment required" "$T/d" || fail "(d) the error does not say \"payment required\": $(cat "$T/d")"
[ $((SECONDS - start)) -le 10 ] || fail "(d) the refusal took $((SECONDS - start)) s"
[ "$(snapshot)" = "$before" ] || fail "(d) the refusal changed connections/forwards: $before -> $(snapshot)"
not_listening "$P_OTHER"
echo "ok: (d) --no-paid: $(head -c 200 "$T/d")"

# ---- (e) an unknown node --------------------------------------------------------------------
ctl connect node-nobody --service sink --local "127.0.0.1:$P_OTHER" >"$T/e" 2>&1
rc=$?
[ $rc = 14 ] || fail "(e) unknown node: exit $rc, want 14 (node_not_found): $(cat "$T/e")"
grep -qi "node not found" "$T/e" || fail "(e) the error does not say \"node not found\": $(cat "$T/e")"
[ "$(snapshot)" = "$before" ] || fail "(e) the refusal changed connections/forwards"
not_listening "$P_OTHER"
echo "ok: (e) unknown node: $(head -c 200 "$T/e")"

# ---- nothing leaks ----------------------------------------------------------------------------
ctl connections close "$CID" >/dev/null || fail "connections close"
ctl --json connections | jq -e '.connections | length == 0' >/dev/null || fail "connection still listed"
ctl --json forward list | jq -e --arg p "127.0.0.1:$P_LOCAL=" '[.forwards[] | select(.spec | contains($p))] | length == 0' \
	>/dev/null || fail "the tunnel connection's forward is still there: $(ctl --json forward list)"
not_listening "$P_LOCAL"
for _ in $(seq 1 50); do
	ctl --json engine stats | jq -e '.engine.total.flows_open == 0' >/dev/null && break
	sleep 0.1
done
ctl --json engine stats | jq -e '.engine.total.flows_open == 0 and .engine.restarts == 0' >/dev/null ||
	fail "engine flows left open: $(ctl --json engine stats | jq -c '.engine.total')"
kids=$(pgrep -P "$NATXD" | xargs -r -n1 sh -c 'cat /proc/$0/comm' | grep -v -x natx-engine | tr '\n' ' ')
[ -z "$kids" ] || fail "natxd has children besides its engine: $kids"
echo "PASS: tunnel fallback with libp2p off, --no-paid refused, unknown node refused; nothing leaks"
