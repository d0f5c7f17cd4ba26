#!/usr/bin/env bash
# natxd supervising the real natx-engine (skips with 77 until natx-engine is built):
#  - config and `natxctl forward add` forwards carry bytes; forward add is persisted in SQLite;
#  - kill -9 of the engine: natxd restarts it (backoff) and pushes the forwards back;
#  - kill -9 of natxd: an open forwarded flow keeps working, a new natxd reattaches to the same
#    engine (same pid) and the flow is still open;
#  - SIGTERM of natxd stops the engine (drain) unless engine.keep_on_exit.
# Loopback only; ports are checked free before use; every process is stopped by pid.
. "$(dirname "$0")/control_lib.sh"
ENGINE=${NATX_ENGINE:-$NATX_BIN/natx-engine}
if [ ! -x "$ENGINE" ]; then
	echo "skip: natx-engine is not built ($ENGINE)"
	exit 77
fi
command -v socat >/dev/null || { echo "skip: socat missing"; exit 77; }
# Can the engine run here at all (io_uring may be disabled in a container)? Probe it alone.
"$ENGINE" --ctl "$T/probe.sock" >"$T/probe.log" 2>&1 &
PROBE=$!
for _ in $(seq 1 50); do
	[ -S "$T/probe.sock" ] && break
	kill -0 "$PROBE" 2>/dev/null || break
	sleep 0.1
done
if [ ! -S "$T/probe.sock" ]; then
	kill -9 "$PROBE" 2>/dev/null || true
	echo "skip: natx-engine does not start on this machine: $(tail -n 2 "$T/probe.log")"
	exit 77
fi
kill -TERM "$PROBE"
wait "$PROBE" 2>/dev/null || true

ENGINE_PIDS=()
stop_engines() {
	local p
	for p in "${ENGINE_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	cleanup
}
trap stop_engines EXIT

free_port() { # a TCP port on 127.0.0.1 below the ephemeral range that no socket uses
	local p=$((10000 + ($$ * 7 + $1 * 131) % 22000))
	for _ in $(seq 1 200); do
		if ! ss -Htan "sport = :$p" | grep -q . && ! ss -Htan "dport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
		p=$((p + 1))
	done
	fail "no free port"
}
UP=$(free_port 1)
FP=$(free_port 2)
FP2=$(free_port 3)
FP3=$(free_port 4)
[ "$(printf '%s\n' "$UP" "$FP" "$FP2" "$FP3" | sort -u | wc -l)" = 4 ] || fail "port clash"

socat TCP-LISTEN:"$UP",bind=127.0.0.1,fork,reuseaddr EXEC:cat &
PIDS+=("$!")

echo_through() { # PORT -> succeeds when a line comes back through it
	local got
	got=$(printf 'ping-%s\n' "$1" | timeout 5 socat -t 2 - TCP:127.0.0.1:"$1" 2>/dev/null) || true
	[ "$got" = "ping-$1" ]
}

engine_field() { ctl --json status | jq -r ".status.engine.$1"; }

wait_engine_up() { # [NOT-PID] - until the engine is up (and its pid differs from NOT-PID)
	for _ in $(seq 1 150); do
		if [ "$(engine_field state)" = up ] && [ "$(engine_field pid)" != "${1:-}" ]; then
			ENGINE_PIDS+=("$(engine_field pid)")
			return 0
		fi
		sleep 0.1
	done
	fail "engine not up: $(ctl --json status | jq -c .status.engine)"
}

cat >"$T/natx.conf" <<CONF
[server]
address = off
[engine]
restart_base_ms = 100
restart_max_ms = 1000
[forward]
forward = tcp:127.0.0.1:$FP=127.0.0.1:$UP
CONF
start_natxd --config "$T/natx.conf" --engine "$ENGINE"
wait_engine_up
EPID=$(engine_field pid)
[ "$(engine_field attached)" = false ] || fail "first engine must be spawned, not attached"
# the engine runs in its own session, so signals to natxd's group never reach it
[ "$(ps -o sid= -p "$EPID" | tr -d ' ')" = "$EPID" ] || fail "engine is not a session leader"

wait_running() { # N - until N forwards are running (failed ones are retried every 5 s)
	for _ in $(seq 1 150); do
		[ "$(ctl --json forward list | jq '[.forwards[] | select(.state == "running")] | length')" = "$1" ] &&
			return 0
		sleep 0.1
	done
	fail "forwards not running: $(ctl --json forward list)"
}
wait_running 1
for _ in $(seq 1 50); do echo_through "$FP" && break; sleep 0.1; done
echo_through "$FP" || fail "config forward does not carry bytes"

