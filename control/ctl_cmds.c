// SPDX-License-Identifier: MIT
/* Control command handlers, bound by name to ctl_cmd_table (control/daemon.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_cmdtab.h"
#include "ctl_pay.h"
#include "daemon.h"
#include "fwdspec.h"
#include "natx/err.h"
#include "natx/log.h"
#include "nodes.h"
#include "p2p_svc.h"
#include "tunnel_cfg.h"
#include "tunnel_sup.h"
#include "udpx_ctl.h"

#define MOD "ctl"

typedef int (*ctl_handler_fn)(struct natxd *d, const struct ctl_caller *who,
			      const struct ctl_req *req, cJSON *reply, char *msg);

/* ---- shared JSON views ------------------------------------------------------------------ */

cJSON *natxd_engine_json(struct natxd *d, bool with_stats)
{
	struct engine_sup *es = &d->eng;
	cJSON *o = cJSON_CreateObject();

	if (!o) {
		return NULL;
	}
	cJSON_AddStringToObject(o, "state", engine_sup_state_name(es->state));
	cJSON_AddStringToObject(o, "path", es->path);
	cJSON_AddStringToObject(o, "socket", es->sock);
	cJSON_AddNumberToObject(o, "restarts", es->restarts);
	cJSON_AddStringToObject(o, "last_error", es->last_error);
	if (es->state == ENGINE_UP) {
		cJSON_AddNumberToObject(o, "pid", (double)es->pid);
		cJSON_AddStringToObject(o, "version", es->version);
		cJSON_AddNumberToObject(o, "shard_count", es->eng_shards);
		cJSON_AddNumberToObject(o, "started_at", (double)es->started_at);
		cJSON_AddBoolToObject(o, "attached", es->attached);
	}
	if (with_stats && es->state == ENGINE_UP) {
		cJSON *req = cJSON_CreateObject(), *r = NULL;

		if (req && cJSON_AddStringToObject(req, "cmd", "stats") &&
		    engine_sup_call(es, req, &r) == 0) {
			cJSON_AddItemToObject(o, "shards", cJSON_DetachItemFromObject(r, "shards"));
			cJSON_AddItemToObject(o, "total", cJSON_DetachItemFromObject(r, "total"));
			if (cJSON_GetObjectItem(r, "steering")) {
				cJSON_AddItemToObject(o, "steering",
						      cJSON_DetachItemFromObject(r, "steering"));
				cJSON_AddItemToObject(o, "stun",
						      cJSON_DetachItemFromObject(r, "stun"));
			}
		}
		cJSON_Delete(req);
		cJSON_Delete(r);
	}
	return o;
}

cJSON *natxd_service_flags_json(struct natxd *d)
{
	static const char *const types[] = { "libp2p", "rathole" };
	bool enabled[] = { d->cfg.enable_libp2p, d->cfg.enable_rathole };
	cJSON *o = cJSON_CreateObject();

	if (!o) {
		return NULL;
	}
	for (unsigned i = 0; i < 2; i++) {
		struct svc *s = svc_find(&d->svcs, types[i]);
		struct svc_status st = { 0 };
		cJSON *e = cJSON_AddObjectToObject(o, types[i]);

		if (!e) {
			cJSON_Delete(o);
			return NULL;
		}
		if (s) {
			s->ops->status(s->ctx, &st);
			st.operational = s->ops->operational(s->ctx);
		}
		cJSON_AddBoolToObject(e, "enabled", enabled[i]);
		/* An enabled service whose adapter is not part of this build is not registered. */
		cJSON_AddBoolToObject(e, "registered", s != NULL);
		cJSON_AddBoolToObject(e, "operational", s && st.operational);
		cJSON_AddNumberToObject(e, "active_connections", st.active_connections);
	}
	/* Services registered under other types (tests, future adapters). */
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];
		struct svc_status st = { 0 };
		cJSON *e;

		if (cJSON_GetObjectItemCaseSensitive(o, s->ops->type)) {
			continue;
		}
		e = cJSON_AddObjectToObject(o, s->ops->type);
		if (!e) {
			cJSON_Delete(o);
			return NULL;
		}
		s->ops->status(s->ctx, &st);
		cJSON_AddBoolToObject(e, "enabled", true);
		cJSON_AddBoolToObject(e, "registered", true);
		cJSON_AddBoolToObject(e, "operational", s->ops->operational(s->ctx));
		cJSON_AddNumberToObject(e, "active_connections", st.active_connections);
	}
	return o;
}

