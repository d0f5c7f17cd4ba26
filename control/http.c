// SPDX-License-Identifier: MIT
/* HTTP API on libmicrohttpd (control/http.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "ctl_server.h"
#include "daemon.h"
#include "http.h"
#include "p2p_svc.h"
#include "udpx_ctl.h"
#include "l402_http.h"
#include "natx/err.h"
#include "natx/log.h"

#define MOD "http"

struct http_server {
	struct ev_handler ev; /* first: natxd's epoll points here */
	struct MHD_Daemon *mhd;
	struct natxd *d;
	int epfd;
	int mhd_fd;
};

/* Per-request state, allocated on the first callback of a request. */
struct http_req {
	size_t len;
	bool too_big;
	char body[CTL_HTTP_BODY_MAX + 1];
};

static enum MHD_Result http_send(struct MHD_Connection *conn, unsigned status, char *body,
				 const char *type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body) {
		return MHD_NO;
	}
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* http_json - send @o (freed) as JSON with @status. */
static enum MHD_Result http_json(struct MHD_Connection *conn, unsigned status, cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	char *line;

	cJSON_Delete(o);
	if (!s) {
		return MHD_NO;
	}
	line = realloc(s, strlen(s) + 2);
	if (!line) {
		free(s);
		return MHD_NO;
	}
	strcat(line, "\n");
	return http_send(conn, status, line, "application/json");
}

static enum MHD_Result http_error(struct MHD_Connection *conn, int err, const char *msg)
{
	const struct ctl_errmap *m = ctl_err_by_err(err);
	cJSON *o = cJSON_CreateObject();
	cJSON *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;

	if (!e) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	cJSON_AddStringToObject(e, "code", m->code);
	cJSON_AddStringToObject(e, "message", msg ? msg : natx_strerror(err));
	return http_json(conn, (unsigned)m->http_status, o);
}

static void http_client_key(struct MHD_Connection *conn, char *key, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip,
				  sizeof(ip));
		} else if (sa->sa_family == AF_INET6) {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
				  sizeof(ip));
		}
	}
	snprintf(key, len, "ip:%s", ip);
}

/* http_client_local - the client connected from this host (127.0.0.0/8 or ::1). */
static bool http_client_local(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (sa && sa->sa_family == AF_INET) {
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	}
	return sa && sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* ---- routes ------------------------------------------------------------------------------ */

static enum MHD_Result http_health(struct http_server *h, struct MHD_Connection *conn)
{
	struct natxd *d = h->d;
	cJSON *o = cJSON_CreateObject();
	cJSON *flags = natxd_service_flags_json(d);
	uint64_t now = d->clk->now_ms(d->clk), wall = d->clk->wall_s(d->clk);
	bool degraded = d->eng.state != ENGINE_UP;

	if (!o || !flags) {
		cJSON_Delete(o);
		cJSON_Delete(flags);
		return MHD_NO;
	}
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];

		degraded |= health_eval(&s->health, now, wall, s->ops->operational(s->ctx)) !=
			    HEALTH_HEALTHY;
	}
	cJSON_AddStringToObject(o, "status", degraded ? "degraded" : "healthy");
	cJSON_AddStringToObject(o, "version", NATX_VERSION);
	cJSON_AddNumberToObject(o, "uptime_s", (double)(wall - d->started_s));
	cJSON_AddStringToObject(o, "engine", engine_sup_state_name(d->eng.state));
	cJSON_AddItemToObject(o, "nat_traversal", flags);
	return http_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result http_services(struct http_server *h, struct MHD_Connection *conn)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *a = natxd_services_json(h->d);

	if (!o || !a) {
		cJSON_Delete(o);
		cJSON_Delete(a);
		return MHD_NO;
	}
	cJSON_AddItemToObject(o, "services", a);
	return http_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result http_connect(struct http_server *h, struct MHD_Connection *conn,
				    struct http_req *rq)
{
	struct svc_request r = { 0 };
	struct svc_conn_info ci;
	struct svc *used;
	char key[CTL_CALLER_KEY_MAX], msg[256];
	const cJSON *t, *pl, *ap, *lo, *sv;
	char cmsg[CTL_MSG_MAX];
	cJSON *body, *o;
	int rc;

