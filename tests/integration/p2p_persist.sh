#!/usr/bin/env bash
# p2p expose / forward services survive natxd restarts and engine crashes (loopback only):
#  - natxd A (fixed libp2p port) exposes /p2d/echo/1.0.0 -> a local TCP echo server and a second
#    protocol; natxd B forwards a local port (asked as port 0) to A's echo
#  - B's natxd restarts (SIGTERM, the engine is stopped with it): `p2p ls` lists the forward
#    with the same id and the same bound port, running, and bytes flow through it again
#  - A's engine is killed with SIGKILL: natxd restarts it and pushes both exposes back (same
#    natxd ids, new engine ids); B's forward reaches A again (new libp2p connection)
#  - A's natxd restarts with engine.keep_on_exit: it attaches to the running engine and keeps
#    the services as they run (same engine ids, counters kept); a service natxd does not know
#    (added straight on the engine's control socket meanwhile) is closed
#  - B's engine is killed with SIGKILL: the forward comes back on the same port
#  - the forward's port is held by someone else while B's natxd starts: `p2p ls` shows it
#    "failed" with the reason, and it runs once the port is free (retried every 5 s)
#  - `p2p close` of A's second expose: gone from the list, and still gone after A's natxd
#    restarts; closing an unknown id is not_found (exit 14)
# Every transfer is 1 MB of random bytes echoed end to end with SHA-256 compared.
set -uo pipefail
: "${NATX_BIN:?NATX_BIN must point at build/bin}"
SRC=${NATX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=$SRC/tests/integration/p2p_bridge.py
T=$(mktemp -d /tmp/p2d-persist.XXXXXX)
PIDS=()
declare -A NATXD
cleanup() {
	for n in "${!NATXD[@]}"; do kill "${NATXD[$n]}" 2>/dev/null; done
	for n in "${!NATXD[@]}"; do wait "${NATXD[$n]}" 2>/dev/null; done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	# engines run in their own session: stop the ones still recorded
	for f in "$T"/*/engine.pids; do
		[ -f "$f" ] || continue
		while read -r p; do kill -9 "$p" 2>/dev/null; done <"$f"
	done
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for n in a b; do tail -n 12 "$T/$n/natxd.log" 2>/dev/null | sed "s/^/    natxd $n: /"; done
	exit 1
}
pass() { echo "PASS $*"; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ctl() { local n=$1; shift; timeout 60 "$NATX_BIN/natxctl" --socket "$T/$n/ctl.sock" "$@"; }
engine_field() { ctl "$1" --json status | jq -r ".status.engine.$2"; }

start_natxd() { # NAME LISTEN_MULTIADDR [KEEP_ENGINE]
	mkdir -p "$T/$1"
	cat >"$T/$1/natx.conf" <<CONF
[server]
address = off
[engine]
restart_base_ms = 100
restart_max_ms = 1000
drain_ms = 0
keep_on_exit = ${3:-false}
CONF
	XDG_RUNTIME_DIR=$T/$1/xdg XDG_STATE_HOME=$T/$1/xs NAT_TRAVERSAL_ENABLE_LIBP2P=true \
		NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=$2 \
		"$NATX_BIN/natxd" --config "$T/$1/natx.conf" --socket "$T/$1/ctl.sock" \
		--state-dir "$T/$1/state" --listen off >>"$T/$1/natxd.log" 2>&1 &
	NATXD[$1]=$!
	for _ in $(seq 1 100); do
		if ctl "$1" --json peer >"$T/$1/peer.json" 2>/dev/null; then
			engine_field "$1" pid >>"$T/$1/engine.pids"
			return 0
		fi
		sleep 0.1
	done
	fail "natxd $1 did not come up"
}
stop_natxd() { # NAME
	kill "${NATXD[$1]}" 2>/dev/null
	wait "${NATXD[$1]}" 2>/dev/null
	unset "NATXD[$1]"
}
wait_engine_restart() { # NAME OLD_PID
	local p
	for _ in $(seq 1 100); do
		p=$(engine_field "$1" pid)
		if [ "$(engine_field "$1" state)" = up ] && [ "$p" != "$2" ] && [ "$p" != null ]; then
			echo "$p" >>"$T/$1/engine.pids"
			return 0
		fi
		sleep 0.1
	done
	fail "engine of $1 did not come back: $(ctl "$1" --json status | jq -c .status.engine)"
}
wait_running() { # NAME COUNT - until COUNT services are running
	for _ in $(seq 1 150); do
		ctl "$1" --json p2p ls >"$T/$1/ls.json" 2>/dev/null &&
			[ "$(jq '[.services[] | select(.state == "running")] | length' "$T/$1/ls.json")" = "$2" ] &&
			return 0
		sleep 0.1
	done
	cat "$T/$1/ls.json"
	fail "$1: $2 p2p services not running"
}
echo_1mb() { # PORT WHAT
	timeout 60 python3 "$PY" client "$1" 1000000 1 >"$T/c.out" 2>&1 || { cat "$T/c.out"; fail "$2"; }
}

APORT=$(free_port)
start_natxd a "/ip4/127.0.0.1/tcp/$APORT" true
start_natxd b /ip4/127.0.0.1/tcp/0
A_ADDR=$(jq -r '"/ip4/127.0.0.1/tcp/'"$APORT"'/p2p/" + .peer_id' "$T/a/peer.json")

python3 "$PY" echo-server >"$T/echo.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [ -s "$T/echo.port" ] && break; sleep 0.1; done
EPORT=$(cat "$T/echo.port")

# a service added and closed first: natxd's ids (never reused) and the engine's part ways
# once the engine restarts
ctl a --json p2p expose /p2d/gone/1.0.0 "127.0.0.1:$EPORT" >"$T/e0.json" || { cat "$T/e0.json"; fail "expose 0"; }
ctl a p2p close "$(jq -r .service_id "$T/e0.json")" >/dev/null || fail "close 0"
ctl a --json p2p expose /p2d/echo/1.0.0 "127.0.0.1:$EPORT" >"$T/e1.json" || { cat "$T/e1.json"; fail "expose"; }
ctl a --json p2p expose /p2d/other/1.0.0 "127.0.0.1:$EPORT" >"$T/e2.json" || { cat "$T/e2.json"; fail "expose 2"; }
ctl b --json p2p forward /p2d/echo/1.0.0 127.0.0.1:0 "$A_ADDR" >"$T/f.json" || { cat "$T/f.json"; fail "forward"; }
E1=$(jq -r .service_id "$T/e1.json")
E2=$(jq -r .service_id "$T/e2.json")
FID=$(jq -r .service_id "$T/f.json")
FLISTEN=$(jq -r .service.listen "$T/f.json")
FPORT=${FLISTEN##*/tcp/}
[ "$(jq -r .service.id "$T/f.json")" = "$FID" ] || fail "reply's service.id differs from service_id"
[ "$E1" != "$E2" ] && [ "$E1" != "$(jq -r .service_id "$T/e0.json")" ] && [ "$FPORT" -gt 0 ] ||
	fail "ids $E1 $E2, port $FPORT"
echo_1mb "$FPORT" "1 MB through the new forward"
wait_running a 2
wait_running b 1
pass "expose x2 + forward (port 0 -> $FPORT) running, ids $E1 $E2 $FID, 1 MB echoed"

# 1. natxd B restarts (its engine is stopped and a new one spawned)
stop_natxd b
start_natxd b /ip4/127.0.0.1/tcp/0
wait_running b 1
jq -e --argjson id "$FID" --arg l "$FLISTEN" --arg p "$A_ADDR" '.services | length == 1 and
	.[0].id == $id and .[0].kind == "forward" and .[0].listen == $l and .[0].peer == $p and
	.[0].protocol == "/p2d/echo/1.0.0" and .[0].streams_total == 0' "$T/b/ls.json" >/dev/null ||
	{ cat "$T/b/ls.json"; fail "B's forward after the restart"; }
echo_1mb "$FPORT" "1 MB through the forward after natxd B restarted"
pass "natxd restart: forward $FID back on port $FPORT with its id, bytes flow"

# 2. A's engine is killed: natxd restarts it and pushes both exposes back
OLD=$(engine_field a pid)
kill -9 "$OLD"
wait_engine_restart a "$OLD"
wait_running a 2
jq -e --argjson e1 "$E1" --argjson e2 "$E2" '([.services[] | {id, protocol}] | sort_by(.id) ==
	([{id: $e1, protocol: "/p2d/echo/1.0.0"}, {id: $e2, protocol: "/p2d/other/1.0.0"}] | sort_by(.id)))
	and ([.services[] | select(.engine_id == .id)] | length == 0)' \
	"$T/a/ls.json" >/dev/null || { cat "$T/a/ls.json"; fail "A's services after the engine crash"; }