cJSON *natxd_services_json(struct natxd *d)
{
	cJSON *a = cJSON_CreateArray();

	for (unsigned i = 0; a && i < d->svcs.n; i++) {
		cJSON *s = svc_to_json(&d->svcs, d->svcs.v[i]);

		if (!s) {
			cJSON_Delete(a);
			return NULL;
		}
		cJSON_AddItemToArray(a, s);
	}
	return a;
}

cJSON *natxd_metrics_json(struct natxd *d)
{
	cJSON *o = cJSON_CreateObject(), *t, *per;
	struct metrics total;
	unsigned active;

	if (!o) {
		return NULL;
	}
	svc_metrics_total(&d->svcs, &total, &active);
	t = cJSON_AddObjectToObject(o, "total");
	per = cJSON_AddObjectToObject(o, "services");
	if (!t || !per || metrics_to_json(&total, active, t)) {
		goto free_obj;
	}
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];
		struct svc_status st = { 0 };
		cJSON *m = cJSON_AddObjectToObject(per, s->ops->type);

		s->ops->status(s->ctx, &st);
		if (!m || metrics_to_json(&s->m, st.active_connections, m)) {
			goto free_obj;
		}
	}
	/* The circuit relay's counters (relay status), when it runs. */
	natxd_p2p_relay_metrics(d, o);
	natxd_udp_metrics(d, o);
	/* The STUN responder's counters, as `bpf status` shows them (XDP or user space). */
	if (!cJSON_AddItemToObject(o, "bpf", bpf_mgr_status_json(&d->bpf))) {
		goto free_obj;
	}
	return o;

free_obj:
	cJSON_Delete(o);
	return NULL;
}

cJSON *natxd_status_json(struct natxd *d)
{
	cJSON *o = cJSON_CreateObject(), *eng;
	uint64_t now = d->clk->wall_s(d->clk);
	unsigned healthy = 0;

	if (!o) {
		return NULL;
	}
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];

		healthy += health_eval(&s->health, d->clk->now_ms(d->clk), now,
				       s->ops->operational(s->ctx)) != HEALTH_UNHEALTHY;
	}
	cJSON_AddStringToObject(o, "version", NATX_VERSION);
	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddNumberToObject(o, "started_at", (double)d->started_s);
	cJSON_AddNumberToObject(o, "uptime_s", (double)(now - d->started_s));
	cJSON_AddStringToObject(o, "config_file", d->cfg.file);
	cJSON_AddStringToObject(o, "socket", d->cfg.socket_path);
	cJSON_AddStringToObject(o, "http", d->http_bound[0] ? d->http_bound : "off");
	cJSON_AddStringToObject(o, "database", d->cfg.database);
	cJSON_AddNumberToObject(o, "schema_version", store_version(&d->st));
	cJSON_AddNumberToObject(o, "services", d->svcs.n);
	cJSON_AddNumberToObject(o, "services_available", healthy);
	cJSON_AddNumberToObject(o, "forwards", d->eng.nfwd);
	cJSON_AddNumberToObject(o, "ctl_clients", d->ctl.nclients);
	cJSON_AddNumberToObject(o, "reloads", d->reloads);
	cJSON_AddStringToObject(o, "reload_error", d->reload_error);
	eng = natxd_engine_json(d, false);
	if (!eng) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddItemToObject(o, "engine", eng);
	if (d->pay.be) {
		cJSON_AddItemToObject(o, "payments", l402_svc_status_json(&d->pay));
	}
	return o;
}

