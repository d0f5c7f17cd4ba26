// SPDX-License-Identifier: MIT
/* natxd's libp2p identity, engine options and commands (see p2p_svc.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p/multiaddr.h"
#include "p2p_key.h"
#include "p2p_svc.h"

#define MOD "natxd"

/* @msg of a handler has room for CTL_MSG_MAX bytes (ctl_cmds.c). */
enum { P2P_ADDR_MAX = 1024, P2P_CALL_MS = 12000, P2P_PING_MAX = 32 };

/* p2p_listen_check - 0 when @addr is /ip4|ip6/ADDR/tcp/PORT (what the engine can bind). */
static int p2p_listen_check(const char *addr)
{
	uint8_t bin[MADDR_MAX_LEN];
	struct sockaddr_storage ss;
	size_t len;
	int has_id = 0;

	if (maddr_from_text(addr, bin, sizeof(bin), &len) ||
	    maddr_to_sockaddr(bin, len, &ss, NULL, &has_id) || has_id) {
		return -EINVAL;
	}
	return 0;
}

void natxd_p2p_setup(struct natxd *d)
{
	char path[PATH_MAX];

	d->p2p_peer[0] = '\0';
	d->p2p_error[0] = '\0';
	d->eng.p2p_key_file[0] = '\0';
	if (!d->cfg.enable_libp2p) {
		return;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", d->cfg.state_dir, P2P_KEY_FILE_NAME) >=
	    sizeof(path)) {
		snprintf(d->p2p_error, sizeof(d->p2p_error), "state_dir too long");
		return;
	}
	if (p2p_listen_check(d->cfg.libp2p_listen_addr)) {
		snprintf(d->p2p_error, sizeof(d->p2p_error),
			 "libp2p_listen_addr '%.100s': need /ip4|ip6/ADDR/tcp/PORT",
			 d->cfg.libp2p_listen_addr);
		pr_err(MOD, "libp2p off: %s", d->p2p_error);
		return;
	}
	if (p2p_key_ensure(path, d->p2p_peer, d->p2p_error, sizeof(d->p2p_error))) {
		d->p2p_peer[0] = '\0';
		pr_err(MOD, "libp2p off: %s", d->p2p_error);
		return;
	}
	snprintf(d->eng.p2p_key_file, sizeof(d->eng.p2p_key_file), "%s", path);
	snprintf(d->eng.p2p_listen, sizeof(d->eng.p2p_listen), "%s", d->cfg.libp2p_listen_addr);
	pr_info(MOD, "libp2p peer %s (key %s), listen %s", d->p2p_peer, path,
		d->cfg.libp2p_listen_addr);
}

/* p2p_engine_err - map an engine error reply to a natxd code, with its message in @msg. */
static int p2p_engine_err(int rc, const cJSON *r, char *msg)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
	const char *c = cJSON_IsString(code) ? code->valuestring : "";

	snprintf(msg, CTL_MSG_MAX, "%s", engine_sup_error_text(r, natx_strerror(rc)));
	if (rc == -NATX_E_UNAVAILABLE) {
		snprintf(msg, CTL_MSG_MAX, "the engine is not running");
		return rc;
	}
	if (!strcmp(c, "p2p_off")) {
		return -NATX_E_UNAVAILABLE;
	}
	if (!strcmp(c, "bad_addr")) {
		return -EINVAL;
	}
	if (!strcmp(c, "timeout") || rc == -ETIMEDOUT) {
		return -ETIMEDOUT;
	}
	if (!strcmp(c, "peer_mismatch")) {
		return -NATX_E_AUTH; /* Noise authenticated another peer ID than the dialled one */
	}
	if (!strcmp(c, "exists")) {
		return -EEXIST;
	}
	if (!strcmp(c, "not_found")) {
		return -ENOENT;
	}
	if (!strcmp(c, "addr_in_use")) {
		return -EADDRINUSE;
	}
	if (!strcmp(c, "bad_request")) {
		return -EINVAL;
	}
	if (!strcmp(c, "busy") || !strcmp(c, "limit")) {
		return -NATX_E_LIMIT;
	}
	return -NATX_E_CONNECT;
}

