#!/usr/bin/env bash
# bench/tunnel.sh - the tunnel (natx-engine as tunnel server + natx-engine as tunnel client,
# loopback), plaintext and with the encrypted transport (Noise NK: "noise"), against the plain
# engine forward, haproxy and direct, in one interleaved run:
# TCP throughput (iperf3, 1 and 4 streams), connection rate (bench-connrate through to
# bench-echod, 64-byte echo per connection), UDP echo packets/s (bench-udpblast) and
# user-space memory per idle service. Prints
# medians and the ratios the issue asks for.
#
#   bench/tunnel.sh [--reps N] [--secs S] [--pool N] [--out FILE]
#
# Everything on 127.0.0.1, ports picked free by the kernel (bind 0) and read back; every
# process started here is in its own process group and killed on exit. Not a test: never
# registered with ctest, never asserts a speed.
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NATX_BIN:-$SRC/build/bin}
REPS=3 SECS=5 POOL=8 OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--reps) REPS=$2; shift ;;
	--secs) SECS=$2; shift ;;
	--pool) POOL=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "tunnel.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
[[ $REPS =~ ^[1-9][0-9]?$ && $SECS =~ ^[1-9][0-9]?$ && $POOL =~ ^[0-9]+$ ]] ||
	{ echo "tunnel.sh: --reps 1..99, --secs 1..99, --pool N" >&2; exit 2; }
for t in natx-engine bench-echod bench-connrate; do
	[ -x "$BIN/$t" ] || { echo "tunnel.sh: $BIN/$t missing: build first" >&2; exit 2; }
done
for t in iperf3 jq python3; do
	command -v $t >/dev/null || { echo "tunnel.sh: $t is not installed" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/natx-tunbench.XXXXXX)
