#!/usr/bin/env bash
# The control socket under abuse: garbage, oversized lines, unknown commands, wrong versions,
# a client that never finishes its line and many concurrent clients. Each bad request gets an
# error reply with a stable code, the same connection stays usable, other clients are unaffected.
. "$(dirname "$0")/control_lib.sh"
command -v socat >/dev/null || { echo "skip: socat missing"; exit 77; }

printf '[control]\nmax_clients = 24\n' >"$T/natx.conf"
start_natxd --listen off --config "$T/natx.conf"

# raw LINES... - send lines on one connection, print the reply lines
raw() {
	printf '%s\n' "$@" | socat -t 2 - UNIX-CONNECT:"$SOCK"
}

out=$(raw 'garbage' '{"v":1,"id":2,"cmd":"version"}')
[ "$(echo "$out" | sed -n 1p | jq -r .error.code)" = bad_request ] || fail "garbage: $out"
[ "$(echo "$out" | sed -n 2p | jq -r '.ok and .id == 2')" = true ] || fail "after garbage: $out"

out=$(raw '{"v":2,"id":"a","cmd":"status"}' '{"v":1,"id":"b","cmd":"nope"}' \
	'{"v":1,"id":"c","cmd":"status","x":' '[]' '{"v":1,"id":"d","cmd":"version"}')
[ "$(echo "$out" | jq -r '.error.code // "ok"' | tr '\n' ' ')" = \
	"bad_version unknown_cmd bad_request bad_request ok " ] || fail "error codes: $out"
[ "$(echo "$out" | sed -n 1p | jq -r .id)" = a ] || fail "id echoed on errors: $out"

# oversized line (70000 bytes, limit 65536): one too_big reply, then the connection still works
{
	head -c 70000 /dev/zero | tr '\0' 'x'
	printf '\n{"v":1,"id":3,"cmd":"version"}\n'
} | socat -t 2 - UNIX-CONNECT:"$SOCK" >"$T/big.out"
[ "$(sed -n 1p "$T/big.out" | jq -r .error.code)" = too_big ] || fail "too_big: $(cat "$T/big.out")"
[ "$(sed -n 2p "$T/big.out" | jq -r .id)" = 3 ] || fail "after too_big: $(cat "$T/big.out")"
# binary junk with NULs
head -c 4096 /dev/urandom | socat -t 1 - UNIX-CONNECT:"$SOCK" >/dev/null || true

# a client that sends half a line and stalls must not block others
mkfifo "$T/stall"
socat -u PIPE:"$T/stall" UNIX-CONNECT:"$SOCK" &
STALL=$!
PIDS+=("$STALL")
exec 7>"$T/stall"
printf '{"v":1,"cmd":"sta' >&7
sleep 0.2
for i in $(seq 1 20); do
	ctl --json version >"$T/c$i" &
	PIDS+=("$!")
done
wait "${PIDS[@]: -20}" || fail "concurrent clients failed"
for i in $(seq 1 20); do
	jq -e '.ok == true' "$T/c$i" >/dev/null || fail "client $i: $(cat "$T/c$i")"
done
exec 7>&-
wait "$STALL" 2>/dev/null || true

# max_clients: with 24 clients connected, the next one gets limit_reached (exit 18). First wait
# until the earlier clients are gone (only the status request itself is connected), then hold 24
# connections, each proven accepted by the answer to its first request.
for _ in $(seq 1 100); do
	[ "$(ctl --json status | jq .status.ctl_clients)" = 1 ] && break
	sleep 0.1
done
[ "$(ctl --json status | jq .status.ctl_clients)" = 1 ] || fail "clients linger"
IDLE=()
for i in $(seq 1 24); do
	{
		echo '{"v":1,"id":1,"cmd":"version"}'
		sleep 6
	} | socat - UNIX-CONNECT:"$SOCK" >"$T/idle$i" 2>&1 &
	IDLE+=("$!")
	PIDS+=("$!")
done
for i in $(seq 1 24); do
	for _ in $(seq 1 100); do
		[ -s "$T/idle$i" ] && break
		sleep 0.05
	done
	jq -e '.ok == true' "$T/idle$i" >/dev/null || fail "idle client $i: $(cat "$T/idle$i")"
done
expect_status 18 ctl version
grep -q limit_reached "$T/err" || fail "limit text: $(cat "$T/err")"
kill "${IDLE[@]}" 2>/dev/null || true
wait "${IDLE[@]}" 2>/dev/null || true
for _ in $(seq 1 50); do
	ctl version >/dev/null 2>&1 && break
	sleep 0.1
done
expect_status 0 ctl version

# bookkeeping: the daemon counted the rejected requests and is healthy
ctl --json status | jq -e '.status.pid > 0' >/dev/null || fail "natxd after abuse"
kill -0 "$NATXD_PID" || fail "natxd died"
echo "control_socket: ok"
