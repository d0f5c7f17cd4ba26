#!/usr/bin/env bash
# Every HTTP endpoint of natxd with curl: status codes, content types, JSON shapes, error codes,
# body limits and Prometheus text. natxd listens on an ephemeral loopback port (SERVER_ADDRESS).
. "$(dirname "$0")/control_lib.sh"
command -v curl >/dev/null || { echo "skip: curl missing"; exit 77; }

SERVER_ADDRESS=127.0.0.1:0 NAT_TRAVERSAL_ENABLE_LIBP2P=true \
	NAT_TRAVERSAL_LIBP2P_LISTEN_ADDR=/ip4/127.0.0.1/tcp/0 start_natxd
H=http://$(http_addr)
[[ "$H" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "bound address $H"

get() { # PATH WANT-STATUS -> body in $T/body
	local code
	code=$(curl -s -o "$T/body" -w '%{http_code}' "$H$1")
	[ "$code" = "$2" ] || fail "GET $1: HTTP $code, want $2: $(cat "$T/body")"
}
post() { # PATH DATA WANT-STATUS
	local code
	code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$2" "$H$1")
	[ "$code" = "$3" ] || fail "POST $1: HTTP $code, want $3: $(cat "$T/body")"
}
jqb() { jq -e "$1" "$T/body" >/dev/null || fail "$2: $(cat "$T/body")"; }

get /api/health 200
jqb '.status == "healthy" or .status == "degraded"' "health status"
jqb '.nat_traversal.libp2p.enabled == true and .nat_traversal.libp2p.registered == true and
     .nat_traversal.libp2p.active_connections == 0' "health nat_traversal.libp2p"
jqb '.nat_traversal.rathole.enabled == false' "health nat_traversal.rathole"

get /api/nat-traversal/services 200
jqb '(.services | length) == 1 and .services[0].type == "libp2p" and
     .services[0].capabilities.direct == true and .services[0].capabilities.paid == false and
     .services[0].capabilities.tcp == true and (.services[0].detail | test("^peer 12D3KooW"))' \
	"services (the libp2p adapter)"

get /api/nat-traversal/status 200
jqb '.version and .engine.state and .nat_traversal.libp2p.enabled == true' "status"

get /debug/nat-traversal/components 200
jqb '.store.schema_version >= 3 and .control_socket.path and .engine.state and
     .config.enable_libp2p == true' "components"

get "/debug/nat-traversal/reachability?target=node-x" 200
jqb '.target == "node-x" and .libp2p_listen_addr and (.services | type == "array")' "reachability"

for p in /debug/nat-traversal/metrics /api/metrics "/metrics?format=json"; do
	get "$p" 200
	jqb '.total.connections_attempted == 0 and (.total.latency_histogram_ms | length) == 12' \
		"JSON metrics at $p"
done

curl -s -D "$T/hdr" -o "$T/body" "$H/metrics" || fail "GET /metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/hdr" || fail "prometheus content type"
grep -q '^# TYPE natx_connections_attempted_total counter' "$T/body" || fail "prometheus TYPE"
grep -q '^natx_connections_attempted_total{service="all"} 0$' "$T/body" || fail "prometheus total"
grep -q '^natx_connect_latency_ms_bucket{service="all",le="+Inf"} 0$' "$T/body" ||
	fail "prometheus histogram"
grep -q '^natx_engine_up [01]$' "$T/body" || fail "prometheus engine gauge"

# connect: the libp2p adapter only reaches multiaddrs with /p2p/ID; a bare node id is unknown
post /api/nat-traversal/connect '{"target_node_id":"node-1","prefer_libp2p":true}' 404
jqb '.error.code == "node_not_found" and (.error.message | test("node-1"))' "connect error"
# bad requests: bad JSON, wrong types, missing field, too big, wrong method, unknown path
post /api/nat-traversal/connect '{"target_node_id":' 400
jqb '.error.code == "bad_request"' "bad JSON"
post /api/nat-traversal/connect '[1,2]' 400
post /api/nat-traversal/connect '{"target_node_id":5}' 400
jqb '.error.code == "invalid_argument"' "wrong type"
post /api/nat-traversal/connect '{"prefer_libp2p":true}' 400
post /api/nat-traversal/connect '{"target_node_id":"n","prefer_libp2p":"yes"}' 400
head -c 20000 /dev/zero | tr '\0' ' ' >"$T/big"
code=$(curl -s -o "$T/body" -w '%{http_code}' --data-binary @"$T/big" "$H/api/nat-traversal/connect")
[ "$code" = 413 ] || fail "oversized body: HTTP $code"
jqb '.error.code == "too_big"' "too big"
get /api/nat-traversal/connect 400
get /no/such/path 404
jqb '.error.code == "not_found"' "404 code"
post /api/health '{}' 400

# natxd is still fine after all of that, and the failed connects are in the history
get /api/health 200
[ "$(sqlite3 "$T/state/natx.db" 'SELECT count(*) FROM connection_history')" -ge 1 ] ||
	fail "history"
echo "control_http: ok"