RES=$TMP/results.tsv
: >"$RES"
PGIDS=()
cleanup() {
	local g
	for g in "${PGIDS[@]}"; do
		[ "$(ps -o ppid= -p "$g" 2>/dev/null | tr -d ' ')" = "$$" ] || continue
		kill -TERM -- "-$g" 2>/dev/null
		sleep 0.2
		kill -KILL -- "-$g" 2>/dev/null
		wait "$g" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bg() { # NAME CMD...
	local name=$1
	shift
	setsid "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
	BG_PID=$!
	PGIDS+=("$BG_PID")
}

# free_port - a port the kernel hands out for bind(0) right now (released at once).
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ctl SOCK JSON - one engine control request; prints the reply.
ctl() {
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

wait_sock() { # PATH
	for _ in $(seq 1 100); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# noise_pair_start UPSTREAM_PORT TYPE - a tunnel server + client engine pair with the encrypted
# transport (random server key, the client pins its public key) exposing UPSTREAM_PORT;
# sets NPUB (the public port).
noise_pair_start() {
	local up=$1 type=$2 s=$TMP/nsrv-$1.sock c=$TMP/ncli-$1.sock listen key pubkey
	start_bg "nsrv-$up" "$BIN/natx-engine" --shards 1 --ctl "$s"
	start_bg "ncli-$up" "$BIN/natx-engine" --shards 1 --ctl "$c"
	wait_sock "$s" && wait_sock "$c" || { echo "tunnel.sh: engines did not start" >&2; exit 1; }
	sleep 0.2
	key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	listen=$(ctl "$s" "{\"cmd\":\"tunnel.server\",\"listen\":\"127.0.0.1:0\",\"transport\":\"noise\",\"noise_key_hex\":\"$key\"}")
	pubkey=$(jq -r .noise_pubkey <<<"$listen")
	listen=$(jq -r .listen <<<"$listen")
	NPUB=$(free_port)
	ctl "$s" "{\"cmd\":\"tunnel.add\",\"role\":\"server\",\"name\":\"n\",\"type\":\"$type\",\"token\":\"bench\",\"bind\":\"127.0.0.1:$NPUB\",\"pool\":$POOL}" >/dev/null
	ctl "$c" "{\"cmd\":\"tunnel.client\",\"server\":\"$listen\"}" >/dev/null
	ctl "$c" "{\"cmd\":\"tunnel.add\",\"role\":\"client\",\"name\":\"n\",\"type\":\"$type\",\"token\":\"bench\",\"local\":\"127.0.0.1:$up\",\"transport\":\"noise\",\"server_pubkey\":\"$pubkey\"}" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(ctl "$s" '{"cmd":"tunnel.ls"}' | jq -r '.services[0].state')" = up ] && break
		sleep 0.05
	done
}

# targets_start UPSTREAM_PORT - natx forward, tunnel, haproxy in front of UPSTREAM_PORT; sets
# PORT[target].
declare -A PORT
targets_start() {
	local up=$1 p s c
	PORT[direct]=$up
	p=$(free_port)
	start_bg "natx-$up" "$BIN/natx-engine" --shards 1 --forward "tcp:127.0.0.1:$p=127.0.0.1:$up"
	PORT[natx]=$p
	# Two engine forwards in a row: the same number of proxy hops as the tunnel (relay + node).
	local p2 p1
	p2=$(free_port)
	p1=$(free_port)
	start_bg "natx2a-$up" "$BIN/natx-engine" --shards 1 --forward "tcp:127.0.0.1:$p2=127.0.0.1:$up"
	start_bg "natx2b-$up" "$BIN/natx-engine" --shards 1 --forward "tcp:127.0.0.1:$p1=127.0.0.1:$p2"
	PORT[natx2]=$p1
	s=$TMP/srv-$up.sock c=$TMP/cli-$up.sock
	start_bg "tsrv-$up" "$BIN/natx-engine" --shards 1 --ctl "$s"
	start_bg "tcli-$up" "$BIN/natx-engine" --shards 1 --ctl "$c"
	wait_sock "$s" && wait_sock "$c" || { echo "tunnel.sh: engines did not start" >&2; exit 1; }
	sleep 0.2
	local listen pub
	listen=$(ctl "$s" '{"cmd":"tunnel.server","listen":"127.0.0.1:0"}' | jq -r .listen)
	pub=$(free_port)
	ctl "$s" "{\"cmd\":\"tunnel.add\",\"role\":\"server\",\"name\":\"b\",\"type\":\"tcp\",\"token\":\"bench\",\"bind\":\"127.0.0.1:$pub\",\"pool\":$POOL}" >/dev/null
	ctl "$c" "{\"cmd\":\"tunnel.client\",\"server\":\"$listen\"}" >/dev/null
	ctl "$c" "{\"cmd\":\"tunnel.add\",\"role\":\"client\",\"name\":\"b\",\"type\":\"tcp\",\"token\":\"bench\",\"local\":\"127.0.0.1:$up\"}" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(ctl "$s" '{"cmd":"tunnel.ls"}' | jq -r '.services[0].state')" = up ] && break
		sleep 0.05
	done
	PORT[tunnel]=$pub
	TSRV_SOCK=$s
	noise_pair_start "$up" tcp
	PORT[noise]=$NPUB
	if command -v haproxy >/dev/null; then
		p=$(free_port)
		cat >"$TMP/haproxy-$up.cfg" <<-EOF
			global
			    maxconn 4000
			defaults
			    mode tcp
			    option splice-auto
			    timeout connect 5s
			    timeout client 10m
			    timeout server 10m
			listen fwd
			    bind 127.0.0.1:$p
			    server up 127.0.0.1:$up
		EOF
		start_bg "haproxy-$up" haproxy -db -f "$TMP/haproxy-$up.cfg"
		PORT[haproxy]=$p
	fi
	sleep 0.5
}

TARGETS=(direct natx natx2 tunnel noise)
command -v haproxy >/dev/null && TARGETS+=(haproxy)
rotate() { # REP - the targets, starting at a different one each repetition
	local n=${#TARGETS[@]} i
	for i in $(seq 0 $((n - 1))); do
		echo "${TARGETS[$(((i + $1) % n))]}"
	done
}

# ---- throughput: iperf3 through each target, interleaved
IP=$(free_port)
start_bg iperf3 iperf3 -s -B 127.0.0.1 -p "$IP"
sleep 0.3
targets_start "$IP"
for rep in $(seq 1 "$REPS"); do
	for streams in 1 4; do
		for t in $(rotate "$rep"); do
			out=$TMP/iperf-$t-$streams-$rep.json
			timeout $((SECS + 20)) iperf3 -c 127.0.0.1 -p "${PORT[$t]}" -t "$SECS" \
				-P "$streams" -J --connect-timeout 3000 >"$out" 2>/dev/null
			bps=$(jq -r '.end.sum_received.bits_per_second // empty' "$out" 2>/dev/null)
			[ -n "$bps" ] || { echo "tcp $t P$streams rep $rep: failed" >&2; sleep 1; continue; }
			printf 'tcp\t%s\tP%s\t%s\n' "$t" "$streams" \
				"$(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1e9}')" >>"$RES"
			echo "tcp rep $rep P$streams $t: $(awk -v b="$bps" 'BEGIN{printf "%.2f", b/1e9}') Gbit/s" >&2
		done
	done
done

# ---- connection rate: bench-connrate -> target -> bench-echod
EP=$(free_port)
start_bg echod "$BIN/bench-echod" --tcp "127.0.0.1:$EP" --threads 1
sleep 0.3
targets_start "$EP"
for rep in $(seq 1 "$REPS"); do
	for t in $(rotate "$rep"); do
		out=$TMP/conn-$t-$rep.out
		timeout $((SECS + 30)) "$BIN/bench-connrate" --connect "127.0.0.1:${PORT[$t]}" \
			--count 200000 --time-limit "$SECS" --threads 1 --concurrency 16 \
			--payload 64 --timeout 5 >"$out" 2>&1
		line=$(grep '^ok=' "$out")
		rate=$(sed -n 's/.*\brate=\([^ ]*\).*/\1/p' <<<"$line")
		err=$(sed -n 's/.*\berr=\([^ ]*\).*/\1/p' <<<"$line")
		[ -n "$rate" ] && [ "$rate" != 0 ] || { echo "conn $t rep $rep: failed: $(head -c 200 "$out")" >&2; continue; }
		printf 'conn\t%s\t-\t%s\n' "$t" "$rate" >>"$RES"
		echo "conn rep $rep $t: $line" >&2
		sleep 1 # let TIME_WAIT settle between runs
	done
done
TSTATE=$(ctl "$TSRV_SOCK" '{"cmd":"tunnel.ls"}' | jq -c '.services[0] | {flows_total, visitors, data_channels, visitor_timeouts, refused_limit}')

# ---- UDP echo packets/s (bench-udpblast, 64-byte datagrams, window 256): direct, engine
# forward, tunnel (one session over one of 2 UDP data channels)
UE=$(free_port)
start_bg echod-udp "$BIN/bench-echod" --udp "127.0.0.1:$UE"
uf=$(free_port)
start_bg natx-udp "$BIN/natx-engine" --shards 1 --forward "udp:127.0.0.1:$uf=127.0.0.1:$UE"
us=$TMP/usrv.sock uc=$TMP/ucli.sock
start_bg usrv "$BIN/natx-engine" --shards 1 --ctl "$us"
start_bg ucli "$BIN/natx-engine" --shards 1 --ctl "$uc"
wait_sock "$us" && wait_sock "$uc" || { echo "tunnel.sh: engines did not start" >&2; exit 1; }
sleep 0.2
ulisten=$(ctl "$us" '{"cmd":"tunnel.server","listen":"127.0.0.1:0"}' | jq -r .listen)
upub=$(free_port)
ctl "$us" "{\"cmd\":\"tunnel.add\",\"role\":\"server\",\"name\":\"u\",\"type\":\"udp\",\"token\":\"u\",\"bind\":\"127.0.0.1:$upub\"}" >/dev/null
ctl "$uc" "{\"cmd\":\"tunnel.client\",\"server\":\"$ulisten\"}" >/dev/null
ctl "$uc" "{\"cmd\":\"tunnel.add\",\"role\":\"client\",\"name\":\"u\",\"type\":\"udp\",\"token\":\"u\",\"local\":\"127.0.0.1:$UE\"}" >/dev/null
for _ in $(seq 1 100); do
	[ "$(ctl "$us" '{"cmd":"tunnel.ls"}' | jq -r '.services[0].data_channels')" = 2 ] && break
	sleep 0.05
done
noise_pair_start "$UE" udp
sleep 0.5
declare -A UPORT=([direct]=$UE [natx]=$uf [tunnel]=$upub [noise]=$NPUB)
for rep in $(seq 1 "$REPS"); do
	for t in direct natx tunnel noise; do
		out=$TMP/udp-$t-$rep.out
		timeout $((SECS + 20)) "$BIN/bench-udpblast" --target "127.0.0.1:${UPORT[$t]}" \
			--size 64 --count 2000000 --time-limit "$SECS" --window 256 >"$out" 2>&1
		line=$(grep '^sent=' "$out")
		pps=$(sed -n 's/.*\bpps=\([^ ]*\).*/\1/p' <<<"$line")
		recv=$(sed -n 's/.*\brecv=\([^ ]*\).*/\1/p' <<<"$line")
		[ -n "$pps" ] && [ "$recv" != 0 ] || { echo "udp $t rep $rep: failed: $(head -c 200 "$out")" >&2; continue; }
		printf 'udp\t%s\t-\t%s\n' "$t" "$pps" >>"$RES"
		echo "udp rep $rep $t: $line" >&2
	done
done

# ---- memory per idle service: RSS growth of both engines for 40 more idle TCP services
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
ms=$TMP/mem-srv.sock mc=$TMP/mem-cli.sock
start_bg mem-srv "$BIN/natx-engine" --shards 1 --ctl "$ms"
start_bg mem-cli "$BIN/natx-engine" --shards 1 --ctl "$mc"
wait_sock "$ms" && wait_sock "$mc" || { echo "tunnel.sh: engines did not start" >&2; exit 1; }
sleep 0.2
mlisten=$(ctl "$ms" '{"cmd":"tunnel.server","listen":"127.0.0.1:0"}' | jq -r .listen)
ctl "$mc" "{\"cmd\":\"tunnel.client\",\"server\":\"$mlisten\"}" >/dev/null
mem_add() { # NAME
	ctl "$ms" "{\"cmd\":\"tunnel.add\",\"role\":\"server\",\"name\":\"$1\",\"type\":\"tcp\",\"token\":\"m\",\"bind\":\"127.0.0.1:0\"}" >/dev/null
	ctl "$mc" "{\"cmd\":\"tunnel.add\",\"role\":\"client\",\"name\":\"$1\",\"type\":\"tcp\",\"token\":\"m\",\"local\":\"127.0.0.1:$EP\"}" >/dev/null
}
mem_pools() { ctl "$ms" '{"cmd":"tunnel.ls"}' | jq '[.services[] | select(.pool == 4)] | length'; }
mem_add warm
for _ in $(seq 1 100); do [ "$(mem_pools)" = 1 ] && break; sleep 0.1; done
spid=$(ctl "$ms" '{"cmd":"hello"}' | jq -r .pid) cpid=$(ctl "$mc" '{"cmd":"hello"}' | jq -r .pid)
s0=$(rss_kib "$spid") c0=$(rss_kib "$cpid")
for i in $(seq 1 40); do mem_add "m$i"; done
for _ in $(seq 1 100); do [ "$(mem_pools)" = 41 ] && break; sleep 0.1; done
sleep 1
MEM_SRV=$(awk -v a="$s0" -v b="$(rss_kib "$spid")" 'BEGIN{printf "%.1f", (b-a)/40}')
MEM_CLI=$(awk -v a="$c0" -v b="$(rss_kib "$cpid")" 'BEGIN{printf "%.1f", (b-a)/40}')
MEM_UP=$(mem_pools)

median() { # SECTION TARGET PARAM
	awk -F'\t' -v s="$1" -v t="$2" -v p="$3" '$1==s && $2==t && $3==p {print $4}' "$RES" |
		sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="n/a"||b=="n/a"||b==0) print "n/a"; else printf "%.2f", a/b }'; }

{
	echo "## Tunnel benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $REPS interleaved reps, ${SECS}s each, pool $POOL)"
	echo
	echo "| workload | direct | natx forward | 2 natx forwards | natx tunnel | tunnel noise | haproxy | tunnel / forward | tunnel / 2 forwards | tunnel / haproxy | noise / tunnel |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	for p in P1 P4; do
		d=$(median tcp direct $p) n=$(median tcp natx $p) n2=$(median tcp natx2 $p)
		u=$(median tcp tunnel $p) h=$(median tcp haproxy $p) z=$(median tcp noise $p)
		echo "| TCP Gbit/s, $p | $d | $n | $n2 | $u | $z | $h | $(ratio "$u" "$n") | $(ratio "$u" "$n2") | $(ratio "$u" "$h") | $(ratio "$z" "$u") |"
	done
	d=$(median conn direct -) n=$(median conn natx -) n2=$(median conn natx2 -)
	u=$(median conn tunnel -) h=$(median conn haproxy -) z=$(median conn noise -)
	echo "| connections/s (64 B echo) | $d | $n | $n2 | $u | $z | $h | $(ratio "$u" "$n") | $(ratio "$u" "$n2") | $(ratio "$u" "$h") | $(ratio "$z" "$u") |"
	d=$(median udp direct -) n=$(median udp natx -) u=$(median udp tunnel -) z=$(median udp noise -)
	echo "| UDP echo packets/s (64 B, window 256) | $d | $n | - | $u | $z | - | $(ratio "$u" "$n") | - | - | $(ratio "$z" "$u") |"
	echo "| memory per idle TCP service (RSS growth / 40 services, pool 4 each, plaintext) | server ${MEM_SRV} KiB | client ${MEM_CLI} KiB | ($MEM_UP of 41 pools full) | | | | | | |"
	echo
	echo "tunnel server counters after the run: $TSTATE"
} | tee "${OUT:-/dev/null}"
