#!/usr/bin/env bash
# natxd end to end for the tunnel's encrypted transport (loopback), relay and node natxd each
# supervising its own natx-engine:
#  - [tunnel] transport = noise on the relay: natxd creates its static key file (mode 0600) in
#    the state dir, `natxctl tunnel ls` prints the public key (human and --json);
#  - a node service pinned to that key (base64, from the services file) echoes; a run-time
#    `tunnel add --client --noise-pubkey HEX` service echoes too;
#  - a node service pinned to another key stays down and counts noise_failures;
#  - the relay restarted keeps its key (same file, same public key) and the node comes back;
#  - a key file readable by others is refused with a log line (no tunnel server).
. "$(dirname "$0")/../integration/control_lib.sh"
ENGINE=$NATX_BIN/natx-engine
[ -x "$ENGINE" ] || { echo "skip: natx-engine is not built"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }
command -v jq >/dev/null || { echo "skip: jq missing"; exit 77; }

read -r P_SRV P_ECHO P_PUB P_EXTRA P_BAD <<<"$(python3 - <<'EOF'
import socket
socks = []
for _ in range(5):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"

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

echo_ok() {
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
echo_wait() { # PORT WHAT
	for _ in $(seq 1 80); do
		echo_ok "$1" && return 0
		sleep 0.1
	done
	fail "$2"
}

TOKEN=tn-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$T/relay/state" "$T/node/state"
cat >"$T/relay.conf" <<EOF
[server]
address = off
[nat_traversal]
enable_rathole = true
[rathole]
server_address = 127.0.0.1:$P_SRV
[tunnel]
heartbeat_interval = 1
heartbeat_timeout = 3
transport = noise
[tunnel.echo]
type = tcp
token = $TOKEN
bind = 127.0.0.1:$P_PUB
[tunnel.wrong]
type = tcp
token = $TOKEN
bind = 127.0.0.1:$P_BAD
EOF
cat >"$T/node.conf" <<EOF
[server]
address = off
[rathole]
client_address = 127.0.0.1:$P_SRV
EOF

SOCK_RELAY=$T/relay/ctl.sock
SOCK_NODE=$T/node/ctl.sock
rctl() { "$NATXCTL" --socket "$SOCK_RELAY" "$@"; }
nctl() { "$NATXCTL" --socket "$SOCK_NODE" "$@"; }
KEYFILE=$T/relay/state/tunnel_noise.key

start_relay() {
	"$NATXD" --config "$T/relay.conf" --socket "$SOCK_RELAY" --state-dir "$T/relay/state" \
		>>"$T/natxd.log" 2>&1 &
	RELAY=$!
	PIDS+=("$RELAY")
}
start_node() {
	RATHOLE_CONFIG_FILE_NAME=$T/node-services.conf "$NATXD" --config "$T/node.conf" \
		--socket "$SOCK_NODE" --state-dir "$T/node/state" >>"$T/node.log" 2>&1 &
	NODE=$!
	PIDS+=("$NODE")
}
server_pub() {
	"$NATXCTL" --socket "$SOCK_RELAY" --json tunnel ls 2>/dev/null |
		jq -r '.server.noise_pubkey // empty' || true
}
svc_field() { # SOCK NAME ROLE FIELD
	"$NATXCTL" --socket "$1" --json tunnel ls 2>/dev/null |
		jq -r --arg n "$2" --arg r "$3" --arg f "$4" \
			'.services[] | select(.name == $n and .role == $r) | .[$f]' || true
}
wait_field() { # SOCK NAME ROLE FIELD WANT
	for _ in $(seq 1 150); do
		[ "$(svc_field "$1" "$2" "$3" "$4")" = "$5" ] && return 0
		sleep 0.1
	done
	fail "$2 ($3): $4 never became $5 (now '$(svc_field "$1" "$2" "$3" "$4")')"
}

start_relay
for _ in $(seq 1 100); do
	PUB=$(server_pub)
	[ -n "$PUB" ] && break
	sleep 0.1
done
[ -n "$PUB" ] || fail "tunnel ls shows no noise_pubkey"
[ -f "$KEYFILE" ] || fail "no key file $KEYFILE"
[ "$(stat -c %a "$KEYFILE")" = 600 ] || fail "key file mode $(stat -c %a "$KEYFILE")"
KEYSUM=$(sha256sum "$KEYFILE" | cut -d' ' -f1)
! grep -q "$(cat "$KEYFILE")" "$T/natxd.log" || fail "the private key is in the log"
rctl tunnel ls >"$T/ls.txt" || fail "tunnel ls (human)"
grep -q "transport noise, noise public key $PUB" "$T/ls.txt" || fail "ls: $(head -3 "$T/ls.txt")"
! grep -qF "$(cat "$KEYFILE")" "$T/ls.txt" || fail "tunnel ls shows the private key"
grep -q "Noise public key $PUB" "$T/natxd.log" || fail "no log line with the public key"

B64=$(python3 -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$PUB")
WRONG=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$T/node-services.conf" <<EOF
[tunnel]
backoff_cap_ms = 500
[tunnel.echo]
type = tcp
token = $TOKEN
local = 127.0.0.1:$P_ECHO
server_pubkey = $B64
[tunnel.wrong]
type = tcp
token = $TOKEN
local = 127.0.0.1:$P_ECHO
server_pubkey = $WRONG
EOF
start_node
wait_field "$SOCK_RELAY" echo server state up
wait_field "$SOCK_NODE" echo client transport noise
echo_wait "$P_PUB" "echo through the encrypted config service"

# a run-time service pinned with --noise-pubkey
rctl tunnel add extra tcp "127.0.0.1:$P_EXTRA" "$TOKEN-2" >/dev/null || fail "tunnel add (relay)"
nctl tunnel add extra tcp "127.0.0.1:$P_ECHO" "$TOKEN-2" --client --noise-pubkey "$PUB" \
	>/dev/null || fail "tunnel add --client --noise-pubkey"
nctl tunnel add bad tcp "127.0.0.1:$P_ECHO" "$TOKEN" --client --noise-pubkey "zz" >/dev/null 2>&1 &&
	fail "a malformed --noise-pubkey was accepted"
wait_field "$SOCK_RELAY" extra server state up
echo_wait "$P_EXTRA" "echo through the run-time encrypted service"

# the service pinned to another key: down, counted
for _ in $(seq 1 100); do
	n=$(svc_field "$SOCK_NODE" wrong client noise_failures)
	[ "${n:-0}" -ge 2 ] && break
	sleep 0.1
done
[ "${n:-0}" -ge 2 ] || fail "wrong-key service: noise_failures '$n'"
[ "$(svc_field "$SOCK_NODE" wrong client state)" = down ] || fail "wrong-key client up"
[ "$(svc_field "$SOCK_RELAY" wrong server state)" = down ] || fail "wrong-key server up"
[ "$(rctl --json tunnel ls | jq -r '.server.noise_key_refused')" -ge 2 ] ||
	fail "relay noise_key_refused"

# restart the relay: same key, the node reconnects by itself
kill -TERM "$RELAY"
wait "$RELAY" 2>/dev/null || true
start_relay
wait_field "$SOCK_RELAY" echo server state up
[ "$(server_pub)" = "$PUB" ] || fail "public key changed across a restart"
[ "$(sha256sum "$KEYFILE" | cut -d' ' -f1)" = "$KEYSUM" ] || fail "key file rewritten"
echo_wait "$P_PUB" "echo after the relay restart"

# a key file readable by others is refused
kill -TERM "$RELAY"
wait "$RELAY" 2>/dev/null || true
chmod 644 "$KEYFILE"
start_relay
for _ in $(seq 1 100); do
	grep -q "tunnel_noise.key: mode 644, must not be readable by group or others" \
		"$T/natxd.log" && break
	sleep 0.1
done
grep -q "tunnel_noise.key: mode 644, must not be readable by group or others" "$T/natxd.log" ||
	fail "no refusal of a group/other-readable key file"
[ -z "$(server_pub)" ] || fail "a tunnel server runs with a world-readable key"
echo "ok"