cJSON *natxd_conn_info_json(const struct svc_conn_info *ci)
{
	cJSON *o = cJSON_CreateObject();

	if (!o) {
		return NULL;
	}
	cJSON_AddStringToObject(o, "target_node_id", ci->target_node_id);
	cJSON_AddStringToObject(o, "traversal_type", ci->traversal_type);
	if (ci->public_address[0]) {
		cJSON_AddStringToObject(o, "public_address", ci->public_address);
	} else {
		cJSON_AddNullToObject(o, "public_address");
	}
	if (ci->proxy_address[0]) {
		cJSON_AddStringToObject(o, "proxy_address", ci->proxy_address);
	} else {
		cJSON_AddNullToObject(o, "proxy_address");
	}
	if (ci->auth_token[0]) {
		cJSON_AddStringToObject(o, "auth_token", ci->auth_token);
	} else {
		cJSON_AddNullToObject(o, "auth_token");
	}
	if (ci->expires_at) {
		cJSON_AddNumberToObject(o, "expires_at", (double)ci->expires_at);
	} else {
		cJSON_AddNullToObject(o, "expires_at");
	}
	return o;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static int ctl_attach(cJSON *reply, const char *name, cJSON *item)
{
	if (!item) {
		return -ENOMEM;
	}
	cJSON_AddItemToObject(reply, name, item);
	return 0;
}

static int cmd_status(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg)
{
	return ctl_attach(reply, "status", natxd_status_json(d));
}

static int cmd_services(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			cJSON *reply, char *msg)
{
	return ctl_attach(reply, "services", natxd_services_json(d));
}

static int cmd_health(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg)
{
	uint64_t now = d->clk->now_ms(d->clk), wall = d->clk->wall_s(d->clk);
	cJSON *a = cJSON_CreateArray();
	enum health_state worst = HEALTH_HEALTHY;

	if (!a) {
		return -ENOMEM;
	}
	for (unsigned i = 0; i < d->svcs.n; i++) {
		struct svc *s = d->svcs.v[i];
		bool op = s->ops->operational(s->ctx);
		enum health_state h = health_eval(&s->health, now, wall, op);
		cJSON *e = cJSON_CreateObject();

		if (!e) {
			cJSON_Delete(a);
			return -ENOMEM;
		}
		cJSON_AddItemToArray(a, e);
		cJSON_AddStringToObject(e, "type", s->ops->type);
		cJSON_AddStringToObject(e, "state", health_state_name(h));
		cJSON_AddBoolToObject(e, "operational", op);
		cJSON_AddNumberToObject(e, "since", (double)s->health.since_s);
		cJSON_AddStringToObject(e, "breaker",
					breaker_state_name(breaker_state_at(&s->br, now)));
		if (s->health.last_error_s) {
			cJSON_AddStringToObject(e, "last_error", s->health.last_error);
			cJSON_AddNumberToObject(e, "last_error_at", (double)s->health.last_error_s);
		} else {
			cJSON_AddNullToObject(e, "last_error");
			cJSON_AddNullToObject(e, "last_error_at");
		}
		if (h > worst) {
			worst = h;
		}
	}
	cJSON_AddItemToObject(reply, "services", a);
	/* No service at all cannot serve anything: overall unhealthy, honestly. */
	cJSON_AddStringToObject(reply, "overall",
				health_state_name(d->svcs.n ? worst : HEALTH_UNHEALTHY));
	return 0;
}

static int cmd_metrics(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg)
{
	return ctl_attach(reply, "metrics", natxd_metrics_json(d));
}

static int cmd_connect(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg)
{
	struct svc_request r = { 0 };
	struct svc_conn_info ci;
	struct svc *used;
	const char *proto, *local, *service;
	bool direct;
	int err, rc;

	r.target = ctl_req_str(req, "target", CTL_TARGET_MAX - 1, &err);
	if (!r.target) {
		snprintf(msg, CTL_MSG_MAX, "\"target\" must be a node id of 1..%d bytes",
			 CTL_TARGET_MAX - 1);
		return -EINVAL;
	}
	if (ctl_req_bool(req, "prefer_libp2p", false, &r.prefer_libp2p) ||
	    ctl_req_bool(req, "allow_payment", false, &r.allow_payment) ||
	    ctl_req_bool(req, "direct", false, &direct)) {
		snprintf(msg, CTL_MSG_MAX, "prefer_libp2p, allow_payment and direct are booleans");
		return -EINVAL;
	}
	r.need_caps = direct ? SVC_CAP_DIRECT : 0;
	proto = ctl_req_str(req, "proto", 3, &err);
	if (proto && !strcmp(proto, "tcp")) {
		r.need_caps |= SVC_CAP_TCP;
	} else if (proto && !strcmp(proto, "udp")) {
		r.need_caps |= SVC_CAP_UDP;
	} else if (proto || err != -ENOENT) {
		snprintf(msg, CTL_MSG_MAX, "\"proto\" must be \"tcp\" or \"udp\"");
		return -EINVAL;
	}
	local = ctl_req_str(req, "local", 63, &err);
	if (!local && err != -ENOENT) {
		snprintf(msg, CTL_MSG_MAX, "\"local\" must be host:port");
		return -EINVAL;
	}
	service = ctl_req_str(req, "service", CONNS_SERVICE_MAX - 1, &err);
	if (!service && err != -ENOENT) {
		snprintf(msg, CTL_MSG_MAX, "\"service\" must be a name under %d bytes",
			 CONNS_SERVICE_MAX);
		return -EINVAL;
	}
	if (local) {
		return conns_open(d, &r, who->key, service, local, reply, msg);
	}
	rc = natxd_connect(d, &r, who->key, &ci, &used, msg);
	if (rc) {
		return rc;
	}
	return ctl_attach(reply, "connection_info", natxd_conn_info_json(&ci));
}

static int cmd_connections(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			   cJSON *reply, char *msg)
{
	cJSON *o = conns_json(d), *a = o ? cJSON_DetachItemFromObject(o, "connections") : NULL;

	cJSON_Delete(o);
	return ctl_attach(reply, "connections", a);
}

static int cmd_connections_close(struct natxd *d, const struct ctl_caller *who,
				 const struct ctl_req *req, cJSON *reply, char *msg)
{
	const char *s;
	char *end;
	unsigned long id;
	int err;

	s = ctl_req_str(req, "connection", 10, &err);
	id = s ? strtoul(s, &end, 10) : 0;
	if (!s || !s[0] || *end || !id || id > 0xffffffffUL) {
		snprintf(msg, CTL_MSG_MAX, "\"connection\" must be a connection id");
		return -EINVAL;
	}
	return conns_close(d, (uint32_t)id, msg);
}

static int cmd_engine_stats(struct natxd *d, const struct ctl_caller *who,
			    const struct ctl_req *req, cJSON *reply, char *msg)
{
	return ctl_attach(reply, "engine", natxd_engine_json(d, true));
}

static int cmd_bpf_status(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			  cJSON *reply, char *msg)
{
	return ctl_attach(reply, "bpf", bpf_mgr_status_json(&d->bpf));
}

static int cmd_forward_add(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			   cJSON *reply, char *msg)
{
	struct fwdspec fs;
	const char *why = NULL;
	const char *spec;
	cJSON *f;
	int err, rc, i;

	spec = ctl_req_str(req, "spec", CTL_SPEC_MAX, &err);
	if (!spec) {
		snprintf(msg, CTL_MSG_MAX, "\"spec\" must be tcp|udp:LISTEN=UPSTREAM");
		return -EINVAL;
	}
	if (fwdspec_parse(spec, &fs, &why)) {
		snprintf(msg, CTL_MSG_MAX, "bad forward spec '%s': %s", spec, why);
		return -EINVAL;
	}
	rc = engine_sup_forward_add(&d->eng, spec, ENGINE_FWD_STORED, msg);
	if (rc) {
		return rc;
	}
	rc = store_forward_add(&d->st, spec, d->clk->wall_s(d->clk));
	i = engine_sup_forward_find(&d->eng, spec, 0);
	if (rc) {
		/* Not persisted: do not leave it running either, or a restart would lose it. */
		snprintf(msg, CTL_MSG_MAX, "cannot persist forward: %s", store_errmsg(&d->st));
		if (i >= 0) {
			engine_sup_forward_rm(&d->eng, (unsigned)i);
		}
		return rc == -EEXIST ? -EEXIST : -EIO;
	}
	pr_info(MOD, "forward added: %s (uid %u)", spec, (unsigned)who->uid);
	f = cJSON_AddObjectToObject(reply, "forward");
	if (!f) {
		return -ENOMEM;
	}
	cJSON_AddNumberToObject(f, "id", (double)d->eng.fwd[i].id);
	cJSON_AddStringToObject(f, "spec", spec);
	return 0;
}

static int cmd_forward_list(struct natxd *d, const struct ctl_caller *who,
			    const struct ctl_req *req, cJSON *reply, char *msg)
{
	cJSON *a = cJSON_AddArrayToObject(reply, "forwards"), *r = NULL, *rq;
	const cJSON *running = NULL;

	if (!a) {
		return -ENOMEM;
	}
	rq = cJSON_CreateObject();
	if (rq && cJSON_AddStringToObject(rq, "cmd", "forward.list") &&
	    engine_sup_call(&d->eng, rq, &r) == 0) {
		running = cJSON_GetObjectItemCaseSensitive(r, "forwards");
	}
	cJSON_Delete(rq);
	for (unsigned i = 0; i < d->eng.nfwd; i++) {
		const struct engine_fwd *f = &d->eng.fwd[i];
		cJSON *e;
		const cJSON *it;

		if (tunnel_spec_is(f->spec)) {
			continue; /* tunnel entries: natxctl tunnel ls */
		}
		e = cJSON_CreateObject();
		if (!e) {
			cJSON_Delete(r);
			return -ENOMEM;
		}
		cJSON_AddItemToArray(a, e);
		cJSON_AddStringToObject(e, "spec", f->spec);
		cJSON_AddStringToObject(e, "source",
					f->source == ENGINE_FWD_CONFIG ? "config" : "ctl");
		cJSON_AddStringToObject(e, "state",
					f->id ? "running" : (f->error[0] ? "failed" : "pending"));
		cJSON_AddNumberToObject(e, "id", (double)f->id);
		cJSON_AddStringToObject(e, "error", f->error);
		cJSON_ArrayForEach(it, running)
		{
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
			static const char *const keys[] = { "proto",	  "listen",	 "upstream",
							    "flows_open", "flows_total", "bytes" };

			if (!f->id || !cJSON_IsNumber(id) ||
			    (unsigned long)id->valuedouble != f->id) {
				continue;
			}
			for (unsigned k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
				const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, keys[k]);

				if (v) {
					cJSON_AddItemToObject(e, keys[k], cJSON_Duplicate(v, 1));
				}
			}
		}
	}
	cJSON_Delete(r);
	return 0;
}

