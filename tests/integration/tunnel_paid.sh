#!/usr/bin/env bash
# A tunnel bought with L402 runs in the engine (loopback): natxd on the relay sells it at
# POST /api/rathole/proxy/register (regtest backend: no real money), and pushes the paid
# registration to its engine as service "paid-PORT" keyed with the invoice preimage; a bare
# natx-engine as the node authenticates with the bought macaroon (credential kind 2) and the
# preimage; a visitor reaches the node's echo on the public port; `natxctl tunnel ls` shows
# the paid service; revoking the token removes it and closes the port.
. "$(dirname "$0")/control_lib.sh"
ENGINE=$NATX_BIN/natx-engine
[ -x "$ENGINE" ] || { echo "skip: natx-engine is not built"; exit 77; }
for t in curl jq python3 base64; do
	command -v $t >/dev/null || { echo "skip: $t missing"; exit 77; }
done

read -r P_SRV P_PUB P_ECHO <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"

python3 - "$P_ECHO" <<'EOF' &
import socket, sys, threading
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(64)
def h(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = l.accept()
    threading.Thread(target=h, args=(c,), daemon=True).start()
EOF
PIDS+=("$!")

echo_ok() { # PORT
	python3 - "$1" <<'EOF'
import os, socket, sys
data = os.urandom(65536)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(data); s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
sys.exit(0 if got == data else 1)
EOF
}

# ectl SOCK JSON - one request to a bare engine's control socket.
ectl() {
	python3 - "$1" "$2" <<'EOF'
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

cat >"$T/relay.conf" <<EOF
[nat_traversal]
enable_rathole = true
[rathole]
server_address = 127.0.0.1:$P_SRV
public_host = 127.0.0.1
port_min = $P_PUB
port_max = $P_PUB
quota_mib = 64
token_duration_s = 3600
[tunnel]
heartbeat_interval = 1
heartbeat_timeout = 3
EOF
SERVER_ADDRESS=127.0.0.1:0 start_natxd --config "$T/relay.conf"
H=http://$(http_addr)
REG=/api/rathole/proxy/register

# buy: 402 with a macaroon and an invoice, settle it (regtest), register with the credential
code=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary '{"service_type":"tcp","node_id":"node-1","local_addr":"127.0.0.1:1"}' "$H$REG")
[ "$code" = 402 ] || fail "offer: HTTP $code $(cat "$T/body")"
MAC=$(jq -r .macaroon "$T/body")
HASH=$(jq -r .payment_hash "$T/body")
ctl --json invoice settle "$HASH" >"$T/settle" || fail "settle: $(cat "$T/settle")"
PRE=$(jq -r .preimage "$T/settle")
code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
	-H "Authorization: L402 $MAC:$PRE" \
	--data-binary '{"service_type":"tcp","node_id":"node-1","local_addr":"127.0.0.1:1"}' "$H$REG")
[ "$code" = 200 ] || fail "register: HTTP $code $(cat "$T/body")"
PORT=$(jq -r .public_port "$T/body")
[ "$PORT" = "$P_PUB" ] || fail "public port $PORT"
TOKEN_ID=$(jq -r .token_id "$T/body")

# the relay's engine runs it
svc_state() {
	ctl --json tunnel ls | jq -r --arg n "paid-$PORT" '.services[] | select(.name == $n) | .state'
}
for _ in $(seq 1 100); do
	[ "$(svc_state)" = down ] && break
	sleep 0.1
done
[ "$(svc_state)" = down ] || fail "paid service not pushed: $(ctl --json tunnel ls)"
ctl --json tunnel ls | jq -e --arg n "paid-$PORT" \
	'.services[] | select(.name == $n) | .source == "paid" and .l402.max_bytes == 67108864' \
	>/dev/null || fail "paid service in ls: $(ctl --json tunnel ls)"

# the node: a bare engine with the bought macaroon and preimage
"$ENGINE" --shards 1 --ctl "$T/node.sock" >"$T/node.log" 2>&1 &
NODE=$!
PIDS+=("$NODE")
for _ in $(seq 1 100); do [ -S "$T/node.sock" ] && break; sleep 0.05; done
MAC_HEX=$(printf '%s' "$MAC" | base64 -d | od -An -tx1 | tr -d ' \n')
ectl "$T/node.sock" "{\"cmd\":\"tunnel.client\",\"server\":\"127.0.0.1:$P_SRV\"}" >/dev/null
r=$(ectl "$T/node.sock" "{\"cmd\":\"tunnel.add\",\"role\":\"client\",\"name\":\"paid-$PORT\",\"type\":\"tcp\",\"key_hex\":\"$PRE\",\"macaroon_hex\":\"$MAC_HEX\",\"local\":\"127.0.0.1:$P_ECHO\"}")
jq -e .ok <<<"$r" >/dev/null || fail "node tunnel.add: $r"
for _ in $(seq 1 100); do
	[ "$(svc_state)" = up ] && break
	sleep 0.1
done
[ "$(svc_state)" = up ] || fail "paid service never came up: $(tail -n 5 "$T/node.log")"
for _ in $(seq 1 50); do
	echo_ok "$PORT" && break
	sleep 0.1
done
echo_ok "$PORT" || fail "echo through the paid tunnel"

# revoking the token removes the service and closes the port
ctl token revoke "$TOKEN_ID" >/dev/null || fail "token revoke"
for _ in $(seq 1 50); do
	[ -z "$(svc_state)" ] && break
	sleep 0.1
done
[ -z "$(svc_state)" ] || fail "revoked paid service still listed"
! echo_ok "$PORT" 2>/dev/null || fail "revoked tunnel still answers"
grep -q "paid tunnel paid-$PORT removed: registration .* is revoked" "$T/natxd.log" ||
	fail "no log line for the removal"
echo "tunnel_paid: ok"
