#!/usr/bin/env bash
# bench/matrix.sh - the NAT lab matrix (tests/lab/connect_matrix.sh) R times, summarised as a
# markdown section: per NAT pair the final path over the runs (direct rate), the time to direct
# (DCUtR upgrade duration from B's record: min / median / max over the runs that went direct)
# and the transfer rate through `connect --local` on the final path (median). A measurement, not a test:
# the matrix's own assertions still run each time and a failed run is counted, not hidden.
#
# usage: bench/matrix.sh [--reps N] [--out FILE]    (as root; NATX_BIN, default build/bin)
#   --reps N   runs (default 5)
#   --out F    the markdown section (default build/bench-matrix.md; also printed on stdout)
set -uo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
REPS=5
OUT=$SRC/build/bench-matrix.md
while [ $# -gt 0 ]; do
	case "$1" in
	--reps)
		REPS=$2
		shift 2
		;;
	--out)
		OUT=$2
		shift 2
		;;
	*)
		echo "usage: bench/matrix.sh [--reps N] [--out FILE]" >&2
		exit 2
		;;
	esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || {
	echo "bench/matrix.sh: --reps wants a positive number" >&2
	exit 2
}
export NATX_BIN=${NATX_BIN:-$SRC/build/bin} NATX_SRC=$SRC
W=$(mktemp -d /tmp/mx-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date -u '+%Y-%m-%d %H:%M')
failed=0
secs=()
for r in $(seq 1 "$REPS"); do
	echo "matrix run $r/$REPS" >&2
	s=$SECONDS
	MX_ROWS_OUT=$W/run$r.rows bash "$SRC/tests/lab/connect_matrix.sh" >"$W/run$r.log" 2>&1
	rc=$?
	secs+=($((SECONDS - s)))
	if [ $rc = 77 ]; then
		echo "bench/matrix.sh: skipped: $(grep SKIP "$W/run$r.log")" >&2
		exit 77
	fi
	if [ $rc != 0 ]; then
		failed=$((failed + 1))
		grep '^FAIL' "$W/run$r.log" | head -3 >&2
	fi
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
t1=$(date -u '+%H:%M')

# one line per pair and run (connect_matrix.sh): NAT_A NAT_B REQUIRED PATH TIME_MS FINAL_MIBS
# RELAY_MIB_BEFORE/AFTER_SWITCH RELAYED_AFTER_UPGRADE ATTEMPTS ERROR
cat "$W"/run*.rows 2>/dev/null | awk 'NF >= 9' >"$W/all"

{
	echo "## NAT lab matrix (issue 9)"
	echo
	echo "\`bench/matrix.sh --reps $REPS\`: \`tests/lab/connect_matrix.sh\` $REPS times on $t0-$t1 UTC,"
	echo "natx \`$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')\`, on $(nproc) CPUs"
	echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)),"
	echo "load average $load0 at the start, $load1 at the end; runs took ${secs[*]} s; failed runs:"
	echo "$failed of $REPS. Routed-core lab (tests/lab/natlab.sh), a natx relay on the public side,"
	echo "\`natxctl connect B --service sink --local\` from A knowing only B's /p2p-circuit address,"
	echo "64 MiB through the local port (paced at 8 MiB/s so that it spans the upgrade, SHA-256"
	echo "checked), then the DCUtR upgrade's outcome and a further 16 MiB (unpaced) on the final"
	echo "path. Time to direct = B's upgrade record (DCUtR exchange, the 1 s SYN retransmission"
	echo "that crosses the NATs, Noise + yamux); a failed upgrade = 3 attempts of 5 s (upgrade_timeout_ms). Final-path"
	echo "rate = the 16 MiB, relay and both sites' engines on the same 2 CPUs."
	echo
	echo "| NAT A | NAT B | required | direct runs | time to direct ms (min / median / max) | final path MiB/s (median) | upgrade attempts when relayed |"
	echo "|---|---|---|---|---|---|---|"
	for na in eim full sym; do
		for nb in eim full sym; do
			awk -v a="$na" -v b="$nb" '
			$1 == a && $2 == b {
				n++; want = $3
				if ($4 == "direct") { d[++nd] = $5 + 0 }
				m[n] = $6 + 0
				if ($4 == "relayed") att = $9
			}
			function med(v, k,   i, j, t) {
				for (i = 1; i <= k; i++)
					for (j = i + 1; j <= k; j++)
						if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
				return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
			}
			END {
				if (!n) { printf "| %s | %s | - | no data | | | |\n", a, b; exit }
				td = "-"
				if (nd) {
					md = med(d, nd) # sorts d
					td = sprintf("%d / %d / %d", d[1], md, d[nd])
				}
				printf "| %s | %s | %s | %d/%d | %s | %.1f | %s |\n", a, b, want, nd, n, td, med(m, n), att == "" ? "-" : att
			}' "$W/all"
		done
	done
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
