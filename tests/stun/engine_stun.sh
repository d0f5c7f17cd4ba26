#!/usr/bin/env bash
# natx-engine's STUN Binding responder (--stun-listen), on loopback, with 2 shards:
#  - natx-stunc learns its own address and port (XOR-MAPPED-ADDRESS) for IPv4, IPv6 and an
#    IPv4 client of the dual-stack [::] socket (answered as IPv4); a request to 127.0.0.4 is
#    answered from 127.0.0.4 (IP_PKTINFO), not from the route's preferred 127.0.0.1;
#  - FINGERPRINT requests are answered (natx-stunc checks the CRC);
#  - garbage is counted (passed/malformed), not answered, and the responder keeps answering;
#  - a flood from 127.0.0.1 is limited to the burst plus the refill (rate_limited counted, the
#    sum of answered + rate_limited equals what the engine received), while 127.0.0.2 is
#    still answered;
#  - with BPF steering (when permitted) every request from 127.0.0.1, whatever its source
#    port, is handled by one shard (the STUN group is keyed on the address only).
# Runs once with --steer kernel (responder from --stun-listen) and once with --steer auto
# (responder started over the control socket with stun.set, as natxd does); the engine's
# stats say which steering is active. Then stun.set/stun.stop: repeated, changed, stopped
# (no answer any more), busy port and bad address refused with the contract's error codes.
set -euo pipefail
BIN=${NATX_BIN:?}
tmp=$(mktemp -d /tmp/natxbpe-stun.XXXXXX)
epid=
cleanup() {
	if [[ -n $epid ]] && kill -0 "$epid" 2>/dev/null; then
		kill "$epid"
		wait "$epid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	[[ -f $tmp/engine.log ]] && tail -20 "$tmp/engine.log" >&2
	exit 1
}
ctl() { # $1 command, $2 extra JSON members (optional, with a leading comma)
	printf '{"v":1,"id":1,"cmd":"%s"%s}\n' "$1" "${2:-}" | socat -t 5 - "UNIX-CONNECT:$tmp/ctl.sock"
}
stun() { ctl stats | jq -c ".stun.$1"; }

start_engine() { # $1 steer mode, $2 listen ("" = none), rest: extra options
	local steer=$1 listen=$2
	shift 2
	rm -f "$tmp/ctl.sock"
	"$BIN/natx-engine" --shards 2 --no-pin --steer "$steer" --ctl "$tmp/ctl.sock" \
		${listen:+--stun-listen "$listen"} "$@" >"$tmp/engine.log" 2>&1 &
	epid=$!
	for _ in $(seq 100); do
		[[ -S $tmp/ctl.sock ]] && break
		kill -0 "$epid" 2>/dev/null || fail "engine exited: $(cat "$tmp/engine.log")"
		sleep 0.05
	done
	[[ -S $tmp/ctl.sock ]] || fail "engine did not come up"
	if [[ -z $listen ]]; then
		[[ $(ctl hello | jq -r .stun) == false ]] || fail "hello reports a responder"
		ctl stun.set ',"listen":"[::]:0","rate":5,"burst":5' | jq -e .ok >/dev/null ||
			fail "stun.set refused"
	fi
	[[ $(ctl hello | jq -r .stun) == true ]] || fail "hello does not report the responder"
	port=$(stun listen | tr -d '"' | sed 's/.*://')
}
stop_engine() {
	ctl shutdown >/dev/null
	wait "$epid" || fail "engine exit status $?"
	epid=
	# Sanitizer builds report and go on for some checks: any report fails the test.
	if grep -q "runtime error\|Sanitizer" "$tmp/engine.log"; then
		fail "sanitizer report in the engine log"
	fi
}