	if (rq->too_big) {
		return http_error(conn, -NATX_E_TOO_BIG, "request body larger than 16384 bytes");
	}
	body = cJSON_ParseWithLength(rq->body, rq->len);
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		return http_error(conn, -NATX_E_PROTO, "body must be a JSON object");
	}
	t = cJSON_GetObjectItemCaseSensitive(body, "target_node_id");
	pl = cJSON_GetObjectItemCaseSensitive(body, "prefer_libp2p");
	ap = cJSON_GetObjectItemCaseSensitive(body, "allow_payment");
	if (!cJSON_IsString(t) || !t->valuestring[0] || strlen(t->valuestring) >= CTL_TARGET_MAX ||
	    (pl && !cJSON_IsBool(pl)) || (ap && !cJSON_IsBool(ap))) {
		cJSON_Delete(body);
		return http_error(conn, -EINVAL,
				  "need \"target_node_id\" (string) and optional booleans "
				  "\"prefer_libp2p\", \"allow_payment\"");
	}
	r.target = t->valuestring;
	r.prefer_libp2p = cJSON_IsTrue(pl);
	r.allow_payment = cJSON_IsTrue(ap);
	http_client_key(conn, key, sizeof(key));
	lo = cJSON_GetObjectItemCaseSensitive(body, "local");
	sv = cJSON_GetObjectItemCaseSensitive(body, "service");
	if (lo) {
		/* Opening a port on this host is for local callers, like the control socket. */
		if (!cJSON_IsString(lo) || strlen(lo->valuestring) > 63 ||
		    (sv && (!cJSON_IsString(sv) || strlen(sv->valuestring) >= CONNS_SERVICE_MAX))) {
			cJSON_Delete(body);
			return http_error(conn, -EINVAL,
					  "\"local\" must be host:port and \"service\" a name");
		}
		if (!http_client_local(conn)) {
			cJSON_Delete(body);
			return http_error(conn, -EPERM,
					  "\"local\" is accepted from this host's loopback only");
		}
		o = cJSON_CreateObject();
		if (!o) {
			cJSON_Delete(body);
			return MHD_NO;
		}
		rc = conns_open(h->d, &r, key, sv ? sv->valuestring : NULL, lo->valuestring, o,
				cmsg);
		cJSON_Delete(body);
		if (rc) {
			cJSON_Delete(o);
			return http_error(conn, rc, cmsg);
		}
		return http_json(conn, MHD_HTTP_OK, o);
	}
	rc = natxd_connect(h->d, &r, key, &ci, &used, msg);
	cJSON_Delete(body);
	if (rc) {
		return http_error(conn, rc, msg);
	}
	o = cJSON_CreateObject();
	if (!o) {
		return MHD_NO;
	}
	cJSON_AddItemToObject(o, "connection_info", natxd_conn_info_json(&ci));
	return http_json(conn, MHD_HTTP_OK, o);
}

/* http_register - POST /api/rathole/proxy/register (l402_http.c does the work). */
static enum MHD_Result http_register(struct http_server *h, struct MHD_Connection *conn,
				     struct http_req *rq)
{
	const char *authz =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	struct l402_http_reply *out = malloc(sizeof(*out));
	char key[CTL_CALLER_KEY_MAX], *s, *line;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!out) {
		return MHD_NO;
	}
	http_client_key(conn, key, sizeof(key));
	l402_http_register(&h->d->pay, key, authz, rq->body, rq->len, rq->too_big, out);
	s = out->body ? cJSON_PrintUnformatted(out->body) : NULL;
	cJSON_Delete(out->body);
	line = s ? realloc(s, strlen(s) + 2) : NULL;
	if (!line) {
		free(s);
		free(out);
		return MHD_NO;
	}
	strcat(line, "\n");
	r = MHD_create_response_from_buffer(strlen(line), line, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(line);
		free(out);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	/* both challenges, as aperture sends them: newer clients read L402, older ones LSAT */
	if (out->www_lsat[0]) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, out->www_lsat);
	}
	if (out->www_l402[0]) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, out->www_l402);
	}
	ret = MHD_queue_response(conn, out->status, r);
	MHD_destroy_response(r);
	free(out);
	return ret;
}

