#!/usr/bin/env bash
# natxd end to end for the tunnel (loopback): a relay natxd (tunnel server from its config file)
# and a node natxd (tunnel client, services from RATHOLE_CONFIG_FILE_NAME), each supervising its
# own natx-engine:
#  - the config service carries an echo; `natxctl tunnel ls` shows it up with bytes;
#  - `natxctl tunnel add|rm` at run time on both sides; the added services come back when both
#    natxd restart (persisted); rm closes the public port and forgets them;
#  - SIGHUP adds a service on both sides while an open flow of another one keeps working;
#    removing a config service with tunnel rm is refused;
#  - bad tunnel config: exit status 2 with FILE:LINE, nothing started.
. "$(dirname "$0")/control_lib.sh"
ENGINE=$NATX_BIN/natx-engine
[ -x "$ENGINE" ] || { echo "skip: natx-engine is not built"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }

# free_ports N - N currently free loopback TCP ports (bound and released at once).
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r P_SRV P_ECHO P_PUB P_EXTRA P_PUB2 <<<"$(free_ports 5)"

# A TCP echo server (python, one thread per connection), stopped by the trap.
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

# echo_ok PORT - a fresh connection to PORT echoes 64 KiB intact.
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

TOKEN=tdp-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$T/relay" "$T/node"
cat >"$T/relay.conf" <<EOF
[server]
address = off
[nat_traversal]
enable_rathole = true
[rathole]
server_address = 127.0.0.1:$P_SRV
public_host = 127.0.0.1
[tunnel]
heartbeat_interval = 1
heartbeat_timeout = 3
[tunnel.echo]
type = tcp
token = $TOKEN
bind = 127.0.0.1:$P_PUB
EOF
cat >"$T/node-services.conf" <<EOF
[tunnel]
backoff_cap_ms = 500
[tunnel.echo]
type = tcp
token = $TOKEN
local = 127.0.0.1:$P_ECHO
EOF
cat >"$T/node.conf" <<EOF
[server]
address = off
[rathole]
client_address = 127.0.0.1:$P_SRV
EOF

# Bad tunnel configuration: exit 2, FILE:LINE, nothing started.
bad_tunnel() { # CONTENT EXPECTED
	printf '%b' "$1" >"$T/bad.conf"
	got=0
	"$NATXD" --config "$T/bad.conf" --socket "$T/bad.sock" --state-dir "$T/badstate" \
		>"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 2 ] || fail "exit $got for bad tunnel config: $1"
	grep -qF "$T/bad.conf:$2" "$T/err" || fail "message for '$1': $(cat "$T/err")"
	[ ! -e "$T/bad.sock" ] || fail "socket created despite a bad config"
}
bad_tunnel '[tunnel.x]\ntype = sctp\n' "2: [tunnel.x] type = 'sctp': expected tcp or udp"
bad_tunnel '[tunnel]\npending_max = 0\n' "2: [tunnel] pending_max = '0': out of range"
bad_tunnel '[rathole]\nclient_address = 127.0.0.1:1\n\n[tunnel.x]\ntype = tcp\nlocal = 127.0.0.1:2\n' \
	"5: [tunnel.x] needs token"
bad_tunnel '[tunnel.y]\ntype = udp\ntoken = t\nbind = 127.0.0.1:3\n' \
	"2: [tunnel.y] has bind, but the tunnel server is off"
bad_tunnel '[tunnel.bad name]\ntype = tcp\n' "2: [tunnel.bad name] type = 'tcp': service name"

SOCK_RELAY=$T/relay/ctl.sock
SOCK_NODE=$T/node/ctl.sock
rctl() { "$NATXCTL" --socket "$SOCK_RELAY" "$@"; }
nctl() { "$NATXCTL" --socket "$SOCK_NODE" "$@"; }

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
start_relay
start_node
# natxd stops its engine on SIGTERM (the trap); also kill them by pid if natxd died first.
engine_pids() {
	for s in "$SOCK_RELAY" "$SOCK_NODE"; do
		"$NATXCTL" --socket "$s" --json status 2>/dev/null | jq -r '.status.engine.pid // empty'
	done
}

# svc_field SOCK NAME ROLE FIELD - a field of one service in tunnel ls.
svc_field() {
	"$NATXCTL" --socket "$1" --json tunnel ls 2>/dev/null |
		jq -r --arg n "$2" --arg r "$3" --arg f "$4" \
			'.services[] | select(.name == $n and .role == $r) | .[$f]'
}
wait_field() { # SOCK NAME ROLE FIELD WANT
	for _ in $(seq 1 150); do
		[ "$(svc_field "$1" "$2" "$3" "$4")" = "$5" ] && return 0
		sleep 0.1
	done
	fail "$2 ($3): $4 never became $5 (now '$(svc_field "$1" "$2" "$3" "$4")')"
}

