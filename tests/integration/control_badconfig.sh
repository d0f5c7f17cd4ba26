#!/usr/bin/env bash
# A bad configuration stops natxd with exit status 2 and FILE:LINE before anything starts
# (no socket, no database, no HTTP listener); bad environment and command-line values too.
. "$(dirname "$0")/control_lib.sh"

check_bad() { # FILE-CONTENT EXPECTED-MESSAGE
	printf '%b' "$1" >"$T/bad.conf"
	got=0
	"$NATXD" --config "$T/bad.conf" --socket "$SOCK" --state-dir "$T/state" \
		>"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 2 ] || fail "exit $got for: $1"
	grep -qF "$T/bad.conf:$2" "$T/err" || fail "message for '$1': $(cat "$T/err")"
	[ ! -e "$SOCK" ] || fail "socket created despite a bad config"
	[ ! -e "$T/state/natx.db" ] || fail "database created despite a bad config"
}

check_bad '[server]\naddress = 127.0.0.1:3001\nunknown_key = 1\n' "3: unknown key 'unknown_key' in section [server]"
check_bad '# comment\n[nat_traversal]\n\nenable_libp2p = sometimes\n' "4: nat_traversal.enable_libp2p = 'sometimes'"
check_bad '[forward]\nforward = tcp:0.0.0.0:80\n' "2: forward.forward = 'tcp:0.0.0.0:80'"
check_bad '[selection]\nretry_max = 99\n' "2: selection.retry_max = '99': expected an integer in [0, 10]"
check_bad 'garbage line\n' "1: syntax error"

got=0
NAT_TRAVERSAL_ENABLE_RATHOLE=maybe "$NATXD" --socket "$SOCK" --state-dir "$T/state" \
	2>"$T/err" || got=$?
[ "$got" = 2 ] || fail "bad env exit $got"
grep -q "environment NAT_TRAVERSAL_ENABLE_RATHOLE='maybe'" "$T/err" || fail "env message: $(cat "$T/err")"
got=0
"$NATXD" --socket "$SOCK" --state-dir "$T/state" --forward "udp:x" 2>"$T/err" || got=$?
[ "$got" = 2 ] || fail "bad --forward exit $got"
got=0
"$NATXD" --bogus-option 2>"$T/err" || got=$?
[ "$got" = 2 ] || fail "unknown option exit $got"
got=0
"$NATXD" --config "$T/missing.conf" 2>"$T/err" || got=$?
[ "$got" = 2 ] || fail "missing config exit $got"
# --check-config accepts the shipped example
"$NATXD" --check-config --config "$NATX_SRC/deploy/natx.conf.example" >/dev/null ||
	fail "example config rejected"
# a corrupt database is reported and never recreated
mkdir -p "$T/state"
printf 'not a database at all, definitely not sqlite format 3.........................' \
	>"$T/state/natx.db"
got=0
"$NATXD" --socket "$SOCK" --state-dir "$T/state" --listen off 2>"$T/err" || got=$?
[ "$got" = 1 ] || fail "corrupt db exit $got"
grep -q "corrupt or not an SQLite database" "$T/err" || fail "corrupt db message: $(cat "$T/err")"
grep -q "not a database at all" "$T/state/natx.db" || fail "corrupt database was modified"
echo "control_badconfig: ok"