expect_status 0 ctl forward add "tcp:127.0.0.1:$FP2=127.0.0.1:$UP"
echo_through "$FP2" || fail "forward added with natxctl does not carry bytes"
[ "$(sqlite3 "$T/state/natx.db" "SELECT count(*) FROM forwards WHERE spec='tcp:127.0.0.1:$FP2=127.0.0.1:$UP'")" = 1 ] ||
	fail "forward add not persisted"
expect_status 17 ctl forward add "tcp:127.0.0.1:$FP2=127.0.0.1:$UP"
expect_status 4 ctl forward rm "tcp:127.0.0.1:$FP=127.0.0.1:$UP" # config forwards stay
ctl --json forward list | jq -e '[.forwards[] | select(.state == "running")] | length == 2' \
	>/dev/null || fail "forward list: $(ctl --json forward list)"
ctl --json engine stats | jq -e '.engine.state == "up" and (.engine.shards | length) >= 1 and
	.engine.total.flows_total >= 2' >/dev/null || fail "engine stats: $(ctl --json engine stats)"

# kill -9 the engine: natxd restarts it and pushes both forwards back
kill -9 "$EPID"
wait_engine_up "$EPID"
EPID2=$(engine_field pid)
[ "$(ctl --json status | jq .status.engine.restarts)" -ge 1 ] || fail "restart not counted"
for _ in $(seq 1 50); do echo_through "$FP" && echo_through "$FP2" && break; sleep 0.1; done
echo_through "$FP" || fail "config forward not restored after engine restart"
echo_through "$FP2" || fail "stored forward not restored after engine restart"

# an open flow survives kill -9 of natxd, and a new natxd reattaches to the same engine
coproc FLOW { socat - TCP:127.0.0.1:"$FP"; }
PIDS+=("$FLOW_PID")
echo one >&"${FLOW[1]}"
read -r -t 5 line <&"${FLOW[0]}" || fail "flow: no echo"
[ "$line" = one ] || fail "flow echo '$line'"
kill -9 "$NATXD_PID"
wait "$NATXD_PID" 2>/dev/null || true
kill -0 "$EPID2" || fail "engine died with natxd"
echo two >&"${FLOW[1]}"
read -r -t 5 line <&"${FLOW[0]}" || fail "flow stopped when natxd died"
[ "$line" = two ] || fail "flow echo '$line'"
start_natxd --config "$T/natx.conf" --engine "$ENGINE"
wait_engine_up
[ "$(engine_field pid)" = "$EPID2" ] || fail "natxd started a new engine instead of reattaching"
[ "$(engine_field attached)" = true ] || fail "not reported as reattached"
echo three >&"${FLOW[1]}"
read -r -t 5 line <&"${FLOW[0]}" || fail "flow broken by the reattach"
[ "$line" = three ] || fail "flow echo '$line'"
ctl --json forward list | jq -e '[.forwards[] | select(.state == "running")] | length == 2' \
	>/dev/null || fail "reattach lost forwards: $(ctl --json forward list)"
ctl --json forward list | jq -e "[.forwards[] | select(.spec == \"tcp:127.0.0.1:$FP=127.0.0.1:$UP\") |
	.flows_open] | .[0] >= 1" >/dev/null || fail "open flow not visible: $(ctl --json forward list)"


# reload with a changed [forward] section: the new forward starts, a dropped one stops
sed -i "s/^forward = .*/forward = tcp:127.0.0.1:$FP3=127.0.0.1:$UP/" "$T/natx.conf"
expect_status 0 ctl reload
wait_running 2
echo_through "$FP3" || fail "forward added by reload does not carry bytes"
for _ in $(seq 1 20); do echo_through "$FP" || break; sleep 0.1; done
echo_through "$FP" && fail "forward dropped from the config still listening"
echo four >&"${FLOW[1]}"
read -r -t 5 line <&"${FLOW[0]}" || fail "open flow of a removed forward must continue"
[ "$line" = four ] || fail "flow echo '$line'"

# forward rm: persisted removal; the listener goes away
expect_status 0 ctl forward rm "tcp:127.0.0.1:$FP2=127.0.0.1:$UP"
[ "$(sqlite3 "$T/state/natx.db" 'SELECT count(*) FROM forwards')" = 0 ] || fail "rm not persisted"
for _ in $(seq 1 20); do echo_through "$FP2" || break; sleep 0.1; done
echo_through "$FP2" && fail "removed forward still listening"
exec {FLOW[1]}>&-

# SIGTERM: natxd drains and stops the engine, then exits 0
kill -TERM "$NATXD_PID"
wait "$NATXD_PID" || fail "natxd exit status $?"
for _ in $(seq 1 100); do kill -0 "$EPID2" 2>/dev/null || break; sleep 0.1; done
kill -0 "$EPID2" 2>/dev/null && fail "engine still running after natxd stopped"
echo "control_engine: ok"