int p2p_engine_call(struct natxd *d, cJSON *req, unsigned ms, cJSON *reply, char *msg)
{
	unsigned saved = d->eng.timeout_ms;
	cJSON *r = NULL, *item;
	int rc;

	if (!d->cfg.enable_libp2p) {
		snprintf(msg, CTL_MSG_MAX, "libp2p is disabled (NAT_TRAVERSAL_ENABLE_LIBP2P)");
		cJSON_Delete(req);
		return -NATX_E_UNAVAILABLE;
	}
	if (!d->p2p_peer[0]) {
		snprintf(msg, CTL_MSG_MAX, "libp2p is off: %s", d->p2p_error);
		cJSON_Delete(req);
		return -NATX_E_UNAVAILABLE;
	}
	if (ms > d->eng.timeout_ms) {
		d->eng.timeout_ms = ms;
	}
	rc = engine_sup_call(&d->eng, req, &r);
	d->eng.timeout_ms = saved;
	cJSON_Delete(req);
	if (rc) {
		rc = p2p_engine_err(rc, r, msg);
		cJSON_Delete(r);
		return rc;
	}
	while ((item = r->child)) {
		cJSON_DetachItemViaPointer(r, item);
		if (!strcmp(item->string, "v") || !strcmp(item->string, "id") ||
		    !strcmp(item->string, "ok")) {
			cJSON_Delete(item);
			continue;
		}
		cJSON_AddItemToObject(reply, item->string, item);
	}
	cJSON_Delete(r);
	return 0;
}

int natxd_cmd_peer(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject();

	if (!q || !cJSON_AddStringToObject(q, "cmd", "p2p.peer")) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	return p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
}

/* p2p_dial_req - {"cmd":@cmd,"addr":...} from the request's "addr". */
static cJSON *p2p_dial_req(const struct ctl_req *req, const char *cmd, char *msg, int *rc)
{
	const char *addr = ctl_req_str(req, "addr", P2P_ADDR_MAX - 1, rc);
	cJSON *q;

	if (!addr) {
		snprintf(msg, CTL_MSG_MAX,
			 "\"addr\" must be a multiaddr /ip4|ip6/A/tcp/P[/p2p/ID]");
		*rc = -EINVAL;
		return NULL;
	}
	q = cJSON_CreateObject();
	if (!q || !cJSON_AddStringToObject(q, "cmd", cmd) ||
	    !cJSON_AddStringToObject(q, "addr", addr)) {
		cJSON_Delete(q);
		*rc = -ENOMEM;
		return NULL;
	}
	return q;
}

int natxd_cmd_ping(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		   cJSON *reply, char *msg)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(req->root, "count");
	double count = 1;
	cJSON *q;
	int rc;

	if (n) {
		if (!cJSON_IsNumber(n) || n->valuedouble < 1 || n->valuedouble > P2P_PING_MAX ||
		    n->valuedouble != (double)(int)n->valuedouble) {
			snprintf(msg, CTL_MSG_MAX, "\"count\" must be an integer 1..%d",
				 P2P_PING_MAX);
			return -EINVAL;
		}
		count = n->valuedouble;
	}
	q = p2p_dial_req(req, "p2p.ping", msg, &rc);
	if (!q) {
		return rc;
	}
	cJSON_AddNumberToObject(q, "count", count);
	cJSON_AddNumberToObject(q, "timeout_ms", P2P_CALL_MS - 1000);
	return p2p_engine_call(d, q, P2P_CALL_MS, reply, msg);
}

int natxd_cmd_identify(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg)
{
	cJSON *q;
	int rc;

	q = p2p_dial_req(req, "p2p.identify", msg, &rc);
	if (!q) {
		return rc;
	}
	cJSON_AddNumberToObject(q, "timeout_ms", P2P_CALL_MS - 1000);
	return p2p_engine_call(d, q, P2P_CALL_MS, reply, msg);
}