run() { # $1 steer mode, $2 cli|ctl
	local mode steered cport out sum got
	cport=$((30000 + ($$ * 7 + ${#1}) % 20000))
	if [[ $2 == cli ]]; then
		start_engine "$1" '[::]:0' --stun-rate 5 --stun-burst 5
	else
		start_engine "$1" ''
	fi
	mode=$(ctl stats | jq -r .steering.mode)
	echo "steer $1 -> $mode, STUN on [::]:$port"

	out=$("$BIN/natx-stunc" "127.0.0.1:$port" --bind "127.0.0.1:$cport")
	[[ $out == "mapped 127.0.0.1:$cport" ]] || fail "IPv4 client via [::]: '$out'"
	out=$("$BIN/natx-stunc" "[::1]:$port" --bind "[::1]:$((cport + 1))" --fingerprint)
	[[ $out == "mapped [::1]:$((cport + 1))" ]] || fail "IPv6 client: '$out'"
	# Sent to another local address than the route's preferred one: answered from it
	# (IP_PKTINFO), else the connected client would not accept the answer.
	out=$("$BIN/natx-stunc" "127.0.0.4:$port" --bind "127.0.0.4:$((cport + 4))") ||
		fail "request to 127.0.0.4 not answered from 127.0.0.4"
	[[ $out == "mapped 127.0.0.4:$((cport + 4))" ]] || fail "127.0.0.4: '$out'"
	[[ $(stun counters.answered) == 3 ]] || fail "answered: $(stun counters)"

	# Not STUN: counted, not answered; then still answering.
	printf 'hello, not stun' | socat -t 0.2 - "UDP:127.0.0.2:$port" || true
	for _ in $(seq 50); do
		sum=$(ctl stats | jq '.stun.counters | .passed + .malformed')
		[[ $sum == 1 ]] && break
		sleep 0.02
	done
	[[ $sum == 1 ]] || fail "garbage not counted: $(stun counters)"

	if [[ $mode == bpf ]]; then
		# Different source ports of one address: one shard (address-keyed group).
		for i in $(seq 12); do
			out=$("$BIN/natx-stunc" "127.0.0.1:$port" --bind "127.0.0.3:$((cport + 10 + i))")
			[[ $out == "mapped 127.0.0.3:$((cport + 10 + i))" ]] || fail "127.0.0.3: '$out'"
		done
		got=$(ctl stats | jq -c '[.stun.shards[] | .answered + .rate_limited]')
		# 127.0.0.1 (1 request) and [::1] may sit on either shard; 127.0.0.3's 12 on one.
		jq -e 'any(. >= 12)' <<<"$got" >/dev/null || fail "127.0.0.3 spread over shards: $got"
		echo "127.0.0.3 from 12 source ports, per shard (answered + limited): $got"
		steered=$(ctl stats | jq .steering.steered)
		((steered >= 15)) || fail "steering program saw $steered datagrams"
	fi

	# Flood from 127.0.0.1 (burst 5, 5/s): 300 requests in well under a second.
	local before
	before=$(ctl stats | jq '.stun.counters | .answered + .rate_limited')
	out=$("$BIN/natx-stunc" "127.0.0.1:$port" --bind "127.0.0.1:$((cport + 2))" --count 300 \
		--json --timeout-ms 300)
	echo "flood: $out"
	local c
	c=$(ctl stats | jq -c .stun.counters)
	echo "counters: $c"
	local ans lim
	ans=$(jq .answered <<<"$c")
	lim=$(jq .rate_limited <<<"$c")
	# Before the flood, 127.0.0.1 had used 1 token: it may get at most burst + refill more.
	((lim >= 250)) || fail "rate limit did not drop the flood: $c"
	((ans + lim - before == 300)) || fail "answered + rate_limited moved by $((ans + lim - before)), sent 300"
	local fl_ans
	fl_ans=$(jq .answered <<<"$out")
	((fl_ans >= 4 && fl_ans <= 5 + 5 * 2)) || fail "flood got $fl_ans answers, limit 5 + 5/s"
	# Another source is still answered.
	out=$("$BIN/natx-stunc" "127.0.0.1:$port" --bind "127.0.0.2:$((cport + 3))") ||
		fail "127.0.0.2 not answered during the flood's limit"
	[[ $out == "mapped 127.0.0.2:$((cport + 3))" ]] || fail "127.0.0.2: '$out'"
	[[ $(jq .send_failed <<<"$c") == 0 ]] || fail "sends failed: $c"
	stop_engine
}

run kernel cli
run auto ctl

# stun.set / stun.stop over the control socket.
start_engine auto ''
p1=$port
r=$(ctl stun.set ',"listen":"[::]:0","rate":5,"burst":5')
[[ $(jq -r .stun.listen <<<"$r") == "[::]:$p1" ]] || fail "repeated stun.set changed it: $r"
r=$(ctl stun.set ',"listen":"127.0.0.1:'"$p1"'","rate":0')
[[ $(jq -c '[.ok, .stun.listen, .stun.rate]' <<<"$r") == "[true,\"127.0.0.1:$p1\",0]" ]] ||
	fail "changed stun.set: $r"
out=$("$BIN/natx-stunc" "127.0.0.1:$p1" --count 50 --json --timeout-ms 300)
[[ $(jq .answered <<<"$out") == 50 ]] || fail "unlimited responder: $out"
r=$(ctl stun.stop)
[[ $(jq -c '[.ok, .stun]' <<<"$r") == '[true,null]' ]] || fail "stun.stop: $r"
[[ $(ctl hello | jq -r .stun) == false ]] || fail "hello still reports the responder"
if "$BIN/natx-stunc" "127.0.0.1:$p1" --timeout-ms 200 >/dev/null 2>&1; then
	fail "answered after stun.stop"
fi
r=$(ctl stun.set ',"listen":"nonsense"')
[[ $(jq -r .error.code <<<"$r") == bad_spec ]] || fail "bad listen: $r"
r=$(ctl stun.set)
[[ $(jq -r .error.code <<<"$r") == bad_request ]] || fail "stun.set without listen: $r"
[[ $(ctl hello | jq -r .stun) == false ]] || fail "refused stun.set left a responder"
stop_engine

# Port in use: refused with a reason, nothing started.
python3 -c 'import socket,time,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1],flush=True); time.sleep(20)' >"$tmp/busy" &
bpid=$!
for _ in $(seq 50); do [[ -s $tmp/busy ]] && break; sleep 0.05; done
busy=$(cat "$tmp/busy")
if "$BIN/natx-engine" --shards 1 --stun-listen "127.0.0.1:$busy" >"$tmp/busy.log" 2>&1; then
	kill $bpid
	fail "engine started on a busy STUN port"
fi
kill $bpid
grep -q "STUN listen 127.0.0.1:$busy: Address already in use" "$tmp/busy.log" ||
	fail "busy port: $(cat "$tmp/busy.log")"
if "$BIN/natx-engine" --stun-listen 'nonsense' >"$tmp/bad.log" 2>&1; then
	fail "bad --stun-listen accepted"
fi
grep -q "not IPv4:PORT" "$tmp/bad.log" || fail "bad --stun-listen: $(cat "$tmp/bad.log")"
echo "engine_stun: ok"