static int cmd_forward_rm(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			  cJSON *reply, char *msg)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(req->root, "forward");
	unsigned long id = 0;
	const char *spec = NULL;
	char *end;
	int i, rc;

	if (!it) {
		it = cJSON_GetObjectItemCaseSensitive(req->root, "id");
		if (!it) {
			it = cJSON_GetObjectItemCaseSensitive(req->root, "spec");
		}
	}
	if (cJSON_IsNumber(it) && it->valuedouble >= 1 && it->valuedouble < 1e15) {
		id = (unsigned long)it->valuedouble;
	} else if (cJSON_IsString(it) &&
		   strnlen(it->valuestring, CTL_SPEC_MAX + 1) <= CTL_SPEC_MAX) {
		id = strtoul(it->valuestring, &end, 10);
		if (*end || !it->valuestring[0]) {
			id = 0;
			spec = it->valuestring;
		}
	} else {
		snprintf(msg, CTL_MSG_MAX, "give \"forward\": ID or SPEC");
		return -EINVAL;
	}
	i = engine_sup_forward_find(&d->eng, spec, id);
	if (i < 0) {
		snprintf(msg, CTL_MSG_MAX, "no such forward");
		return -ENOENT;
	}
	if (d->eng.fwd[i].source == ENGINE_FWD_CONFIG) {
		snprintf(msg, CTL_MSG_MAX,
			 "forward %s comes from the configuration: edit it there and reload",
			 d->eng.fwd[i].spec);
		return -EINVAL;
	}
	rc = store_forward_rm(&d->st, d->eng.fwd[i].spec);
	if (rc && rc != -ENOENT) {
		snprintf(msg, CTL_MSG_MAX, "cannot update the database: %s", store_errmsg(&d->st));
		return -EIO;
	}
	pr_info(MOD, "forward removed: %s (uid %u)", d->eng.fwd[i].spec, (unsigned)who->uid);
	rc = engine_sup_forward_rm(&d->eng, (unsigned)i);
	if (rc) {
		pr_warn(MOD, "engine forward.rm: %s", natx_strerror(rc));
	}
	return 0;
}