int natxd_cmd_p2p_svc(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg)
{
	static const char *const keys[] = { "protocol", "target", "listen", "addr" };
	cJSON *q = cJSON_CreateObject();
	const char *sid;
	int rc;

	if (!q || !cJSON_AddStringToObject(q, "cmd", req->cmd)) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = ctl_req_str(req, keys[i], P2P_ADDR_MAX - 1, &rc);

		if (!v && rc != -ENOENT) {
			snprintf(msg, CTL_MSG_MAX, "\"%s\" must be a string under %d bytes",
				 keys[i], P2P_ADDR_MAX);
			cJSON_Delete(q);
			return -EINVAL;
		}
		if (v) {
			cJSON_AddStringToObject(q, keys[i], v);
		}
	}
	sid = ctl_req_str(req, "service", 10, &rc);
	if (sid) {
		char *end;
		unsigned long n = strtoul(sid, &end, 10);

		if (!sid[0] || *end || n > 0xffffffffUL) {
			snprintf(msg, CTL_MSG_MAX, "\"service\" must be a service id");
			cJSON_Delete(q);
			return -EINVAL;
		}
		cJSON_AddNumberToObject(q, "fwd_id", (double)n);
	} else if (rc != -ENOENT) {
		snprintf(msg, CTL_MSG_MAX, "\"service\" must be a service id");
		cJSON_Delete(q);
		return -EINVAL;
	}
	return p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
}

int natxd_cmd_peers(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		    cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject();

	if (!q || !cJSON_AddStringToObject(q, "cmd", "p2p.peers")) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	return p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
}

int natxd_cmd_reserve(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg)
{
	cJSON *q;
	int rc;

	q = p2p_dial_req(req, "p2p.reserve", msg, &rc);
	if (!q) {
		return rc;
	}
	cJSON_AddNumberToObject(q, "timeout_ms", P2P_CALL_MS - 1000);
	return p2p_engine_call(d, q, P2P_CALL_MS, reply, msg);
}

int natxd_cmd_relay_status(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			   cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject();

	if (!q || !cJSON_AddStringToObject(q, "cmd", "p2p.relay.status")) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	return p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
}

/* p2p_csv_array - the comma-separated items of @csv (trimmed, non-empty) as a JSON array. */
static cJSON *p2p_csv_array(const char *csv)
{
	cJSON *a = cJSON_CreateArray();
	const char *p = csv;

	while (a && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char item[P2P_ADDR_MAX];

		while (n && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
			n--;
		}
		if (n && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			cJSON_AddItemToArray(a, cJSON_CreateString(item));
		}
		p = e ? e + 1 : p + strlen(p);
	}
	return a;
}

/* p2p_relay_conf_json - the [relay] settings as p2p.relay.setup's "relay" object. */
static cJSON *p2p_relay_conf_json(const struct natx_config *c)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "max_reservations", c->relay_max_reservations);
	cJSON_AddNumberToObject(o, "max_reservations_per_peer", c->relay_max_reservations_per_peer);
	cJSON_AddNumberToObject(o, "max_reservations_per_ip", c->relay_max_reservations_per_ip);
	cJSON_AddNumberToObject(o, "max_circuits", c->relay_max_circuits);
	cJSON_AddNumberToObject(o, "max_circuits_per_peer", c->relay_max_circuits_per_peer);
	cJSON_AddNumberToObject(o, "reservation_ttl_s", c->relay_reservation_ttl_s);
	cJSON_AddNumberToObject(o, "circuit_duration_s", c->relay_circuit_duration_s);
	cJSON_AddNumberToObject(o, "circuit_data_bytes", c->relay_circuit_data_bytes);
	cJSON_AddItemToObject(o, "allow", p2p_csv_array(c->relay_allow_peers));
	cJSON_AddItemToObject(o, "deny", p2p_csv_array(c->relay_deny_peers));
	cJSON_AddItemToObject(o, "announce", p2p_csv_array(c->relay_announce));
	return o;
}

/* The engine instance (pid, start time) the relay settings and bootstrap peers went to. */
static long p2p_pushed_pid;
static uint64_t p2p_pushed_at;

