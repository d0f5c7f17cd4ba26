#!/usr/bin/env bash
# natxd + natxctl end to end on embedded defaults (no config file): every natxctl command,
# human and --json output, exit codes, --init-db, reload (natxctl and SIGHUP, a bad config is
# rejected and the old one stays), a second natxd refused, permission check for mutating
# commands (when root can drop to nobody). Works with or without natx-engine built.
. "$(dirname "$0")/control_lib.sh"

# --init-db creates and migrates, then exits
"$NATXD" --state-dir "$T/state" --init-db >"$T/out" || fail "--init-db"
[ -f "$T/state/natx.db" ] || fail "database not created"
# The version it reports is the one the file has, and every migration so far ran.
SCHEMA=$(sqlite3 "$T/state/natx.db" 'PRAGMA user_version')
[ "$SCHEMA" -ge 3 ] || fail "schema version $SCHEMA"
grep -q "at schema version $SCHEMA\$" "$T/out" || fail "--init-db output: $(cat "$T/out")"

cat >"$T/natx.conf" <<CONF
[server]
address = 127.0.0.1:0
[selection]
connect_rate = 1
connect_burst = 2
CONF
start_natxd --config "$T/natx.conf"

# read-only commands, human and JSON
for c in status services health metrics version "engine stats" "forward list"; do
	# shellcheck disable=SC2086
	expect_status 0 ctl $c
	# shellcheck disable=SC2086
	ctl --json $c | jq -e '.v == 1 and .ok == true' >/dev/null || fail "--json $c"
done
ctl status | grep -q "^socket *$SOCK" || fail "status table: $(ctl status)"
ctl --json status | jq -e --argjson v "$SCHEMA" '.status.schema_version == $v and
	.status.services == 0' >/dev/null ||
	fail "status json"
ctl services | grep -q "no services registered" || fail "services table"
ctl --json health | jq -e '.overall == "unhealthy" and (.services | length) == 0' >/dev/null ||
	fail "health json"
ctl --json metrics | jq -e '.metrics.total.connections_attempted == 0' >/dev/null ||
	fail "metrics json"

# connect: no adapter is registered in this build -> service_unavailable, exit 10
expect_status 10 ctl connect node-1
grep -q "service_unavailable" "$T/err" || fail "connect error text: $(cat "$T/err")"
ctl --json metrics | jq -e '.metrics.total.connections_attempted == 0' >/dev/null ||
	fail "no service was tried, nothing may be counted"
# per-client rate limit (burst 2 at 1/s): connects in a quick row soon hit it (exit 16); the
# loop is bounded and does not depend on how fast this machine is
limited=0
for _ in $(seq 1 50); do
	got=0
	ctl connect node-1 2>"$T/err" || got=$?
	if [ "$got" = 16 ]; then
		limited=1
		break
	fi
	[ "$got" = 10 ] || fail "connect exited $got: $(cat "$T/err")"
done
[ "$limited" = 1 ] || fail "rate limit never hit"
grep -q "rate_limited" "$T/err" || fail "rate limit: $(cat "$T/err")"
# connection history is recorded in SQLite
[ "$(sqlite3 "$T/state/natx.db" 'SELECT count(*) FROM connection_history')" -ge 2 ] ||
	fail "connection history"

# bad forward spec -> invalid_argument (4); removing an unknown forward -> not_found (14)
expect_status 4 ctl forward add "tcp:nope"
grep -q "invalid_argument" "$T/err" || fail "bad spec: $(cat "$T/err")"
expect_status 14 ctl forward rm 99
expect_status 14 ctl forward rm "tcp:127.0.0.1:1=127.0.0.1:2"