static int cmd_reload(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg)
{
	char err[CONFIG_ERR_MAX];
	int rc = natxd_reload(d, err);

	if (rc) {
		snprintf(msg, CTL_MSG_MAX, "%s", err);
		return rc;
	}
	cJSON_AddNumberToObject(reply, "reloads", d->reloads);
	return 0;
}

static int cmd_version(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg)
{
	cJSON_AddStringToObject(reply, "natxd", NATX_VERSION);
	cJSON_AddNumberToObject(reply, "protocol", CTL_PROTO_VERSION);
	cJSON_AddNumberToObject(reply, "schema", store_schema_version());
	if (d->eng.state == ENGINE_UP) {
		cJSON_AddStringToObject(reply, "engine", d->eng.version);
	} else {
		cJSON_AddNullToObject(reply, "engine");
	}
	return 0;
}

static const struct {
	const char *name;
	ctl_handler_fn fn;
} ctl_handlers[] = {
	{ "status", cmd_status },
	{ "services", cmd_services },
	{ "health", cmd_health },
	{ "metrics", cmd_metrics },
	{ "connect", cmd_connect },
	{ "connections", cmd_connections },
	{ "node.set", natxd_cmd_node },
	{ "node.ls", natxd_cmd_node },
	{ "node.rm", natxd_cmd_node },
	{ "connections.close", cmd_connections_close },
	{ "engine.stats", cmd_engine_stats },
	{ "bpf.status", cmd_bpf_status },
	{ "forward.add", cmd_forward_add },
	{ "forward.list", cmd_forward_list },
	{ "forward.rm", cmd_forward_rm },
	{ "reload", cmd_reload },
	{ "version", cmd_version },
	{ "invoice.list", cmd_invoice_list },
	{ "invoice.settle", cmd_invoice_settle },
	{ "token.list", cmd_token_list },
	{ "token.revoke", cmd_token_revoke },
	{ "tunnel.ls", tunnel_cmd_ls },
	{ "tunnel.add", tunnel_cmd_add },
	{ "tunnel.rm", tunnel_cmd_rm },
	{ "peer", natxd_cmd_peer },
	{ "ping", natxd_cmd_ping },
	{ "identify", natxd_cmd_identify },
	{ "peers", natxd_cmd_peers },
	{ "reserve", natxd_cmd_reserve },
	{ "relay.status", natxd_cmd_relay_status },
	{ "upgrades", natxd_cmd_upgrades },
	{ "nat", natxd_cmd_nat },
	{ "nat.probe", natxd_cmd_nat_probe },
	{ "p2p.expose", natxd_cmd_p2p_svc },
	{ "p2p.forward", natxd_cmd_p2p_svc },
	{ "p2p.ls", natxd_cmd_p2p_svc },
	{ "p2p.close", natxd_cmd_p2p_svc },
	{ "udp.expose", natxd_cmd_udp },
	{ "udp.unexpose", natxd_cmd_udp },
	{ "udp.ls", natxd_cmd_udp },
};

