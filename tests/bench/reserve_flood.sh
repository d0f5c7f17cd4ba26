#!/usr/bin/env bash
# bench-reserve-flood's accounting against a relay whose answers are known: the sans-IO hop
# server of tests/interop/relay_driver.c (default limits: 8 reservations per IP). 30
# connections, each its own identity, from 3 source addresses (127.0.0.2-4) -> exactly 24
# reserved (vouchers verified), 6 RESERVATION_REFUSED, none failed, all 24 still alive after
# being held; usage errors exit 2. Loopback only.
set -uo pipefail
: "${NATX_BIN:?}" "${NATX_BUILD:?}"
FLOOD=$NATX_BIN/bench-reserve-flood
RD=$NATX_BUILD/tests/natx_p2p_relay_interop
[ -x "$FLOOD" ] || { echo "FAIL: $FLOOD not built"; exit 1; }
[ -x "$RD" ] || { echo "SKIP: relay driver $RD not built"; exit 77; }
T=$(mktemp -d /tmp/rb-flood-test.XXXXXX)
RPID=""
cleanup() {
	[ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$T"/* 2>/dev/null | head -40; exit 1; }

"$RD" relay >"$T/relay.out" 2>&1 &
RPID=$!
for _ in $(seq 1 100); do grep -q '^listening ' "$T/relay.out" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening //p' "$T/relay.out")
[ -n "$ADDR" ] || fail "relay driver did not start"

timeout 60 "$FLOOD" --relay "$ADDR" --count 30 --src-ips 3 --conc 8 --hold 1 --timeout 30 \
	>"$T/flood.out" 2>"$T/flood.err" || fail "generator exit $?"
line=$(grep '^reserved ' "$T/flood.out")
[[ $line == *" ok=24 refused=6 failed=0 vouchers=24 "* ]] || fail "answers: $line"
[[ $line == *"first_refusal=RESERVATION_REFUSED "* ]] || fail "refusal status: $line"
grep -qx ready "$T/flood.out" || fail "no ready line"
grep -qx 'held alive=24 died=0' "$T/flood.out" || fail "held: $(grep '^held' "$T/flood.out")"
echo "PASS 30 identities from 3 addresses: 24 reserved (vouchers verified), 6 refused by the per-IP limit, 24 held"

"$FLOOD" --count 3 >/dev/null 2>&1
[ $? = 2 ] || fail "missing --relay: exit 2 expected"
"$FLOOD" --relay /ip4/127.0.0.1/tcp/1 --count 3 >/dev/null 2>&1
[ $? = 2 ] || fail "address without /p2p/: exit 2 expected"
"$FLOOD" --relay "$ADDR" --count 0 >/dev/null 2>&1
[ $? = 2 ] || fail "--count 0: exit 2 expected"
echo "PASS usage errors exit 2"
exit 0