wait_field "$SOCK_RELAY" echo server state up
wait_field "$SOCK_NODE" echo client state up
EPIDS=$(engine_pids)
for _ in $(seq 1 50); do
	echo_ok "$P_PUB" && break
	sleep 0.1
done
echo_ok "$P_PUB" || fail "echo through the config service"
[ "$(svc_field "$SOCK_RELAY" echo server source)" = config ] || fail "source of echo"
b=$(svc_field "$SOCK_RELAY" echo server bytes)
[ "$b" -ge 131072 ] || fail "bytes counter $b"
rctl tunnel ls >"$T/ls.txt" || fail "tunnel ls (human)"
grep -q "^echo .*server .*tcp .*up" "$T/ls.txt" || fail "tunnel ls output: $(cat "$T/ls.txt")"
! grep -q "$TOKEN" "$T/ls.txt" || fail "tunnel ls shows the token"
! rctl --json forward list | grep -q "$TOKEN" || fail "forward list shows the token"

# run-time add on both sides, then rm
rctl tunnel add extra tcp "127.0.0.1:$P_EXTRA" "$TOKEN-2" --max-conns 5 --bandwidth-kbps 80000 >/dev/null ||
	fail "tunnel add (relay)"
nctl tunnel add extra tcp "127.0.0.1:$P_ECHO" "$TOKEN-2" --client >/dev/null ||
	fail "tunnel add --client (node)"
wait_field "$SOCK_RELAY" extra server state up
[ "$(svc_field "$SOCK_RELAY" extra server max_conns)" = 5 ] || fail "max_conns of extra"
[ "$(svc_field "$SOCK_RELAY" extra server bandwidth_kbps)" = 80000 ] || fail "bandwidth of extra"
for _ in $(seq 1 50); do
	echo_ok "$P_EXTRA" && break
	sleep 0.1
done
echo_ok "$P_EXTRA" || fail "echo through the run-time service"
# run-time services are persisted: both natxd restart (their engines with them) and the
# service is back and carries bytes again
kill -TERM "$RELAY" "$NODE"
wait "$RELAY" "$NODE" 2>/dev/null || true
start_relay
start_node
wait_field "$SOCK_RELAY" extra server state up
wait_field "$SOCK_NODE" extra client state up
[ "$(svc_field "$SOCK_RELAY" extra server max_conns)" = 5 ] || fail "max_conns of extra after restart"
for _ in $(seq 1 50); do
	echo_ok "$P_EXTRA" && break
	sleep 0.1
done
echo_ok "$P_EXTRA" || fail "echo through the run-time service after natxd restarts"
EPIDS=$(engine_pids)
rctl tunnel add extra tcp "127.0.0.1:$P_EXTRA" x >/dev/null 2>&1 && fail "duplicate tunnel add accepted"
rctl tunnel rm extra >/dev/null || fail "tunnel rm"
nctl tunnel rm extra --client >/dev/null || fail "tunnel rm --client"
[ -z "$(svc_field "$SOCK_RELAY" extra server state)" ] || fail "extra still listed"
! echo_ok "$P_EXTRA" 2>/dev/null || fail "extra still answers after rm"
rctl tunnel rm echo >"$T/err" 2>&1 && fail "tunnel rm of a config service accepted"
grep -q "comes from the configuration" "$T/err" || fail "rm refusal: $(cat "$T/err")"

# SIGHUP: add echo2 on both sides while a flow of echo stays open
exec 7<>/dev/tcp/127.0.0.1/"$P_PUB"
printf 'before\n' >&7
read -r -t 5 line <&7 || fail "open flow before reload"
[ "$line" = before ] || fail "open flow echoed '$line'"
printf '[tunnel.echo2]\ntype = tcp\ntoken = %s-3\nbind = 127.0.0.1:%s\n' "$TOKEN" "$P_PUB2" \
	>>"$T/relay.conf"
printf '[tunnel.echo2]\ntype = tcp\ntoken = %s-3\nlocal = 127.0.0.1:%s\n' "$TOKEN" "$P_ECHO" \
	>>"$T/node-services.conf"
kill -HUP "$RELAY" "$NODE"
wait_field "$SOCK_RELAY" echo2 server state up
for _ in $(seq 1 50); do
	echo_ok "$P_PUB2" && break
	sleep 0.1
done
echo_ok "$P_PUB2" || fail "echo through the service added by SIGHUP"
printf 'after\n' >&7
read -r -t 5 line <&7 || fail "open flow after reload"
[ "$line" = after ] || fail "open flow after reload echoed '$line'"
exec 7>&-
echo_ok "$P_PUB" || fail "echo after reload"

# natxd stops its engine on SIGTERM
kill -TERM "$RELAY" "$NODE"
wait "$RELAY" "$NODE" 2>/dev/null || true
for p in $EPIDS; do
	for _ in $(seq 1 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$p" 2>/dev/null && { kill -9 "$p"; fail "engine $p survived natxd"; }
done
echo "tunnel_natxd: ok"