# natxctl usage errors (2), unknown command (2), unreachable daemon (3), --help everywhere (0)
expect_status 2 "$NATXCTL" --socket "$SOCK"
expect_status 2 ctl frobnicate
expect_status 2 ctl connect
expect_status 2 ctl status extra
expect_status 3 "$NATXCTL" --socket "$T/nope.sock" status
expect_status 0 "$NATXCTL" --help
grep -q "forward add" "$T/out" || fail "--help lists commands"
for c in status services health metrics connect "engine stats" "forward add" "forward list" \
	"forward rm" reload version; do
	# shellcheck disable=SC2086
	expect_status 0 ctl $c --help
	grep -q "usage: natxctl" "$T/out" || fail "$c --help"
done

# reload through natxctl and SIGHUP; a broken config is rejected, the old one stays
expect_status 0 ctl reload
ctl --json status | jq -e '.status.reloads == 1' >/dev/null || fail "reload count"
printf '[selection]\nconnect_rate = 5\n' >"$T/natx.conf"
kill -HUP "$NATXD_PID"
for _ in $(seq 1 50); do
	[ "$(ctl --json status | jq .status.reloads)" = 2 ] && break
	sleep 0.05
done
[ "$(ctl --json status | jq .status.reloads)" = 2 ] || fail "SIGHUP reload"
printf '[selection]\nconnect_rate = lots\n' >"$T/natx.conf"
expect_status 15 ctl reload
grep -q "natx.conf:2: selection.connect_rate = 'lots'" "$T/err" || fail "reload error: $(cat "$T/err")"
kill -HUP "$NATXD_PID"
sleep 0.3
kill -0 "$NATXD_PID" || fail "natxd died on a bad SIGHUP reload"
ctl --json status | jq -e '.status.reloads == 2 and (.status.reload_error | test("natx.conf:2"))' \
	>/dev/null || fail "bad reload must keep the old config"

# a second natxd on the same socket is refused, the first keeps serving
expect_status 1 "$NATXD" --socket "$SOCK" --state-dir "$T/state2" --listen off
grep -q "another natxd" "$T/err" || fail "second natxd: $(cat "$T/err")"
expect_status 0 ctl version

# mutating commands need root, natxd's user or the control group
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$T" "$T/run"
	got=0
	setpriv --reuid 65534 --regid 65534 --clear-groups "$NATXCTL" --socket "$SOCK" reload \
		>"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 5 ] || fail "unprivileged reload exited $got: $(cat "$T/err")"
	grep -q permission_denied "$T/err" || fail "permission text"
	setpriv --reuid 65534 --regid 65534 --clear-groups "$NATXCTL" --socket "$SOCK" status \
		>/dev/null || fail "read-only commands are open to everyone"
	# control.group (applied by reload): primary group, then a supplementary group (SO_PEERGROUPS)
	printf '[control]\ngroup = nogroup\n' >"$T/natx.conf"
	expect_status 0 ctl reload
	as() { setpriv --reuid 65534 "$@" "$NATXCTL" --socket "$SOCK" reload >"$T/out" 2>"$T/err"; }
	as --regid 65534 --clear-groups || fail "primary group member refused: $(cat "$T/err")"
	as --regid 1 --groups 65534 || fail "supplementary group member refused: $(cat "$T/err")"
	got=0
	as --regid 1 --clear-groups || got=$?
	[ "$got" = 5 ] || fail "non-member exited $got"
	printf '[control]\ngroup = no-such-group-natx\n' >"$T/natx.conf"
	expect_status 15 ctl reload
	grep -q "no group named 'no-such-group-natx'" "$T/err" || fail "bad group: $(cat "$T/err")"
	# still a member (connect is mutating: permitted, then unavailable = 10, not denied = 5)
	got=0
	setpriv --reuid 65534 --regid 65534 --clear-groups "$NATXCTL" --socket "$SOCK" connect n \
		>"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 10 ] || fail "a rejected reload must keep the old group (exit $got: $(cat "$T/err"))"
else
	echo "note: not root, the SO_PEERCRED refusal is covered only for natxd's own uid"
fi

# clean stop: socket removed, exit 0
kill -TERM "$NATXD_PID"
wait "$NATXD_PID" || fail "natxd exit status $?"
[ ! -e "$SOCK" ] || fail "socket left behind"
echo "control_e2e: ok"