void natxd_p2p_tick(struct natxd *d)
{
	char msg[CTL_MSG_MAX];
	cJSON *q, *r, *peers, *it;
	int rc;

	if (!d->cfg.enable_libp2p || !d->p2p_peer[0] || d->eng.state != ENGINE_UP ||
	    (d->eng.pid == p2p_pushed_pid && d->eng.started_at == p2p_pushed_at)) {
		return;
	}
	p2p_pushed_pid = d->eng.pid;
	p2p_pushed_at = d->eng.started_at;
	if (d->cfg.relay_enabled) {
		q = cJSON_CreateObject();
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(q, "cmd", "p2p.relay.setup");
		cJSON_AddItemToObject(q, "relay", p2p_relay_conf_json(&d->cfg));
		rc = p2p_engine_call(d, q, d->eng.timeout_ms, r, msg);
		cJSON_Delete(r);
		if (rc) {
			pr_err(MOD, "circuit relay not started: %s", msg);
		} else {
			pr_info(MOD, "circuit relay server on");
		}
	}
	peers = p2p_csv_array(d->cfg.libp2p_bootstrap_peers);
	cJSON_ArrayForEach(it, peers)
	{
		q = cJSON_CreateObject();
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(q, "cmd", "p2p.keep");
		cJSON_AddStringToObject(q, "addr", it->valuestring);
		rc = p2p_engine_call(d, q, d->eng.timeout_ms, r, msg);
		cJSON_Delete(r);
		if (rc) {
			pr_warn(MOD, "bootstrap peer %.200s: %s", it->valuestring, msg);
		}
	}
	cJSON_Delete(peers);
}

void natxd_p2p_relay_metrics(struct natxd *d, cJSON *o)
{
	char msg[CTL_MSG_MAX];
	cJSON *q, *r, *c;

	if (!d->cfg.enable_libp2p || !d->cfg.relay_enabled || !d->p2p_peer[0] ||
	    d->eng.state != ENGINE_UP) {
		return;
	}
	q = cJSON_CreateObject();
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(q, "cmd", "p2p.relay.status");
	if (!p2p_engine_call(d, q, d->eng.timeout_ms, r, msg) &&
	    (c = cJSON_GetObjectItemCaseSensitive(r, "counters"))) {
		cJSON_AddItemToObject(o, "relay", cJSON_DetachItemViaPointer(r, c));
	}
	cJSON_Delete(r);
}

void natxd_p2p_relay_prom(struct natxd *d, FILE *f)
{
	static const char *const rows[][3] = {
		{ "reservations_active", "gauge", "relay reservations held now" },
		{ "reservations_total", "counter",
		  "relay reservations granted (renewals excluded)" },
		{ "reservations_refused", "counter", "relay reservations refused" },
		{ "reservations_renewed", "counter", "relay reservation renewals" },
		{ "circuits_active", "gauge", "relayed circuits open now" },
		{ "circuits_total", "counter", "relayed circuits opened" },
		{ "circuits_refused", "counter", "relay CONNECTs refused" },
		{ "circuits_limited", "counter", "circuits reset at their data or duration limit" },
		{ "bytes_relayed", "counter", "bytes moved through circuits, both directions" },
	};
	cJSON *o = cJSON_CreateObject();
	const cJSON *c;

	natxd_p2p_relay_metrics(d, o);
	c = cJSON_GetObjectItemCaseSensitive(o, "relay");
	for (size_t i = 0; c && i < sizeof(rows) / sizeof(rows[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, rows[i][0]);
		const char *suffix = strcmp(rows[i][1], "counter") || strstr(rows[i][0], "total") ?
					     "" :
					     "_total";

		if (!cJSON_IsNumber(v)) {
			continue;
		}
		fprintf(f, "# HELP natx_relay_%s%s %s\n# TYPE natx_relay_%s%s %s\n", rows[i][0],
			suffix, rows[i][2], rows[i][0], suffix, rows[i][1]);
		fprintf(f, "natx_relay_%s%s %.0f\n", rows[i][0], suffix, v->valuedouble);
	}
	cJSON_Delete(o);
}