echo_1mb "$FPORT" "1 MB after A's engine was killed"
pass "engine kill -9 (A): both exposes pushed back with ids $E1 $E2, B's forward reaches A again"

# 2b. A's natxd restarts and attaches to its running engine (keep_on_exit)
ctl a --json p2p ls | jq -c '[.services[] | {id, engine_id, streams_total}] | sort_by(.id)' >"$T/a/before"
stop_natxd a
command -v socat >/dev/null || { echo "SKIP: socat missing"; exit 77; }
printf '%s\n' '{"v":1,"id":7,"cmd":"p2p.expose","protocol":"/p2d/stray/1.0.0","target":"127.0.0.1:9"}' |
	timeout 5 socat -t 2 - "UNIX-CONNECT:$T/a/engine.sock" | grep -q '"ok":true' ||
	fail "could not add a stray service on A's engine socket"
start_natxd a "/ip4/127.0.0.1/tcp/$APORT" true
[ "$(engine_field a attached)" = true ] || fail "natxd A should have attached to its engine"
wait_running a 2
jq -c '[.services[] | {id, engine_id, streams_total}] | sort_by(.id)' "$T/a/ls.json" >"$T/a/after"
cmp -s "$T/a/before" "$T/a/after" ||
	fail "attached: services changed: $(cat "$T/a/before") -> $(cat "$T/a/after")"