static enum MHD_Result http_status(struct http_server *h, struct MHD_Connection *conn)
{
	cJSON *o = natxd_status_json(h->d);
	cJSON *flags = natxd_service_flags_json(h->d);

	if (!o || !flags) {
		cJSON_Delete(o);
		cJSON_Delete(flags);
		return MHD_NO;
	}
	cJSON_AddItemToObject(o, "nat_traversal", flags);
	return http_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result http_components(struct http_server *h, struct MHD_Connection *conn)
{
	struct natxd *d = h->d;
	cJSON *o = cJSON_CreateObject(), *c, *st, *ctl;

	if (!o) {
		return MHD_NO;
	}
	c = cJSON_AddObjectToObject(o, "config");
	st = cJSON_AddObjectToObject(o, "store");
	ctl = cJSON_AddObjectToObject(o, "control_socket");
	if (!c || !st || !ctl) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	cJSON_AddStringToObject(c, "file", d->cfg.file);
	cJSON_AddBoolToObject(c, "enable_libp2p", d->cfg.enable_libp2p);
	cJSON_AddBoolToObject(c, "enable_rathole", d->cfg.enable_rathole);
	cJSON_AddBoolToObject(c, "enable_hole_punching", d->cfg.enable_hole_punching);
	cJSON_AddBoolToObject(c, "enable_relay_discovery", d->cfg.enable_relay_discovery);
	cJSON_AddStringToObject(c, "libp2p_listen_addr", d->cfg.libp2p_listen_addr);
	cJSON_AddStringToObject(c, "libp2p_bootstrap_peers", d->cfg.libp2p_bootstrap_peers);
	cJSON_AddStringToObject(c, "rathole_server_address", d->cfg.rathole_server_address);
	cJSON_AddStringToObject(c, "rathole_client_address", d->cfg.rathole_client_address);
	cJSON_AddStringToObject(c, "rathole_config_file", d->cfg.rathole_config_file);
	if (d->pay.be) {
		cJSON_AddItemToObject(o, "payments", l402_svc_status_json(&d->pay));
	}
	cJSON_AddNumberToObject(c, "reloads", d->reloads);
	cJSON_AddStringToObject(c, "reload_error", d->reload_error);
	cJSON_AddStringToObject(st, "path", d->cfg.database);
	cJSON_AddNumberToObject(st, "schema_version", store_version(&d->st));
	cJSON_AddNumberToObject(st, "connection_history_rows",
				(double)store_history_count(&d->st, false));
	cJSON_AddStringToObject(ctl, "path", d->ctl.path);
	cJSON_AddNumberToObject(ctl, "clients", d->ctl.nclients);
	cJSON_AddNumberToObject(ctl, "requests", (double)d->ctl.requests);
	cJSON_AddNumberToObject(ctl, "rejected", (double)d->ctl.rejected);
	cJSON_AddItemToObject(o, "engine", natxd_engine_json(d, true));
	cJSON_AddItemToObject(o, "services", natxd_services_json(d));
	cJSON_AddItemToObject(o, "nat_traversal", natxd_service_flags_json(d));
	return http_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result http_reachability(struct http_server *h, struct MHD_Connection *conn)
{
	struct natxd *d = h->d;
	const char *target = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "target");
	uint64_t now = d->clk->now_ms(d->clk);
	cJSON *o = cJSON_CreateObject(), *fw, *sv;

	if (!o) {
		return MHD_NO;
	}
	if (target && (!target[0] || strlen(target) >= CTL_TARGET_MAX)) {
		cJSON_Delete(o);
		return http_error(conn, -EINVAL, "target must be 1..255 bytes");
	}
	cJSON_AddStringToObject(o, "http", d->http_bound);
	if (d->cfg.enable_libp2p) {
		cJSON_AddStringToObject(o, "libp2p_listen_addr", d->cfg.libp2p_listen_addr);
	} else {
		cJSON_AddNullToObject(o, "libp2p_listen_addr");
	}
	fw = cJSON_AddArrayToObject(o, "forwards");
	sv = cJSON_AddArrayToObject(o, "services");
	if (!fw || !sv) {
		cJSON_Delete(o);
		return MHD_NO;
	}
	for (unsigned i = 0; i < d->eng.nfwd; i++) {
		cJSON *e = cJSON_CreateObject();

		if (!e) {
			break;
		}
		cJSON_AddItemToArray(fw, e);
		cJSON_AddStringToObject(e, "spec", d->eng.fwd[i].spec);
		cJSON_AddBoolToObject(e, "listening", d->eng.fwd[i].id != 0);
	}
	if (target) {
		cJSON_AddStringToObject(o, "target", target);
	}
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];
		cJSON *e = cJSON_CreateObject();