static ctl_handler_fn ctl_handler_find(const char *name)
{
	for (unsigned i = 0; i < sizeof(ctl_handlers) / sizeof(ctl_handlers[0]); i++) {
		if (!strcmp(ctl_handlers[i].name, name)) {
			return ctl_handlers[i].fn;
		}
	}
	return NULL;
}

int ctl_cmds_check(void)
{
	unsigned rows = 0;

	for (const struct ctl_cmd *c = ctl_cmd_table; c->words; c++, rows++) {
		if (!ctl_handler_find(c->name)) {
			return -ENOENT;
		}
	}
	return rows == sizeof(ctl_handlers) / sizeof(ctl_handlers[0]) ? 0 : -ENOENT;
}

cJSON *ctl_cmds_run(struct natxd *d, const struct ctl_caller *who, struct ctl_req *req)
{
	const struct ctl_cmd *c = ctl_cmd_by_name(req->cmd);
	ctl_handler_fn fn = c ? ctl_handler_find(c->name) : NULL;
	char msg[CTL_MSG_MAX] = "";
	cJSON *reply;
	int rc;

	if (!fn) {
		snprintf(msg, sizeof(msg), "unknown command '%s'", req->cmd);
		return ctl_reply_error(req->id, -EOPNOTSUPP, msg);
	}
	if (c->mutating && !who->privileged) {
		snprintf(msg, sizeof(msg),
			 "'%s' needs root, natxd's user or the control group (uid %u is none)",
			 c->name, (unsigned)who->uid);
		return ctl_reply_error(req->id, -EACCES, msg);
	}
	reply = ctl_reply_new(req->id, true);
	if (!reply) {
		return NULL;
	}
	rc = fn(d, who, req, reply, msg);
	if (rc) {
		cJSON_Delete(reply);
		return ctl_reply_error(req->id, rc, msg[0] ? msg : NULL);
	}
	return reply;
}

cJSON *ctl_cmds_dispatch(void *arg, const struct ctl_caller *who, struct ctl_req *req)
{
	return ctl_cmds_run(arg, who, req);
}