printf '%s\n' '{"v":1,"id":8,"cmd":"p2p.ls"}' | timeout 5 socat -t 2 - "UNIX-CONNECT:$T/a/engine.sock" >"$T/a/eng.ls"
jq -e '.ok and ([.services[] | select(.protocol == "/p2d/stray/1.0.0")] | length == 0) and
	(.services | length == 2)' "$T/a/eng.ls" >/dev/null ||
	{ cat "$T/a/eng.ls"; fail "the stray service must be closed by natxd"; }
echo_1mb "$FPORT" "1 MB after A's natxd reattached"
pass "natxd restart with keep_on_exit: attached, services untouched (same engine ids), stray one closed"

# 3. B's engine is killed: the forward comes back on the same port
OLD=$(engine_field b pid)
kill -9 "$OLD"
wait_engine_restart b "$OLD"
wait_running b 1
jq -e --argjson id "$FID" --arg l "$FLISTEN" '.services[0].id == $id and .services[0].listen == $l' \
	"$T/b/ls.json" >/dev/null || { cat "$T/b/ls.json"; fail "B's forward after its engine crash"; }
echo_1mb "$FPORT" "1 MB after B's engine was killed"
pass "engine kill -9 (B): forward $FID back on port $FPORT"

# 4. the forward's port is taken while natxd B is down: failed, then running once free
stop_natxd b
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $FPORT)); s.listen(1); print('held', flush=True); time.sleep(30)" >"$T/hold.out" &
HOLD=$!
PIDS+=($HOLD)
for _ in $(seq 1 50); do [ -s "$T/hold.out" ] && break; sleep 0.1; done
start_natxd b /ip4/127.0.0.1/tcp/0
for _ in $(seq 1 50); do
	ctl b --json p2p ls >"$T/b/ls.json" && jq -e '.services[0].state == "failed"' "$T/b/ls.json" >/dev/null && break
	sleep 0.1
done
jq -e --argjson id "$FID" '.services[0].id == $id and .services[0].state == "failed" and
	(.services[0].error | test("in use|listen"))' "$T/b/ls.json" >/dev/null ||
	{ cat "$T/b/ls.json"; fail "a forward whose port is taken must be listed as failed"; }
kill "$HOLD"
wait "$HOLD" 2>/dev/null
wait_running b 1
echo_1mb "$FPORT" "1 MB after the port was freed"
pass "busy port at start: listed failed with the reason, running after the retry"

# 5. close: gone now and after a restart; unknown id -> not_found
ctl a p2p close "$E2" >/dev/null || fail "p2p close $E2"
ctl a --json p2p ls | jq -e --argjson id "$E2" '[.services[] | select(.id == $id)] | length == 0' >/dev/null ||
	fail "closed service still listed"
stop_natxd a
start_natxd a "/ip4/127.0.0.1/tcp/$APORT"
wait_running a 1
jq -e --argjson e1 "$E1" '.services | length == 1 and .[0].id == $e1' "$T/a/ls.json" >/dev/null ||
	{ cat "$T/a/ls.json"; fail "A after close + restart"; }
ctl a p2p close "$E2" >/dev/null 2>"$T/err"; rc=$?
[ $rc = 14 ] || { cat "$T/err"; fail "closing a closed id: rc $rc"; }
ctl a p2p close 0 >/dev/null 2>&1; rc=$?
[ $rc = 14 ] || fail "closing id 0: rc $rc"
echo_1mb "$FPORT" "1 MB after A restarted"
pass "p2p close forgets the service (also after a restart); unknown id -> exit 14"
exit 0