		if (!e) {
			break;
		}
		cJSON_AddItemToArray(sv, e);
		cJSON_AddStringToObject(e, "type", s->ops->type);
		cJSON_AddBoolToObject(e, "operational", s->ops->operational(s->ctx));
		cJSON_AddStringToObject(e, "breaker",
					breaker_state_name(breaker_state_at(&s->br, now)));
		if (target) {
			cJSON_AddBoolToObject(e, "can_reach", s->ops->can_reach(s->ctx, target));
		}
	}
	return http_json(conn, MHD_HTTP_OK, o);
}

static enum MHD_Result http_metrics_json(struct http_server *h, struct MHD_Connection *conn)
{
	return http_json(conn, MHD_HTTP_OK, natxd_metrics_json(h->d));
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

static void prom_metrics(FILE *f, const char *svc, const struct metrics *m, unsigned active)
{
	uint64_t cum = 0;

	fprintf(f, "natx_connections_attempted_total{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->attempted);
	fprintf(f, "natx_connections_successful_total{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->succeeded);
	fprintf(f, "natx_connections_failed_total{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->failed);
	fprintf(f, "natx_upgrade_attempts_total{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->upgrade_attempts);
	fprintf(f, "natx_upgrade_successes_total{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->upgrade_successes);
	fprintf(f, "natx_payment_sats_total{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->payment_sats);
	fprintf(f, "natx_active_connections{service=\"%s\"} %u\n", svc, active);
	for (unsigned i = 0; i < METRICS_LAT_BUCKETS; i++) {
		cum += m->lat_bucket[i];
		if (i < METRICS_LAT_BUCKETS - 1) {
			fprintf(f,
				"natx_connect_latency_ms_bucket{service=\"%s\",le=\"%u\"} %llu\n",
				svc, metrics_lat_bounds_ms[i], (unsigned long long)cum);
		} else {
			fprintf(f,
				"natx_connect_latency_ms_bucket{service=\"%s\",le=\"+Inf\"} %llu\n",
				svc, (unsigned long long)cum);
		}
	}
	fprintf(f, "natx_connect_latency_ms_sum{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->lat_sum_ms);
	fprintf(f, "natx_connect_latency_ms_count{service=\"%s\"} %llu\n", svc,
		(unsigned long long)m->lat_count);
}

char *http_prometheus(struct natxd *d)
{
	static const char *const help[][3] = {
		{ "natx_connections_attempted_total", "counter", "connect attempts" },
		{ "natx_connections_successful_total", "counter", "successful connects" },
		{ "natx_connections_failed_total", "counter", "failed connects" },
		{ "natx_upgrade_attempts_total", "counter", "relayed to direct upgrade attempts" },
		{ "natx_upgrade_successes_total", "counter", "successful upgrades" },
		{ "natx_payment_sats_total", "counter", "payments made for connections, sats" },
		{ "natx_active_connections", "gauge", "connections carried now" },
		{ "natx_connect_latency_ms", "histogram", "connect latency, milliseconds" },
	};
	uint64_t now = d->clk->now_ms(d->clk), wall = d->clk->wall_s(d->clk);
	struct metrics total;
	unsigned active;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		return NULL;
	}
	for (unsigned i = 0; i < sizeof(help) / sizeof(help[0]); i++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", help[i][0], help[i][2], help[i][0],
			help[i][1]);
	}
	/* service="all" is the sum over services (including ones unregistered since start). */
	svc_metrics_total(&d->svcs, &total, &active);
	prom_metrics(f, "all", &total, active);
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];
		struct svc_status st = { 0 };

		s->ops->status(s->ctx, &st);
		prom_metrics(f, s->ops->type, &s->m, st.active_connections);
	}
	fprintf(f, "# HELP natx_service_up 1 when the service is operational\n"
		   "# TYPE natx_service_up gauge\n");
	fprintf(f, "# HELP natx_service_health 1 for the service's current health state\n"
		   "# TYPE natx_service_health gauge\n");
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];
		bool op = s->ops->operational(s->ctx);
		enum health_state hs = health_eval(&s->health, now, wall, op);

		fprintf(f, "natx_service_up{service=\"%s\"} %d\n", s->ops->type, op);
		for (int k = HEALTH_HEALTHY; k <= HEALTH_UNHEALTHY; k++) {
			fprintf(f, "natx_service_health{service=\"%s\",state=\"%s\"} %d\n",
				s->ops->type, health_state_name((enum health_state)k),
				(int)hs == k);
		}
	}
	natxd_p2p_relay_prom(d, f); /* natx_relay_*: circuit relay counters (p2p_svc.c) */
	natxd_udp_prom(d, f); /* natx_udp_*: UDP services between nodes (udpx_ctl.c) */
	fprintf(f,
		"# HELP natx_engine_up 1 when natx-engine is connected\n"
		"# TYPE natx_engine_up gauge\nnatx_engine_up %d\n",
		d->eng.state == ENGINE_UP);
	fprintf(f,
		"# HELP natx_engine_restarts_total engine (re)starts after the first\n"
		"# TYPE natx_engine_restarts_total counter\nnatx_engine_restarts_total %u\n",
		d->eng.restarts);
	fprintf(f,
		"# HELP natx_forwards forwards natxd wants running\n"
		"# TYPE natx_forwards gauge\nnatx_forwards %u\n",
		d->eng.nfwd);
	fprintf(f,
		"# HELP natx_ctl_requests_total control socket requests answered\n"
		"# TYPE natx_ctl_requests_total counter\nnatx_ctl_requests_total %llu\n",
		(unsigned long long)d->ctl.requests);
	if (d->pay.be) {
		l402_svc_prometheus(&d->pay, f);
	}
	bpf_mgr_prometheus(&d->bpf, f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static enum MHD_Result http_route(struct http_server *h, struct MHD_Connection *conn,
				  const char *url, const char *method, struct http_req *rq)
{
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
	bool post = !strcmp(method, MHD_HTTP_METHOD_POST);

	if (!strcmp(url, "/api/nat-traversal/connect")) {
		return post ? http_connect(h, conn, rq) :
			      http_error(conn, -EINVAL, "use POST with a JSON body");
	}
	if (!strcmp(url, "/api/rathole/proxy/register")) {
		return post ? http_register(h, conn, rq) :
			      http_error(conn, -EINVAL, "use POST with a JSON body");
	}
	if (rq->len || rq->too_big) {
		return http_error(conn, rq->too_big ? -NATX_E_TOO_BIG : -EINVAL,
				  "this resource takes no request body");
	}
	if (!get) {
		return http_error(conn, -EINVAL, "use GET");
	}
	if (!strcmp(url, "/api/health")) {
		return http_health(h, conn);
	}
	if (!strcmp(url, "/api/nat-traversal/services")) {
		return http_services(h, conn);
	}
	if (!strcmp(url, "/api/nat-traversal/connections")) {
		cJSON *o = conns_json(h->d);

		return o ? http_json(conn, MHD_HTTP_OK, o) : MHD_NO;
	}
	if (!strcmp(url, "/api/nat-traversal/status")) {
		return http_status(h, conn);
	}
	if (!strcmp(url, "/debug/nat-traversal/components")) {
		return http_components(h, conn);
	}
	if (!strcmp(url, "/debug/nat-traversal/reachability")) {
		return http_reachability(h, conn);
	}
	if (!strcmp(url, "/debug/nat-traversal/metrics") || !strcmp(url, "/api/metrics")) {
		return http_metrics_json(h, conn);
	}
	if (!strcmp(url, "/metrics")) {
		const char *fmt =
			MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");

		if (fmt && !strcmp(fmt, "json")) {
			return http_metrics_json(h, conn);
		}
		return http_send(conn, MHD_HTTP_OK, http_prometheus(h->d),
				 "text/plain; version=0.0.4; charset=utf-8");
	}
	return http_error(conn, -ENOENT, "no such resource");
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload_data,
				   size_t *upload_data_size, void **con_cls)
{
	struct http_req *rq = *con_cls;

	if (!rq) {
		rq = malloc(sizeof(*rq));
		if (!rq) {
			return MHD_NO;
		}
		rq->len = 0;
		rq->too_big = false;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (rq->len + *upload_data_size > CTL_HTTP_BODY_MAX) {
			rq->too_big = true;
		} else {
			memcpy(rq->body + rq->len, upload_data, *upload_data_size);
			rq->len += *upload_data_size;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	rq->body[rq->len] = '\0';
	pr_debug(MOD, "%s %s", method, url);
	return http_route(cls, conn, url, method, rq);
}

static void http_done(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	free(*con_cls);
	*con_cls = NULL;
}

static void http_event(struct ev_handler *ev, uint32_t events)
{
	http_server_run((struct http_server *)ev);
}

struct http_server *http_server_new(struct natxd *d, const char *addr, int epfd, char *bound,
				    size_t boundlen, int *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	struct epoll_event ev = { .events = EPOLLIN };
	char host[256], port[8], ip[INET6_ADDRSTRLEN];
	const union MHD_DaemonInfo *info;
	struct http_server *h;
	const char *colon = strrchr(addr, ':');
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	int gai;

	if (!colon || (size_t)(colon - addr) >= sizeof(host) || strlen(colon + 1) >= sizeof(port)) {
		*err = -EINVAL;
		return NULL;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	gai = getaddrinfo(host, port, &hints, &ai);
	if (gai) {
		pr_err(MOD, "server.address %s: %s", addr, gai_strerror(gai));
		*err = -EADDRNOTAVAIL;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		freeaddrinfo(ai);
		*err = -ENOMEM;
		return NULL;
	}
	h->ev.fn = http_event;
	h->d = d;
	h->epfd = epfd;
	if (ai->ai_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
	}
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_handle, h, MHD_OPTION_SOCK_ADDR,
				  ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED, http_done, NULL,
				  MHD_OPTION_CONNECTION_LIMIT, 128u, MHD_OPTION_CONNECTION_TIMEOUT,
				  30u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
				  MHD_OPTION_END);
	if (!h->mhd) {
		*err = -EADDRINUSE;
		goto free_server;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		*err = -EIO;
		goto stop_daemon;
	}
	h->mhd_fd = info->epoll_fd;
	ev.data.ptr = &h->ev;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, h->mhd_fd, &ev)) {
		*err = -errno;
		goto stop_daemon;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (ai->ai_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip,
			  sizeof(ip));
		snprintf(bound, boundlen, "[%s]:%u", ip, info ? info->port : 0);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof(ip));
		snprintf(bound, boundlen, "%s:%u", ip, info ? info->port : 0);
	}
	freeaddrinfo(ai);
	pr_info(MOD, "HTTP API listening on %s", bound);
	return h;

stop_daemon:
	MHD_stop_daemon(h->mhd);
free_server:
	freeaddrinfo(ai);
	free(h);
	return NULL;
}

void http_server_free(struct http_server *h)
{
	if (!h) {
		return;
	}
	epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->mhd_fd, NULL);
	MHD_stop_daemon(h->mhd);
	free(h);
}

int http_server_timeout_ms(struct http_server *h)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (MHD_get_timeout(h->mhd, &t) != MHD_YES) {
		return -1;
	}
	return t > 60000 ? 60000 : (int)t;
}

void http_server_run(struct http_server *h)
{
	MHD_run(h->mhd);
}
