#!/usr/bin/env bash
# The control socket under abuse: garbage, oversized lines, unknown commands, wrong versions,
# a client that never finishes its line and many concurrent clients. Each bad request gets an
# error reply with a stable code, the same connection stays usable, other clients are unaffected.
. "$(dirname "$0")/control_lib.sh"
command -v socat >/dev/null || { echo "skip: socat missing"; exit 77; }

start_natxd --listen off

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

# bookkeeping: the daemon counted the rejected requests and is healthy
ctl --json status | jq -e '.status.pid > 0' >/dev/null || fail "natxd after abuse"
kill -0 "$NATXD_PID" || fail "natxd died"
echo "control_socket: ok"
