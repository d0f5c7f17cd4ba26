// SPDX-License-Identifier: MIT
/* natxd's libp2p identity, engine options and commands (see p2p_svc.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
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

/* p2p_svc_load - natxd_p2p_setup's store_p2p_each callback: a stored service is desired. */
static int p2p_svc_load(void *arg, const struct store_p2p *s)
{
	struct natxd *d = arg;
	const struct store_conn *c = s->forward ? conns_p2p_flow(d, s->id) : NULL;
	struct engine_p2p p = { .key = s->id, .forward = s->forward };

	/* conns were loaded first: a connect's flow forward comes back as one, with the node's
	 * other addresses as it has them now */
	p.flow = c != NULL;
	if (c) {
		conns_flow_alts(d, c->target, s->peer, p.alt, sizeof(p.alt));
	}

	snprintf(p.protocol, sizeof(p.protocol), "%s", s->protocol);
	snprintf(p.addr, sizeof(p.addr), "%s", s->addr);
	snprintf(p.peer, sizeof(p.peer), "%s", s->peer);
	if (engine_sup_p2p_define(&d->eng, &p)) {
		pr_warn(MOD, "stored p2p service %llu (%s) not loaded: too many",
			(unsigned long long)s->id, s->protocol);
	}
	return 0;
}

void natxd_p2p_setup(struct natxd *d)
{
	char path[PATH_MAX];

	d->p2p_peer[0] = '\0';
	d->p2p_error[0] = '\0';
	d->eng.p2p_key_file[0] = '\0';
	/* Stored p2p services are desired whether libp2p is on or not (they wait for it). */
	d->eng.np2p = 0;
	if (d->st.db && store_p2p_each(&d->st, p2p_svc_load, d)) {
		pr_warn(MOD, "cannot read the stored p2p services: %s", store_errmsg(&d->st));
	}
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
	d->eng.p2p_keepalive_s = d->cfg.libp2p_keepalive_s;
	d->eng.p2p_keepalive_timeout_s = d->cfg.libp2p_keepalive_timeout_s;
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

/* p2p_svc_engine_close - p2p.close of engine service @id (rollback of an add). */
static void p2p_svc_engine_close(struct natxd *d, unsigned long id)
{
	cJSON *q = cJSON_CreateObject(), *r = NULL;

	if (q && cJSON_AddStringToObject(q, "cmd", "p2p.close") &&
	    cJSON_AddNumberToObject(q, "fwd_id", (double)id)) {
		engine_sup_call(&d->eng, q, &r);
	}
	cJSON_Delete(q);
	cJSON_Delete(r);
}

/* p2p_svc_set_id - replace member "id" of @o by @key (natxd's id of the service). */
static void p2p_svc_set_id(cJSON *o, const char *name, uint64_t key)
{
	cJSON *n = cJSON_CreateNumber((double)key);

	if (n && !cJSON_ReplaceItemInObjectCaseSensitive(o, name, n)) {
		cJSON_Delete(n);
	}
}

/* p2p_svc_str - string member @name of @o, "" when absent. */
static const char *p2p_svc_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* p2p_svc_alts - the strings of array @a, space-separated, into @out ("" when none fit). */
static void p2p_svc_alts(const cJSON *a, char *out, size_t len)
{
	const cJSON *it;
	size_t at = 0;

	out[0] = '\0';
	cJSON_ArrayForEach(it, a)
	{
		size_t l = cJSON_IsString(it) ? strlen(it->valuestring) : 0;

		if (!l || at + l + 2 > len) {
			continue;
		}
		if (at) {
			out[at++] = ' ';
		}
		memcpy(out + at, it->valuestring, l + 1);
		at += l;
	}
}

/*
 * p2p_svc_persist - the engine runs the new service @reply describes: store it (its row id
 * becomes the service id natxd shows) and make it desired, so it comes back after a natxd or
 * engine restart. On failure the engine's service is closed again: nothing half-done remains.
 */
static int p2p_svc_persist(struct natxd *d, bool forward, cJSON *reply, char *msg)
{
	const cJSON *sid = cJSON_GetObjectItemCaseSensitive(reply, "service_id");
	cJSON *svc = cJSON_GetObjectItemCaseSensitive(reply, "service");
	struct engine_p2p p = { .forward = forward };
	struct store_p2p row = { .forward = forward };
	const char *addr = p2p_svc_str(svc, forward ? "listen" : "target");
	int rc;

	if (!cJSON_IsNumber(sid) || sid->valuedouble < 1 || !cJSON_IsObject(svc)) {
		snprintf(msg, CTL_MSG_MAX, "the engine did not describe the new service");
		return -EIO;
	}
	p.id = (unsigned long)sid->valuedouble;
	p.flow = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(svc, "flow"));
	p2p_svc_alts(cJSON_GetObjectItemCaseSensitive(svc, "alt_addrs"), p.alt, sizeof(p.alt));
	rc = -EINVAL;
	if ((size_t)snprintf(p.protocol, sizeof(p.protocol), "%s", p2p_svc_str(svc, "protocol")) >=
		    sizeof(p.protocol) ||
	    (size_t)snprintf(p.peer, sizeof(p.peer), "%s", p2p_svc_str(svc, "peer")) >=
		    sizeof(p.peer)) {
		snprintf(msg, CTL_MSG_MAX, "protocol or peer address too long to keep");
		goto close_engine;
	}
	if (forward ? engine_sup_p2p_listen_hostport(addr, p.addr, sizeof(p.addr)) :
		      (size_t)snprintf(p.addr, sizeof(p.addr), "%s", addr) >= sizeof(p.addr)) {
		snprintf(msg, CTL_MSG_MAX, "address '%.100s' cannot be kept (too long)", addr);
		goto close_engine;
	}
	memcpy(row.protocol, p.protocol, sizeof(row.protocol));
	memcpy(row.addr, p.addr, sizeof(row.addr));
	memcpy(row.peer, p.peer, sizeof(row.peer));
	rc = store_p2p_add(&d->st, &row, d->clk->wall_s(d->clk));
	if (rc) {
		snprintf(msg, CTL_MSG_MAX, "cannot persist the p2p service: %s",
			 rc == -EEXIST ? "already stored" : store_errmsg(&d->st));
		rc = rc == -EEXIST ? -EEXIST : -EIO;
		goto close_engine;
	}
	p.key = row.id;
	rc = engine_sup_p2p_define(&d->eng, &p);
	if (rc) {
		snprintf(msg, CTL_MSG_MAX, "at most %d p2p services", ENGINE_P2P_MAX);
		store_p2p_rm(&d->st, row.id);
		rc = -NATX_E_LIMIT;
		goto close_engine;
	}
	p2p_svc_set_id(reply, "service_id", p.key);
	p2p_svc_set_id(svc, "id", p.key);
	pr_info(MOD, "p2p %s %s %s: service %llu", forward ? "forward" : "expose", p.protocol,
		p.addr, (unsigned long long)p.key);
	return 0;

close_engine:
	p2p_svc_engine_close(d, p.id);
	cJSON_DeleteItemFromObjectCaseSensitive(reply, "service_id");
	cJSON_DeleteItemFromObjectCaseSensitive(reply, "service");
	return rc;
}

/* p2p_svc_hostport_ma - "A:P" / "[A]:P" (numeric) as /ip4|ip6/A/tcp/P, for listings. */
static void p2p_svc_hostport_ma(const char *hp, char *out, size_t cap)
{
	const char *colon = strrchr(hp, ':');

	if (!colon) {
		snprintf(out, cap, "%s", hp);
	} else if (hp[0] == '[' && colon > hp + 1 && colon[-1] == ']') {
		snprintf(out, cap, "/ip6/%.*s/tcp/%s", (int)(colon - hp - 2), hp + 1, colon + 1);
	} else {
		snprintf(out, cap, "/ip4/%.*s/tcp/%s", (int)(colon - hp), hp, colon + 1);
	}
}

/*
 * p2p_svc_ls - the engine's services with natxd's ids ("state":"running", "engine_id"), then
 * the desired ones the engine does not run ("failed" with "error", or "pending"). With the
 * engine down the list holds the desired services only.
 */
static int p2p_svc_ls(struct natxd *d, cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject(), *got = cJSON_CreateObject(), *list, *it, *next;
	bool *seen;
	int rc;

	if (!q || !got || !cJSON_AddStringToObject(q, "cmd", "p2p.ls")) {
		cJSON_Delete(q);
		cJSON_Delete(got);
		return -ENOMEM;
	}
	rc = p2p_engine_call(d, q, d->eng.timeout_ms, got, msg);
	if (rc && !(rc == -NATX_E_UNAVAILABLE && d->p2p_peer[0])) {
		cJSON_Delete(got);
		return rc;
	}
	list = cJSON_DetachItemFromObjectCaseSensitive(got, "services");
	cJSON_Delete(got);
	if (!cJSON_IsArray(list)) {
		cJSON_Delete(list);
		list = cJSON_CreateArray();
	}
	seen = calloc(ENGINE_P2P_MAX, sizeof(*seen));
	if (!list || !seen || !cJSON_AddItemToObject(reply, "services", list)) {
		cJSON_Delete(list);
		free(seen);
		return -ENOMEM;
	}
	for (it = list->child; it; it = next) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
		int i = cJSON_IsNumber(id) ?
				engine_sup_p2p_find(&d->eng, 0, (unsigned long)id->valuedouble) :
				-1;

		next = it->next;
		if (i < 0) {
			/* not natxd's (the next reconcile closes it): no id a close could use */
			cJSON_Delete(cJSON_DetachItemViaPointer(list, it));
			continue;
		}
		seen[i] = true;
		cJSON_AddNumberToObject(it, "engine_id", id->valuedouble);
		p2p_svc_set_id(it, "id", d->eng.p2p[i].key);
		cJSON_AddStringToObject(it, "state", "running");
	}
	for (unsigned i = 0; i < d->eng.np2p; i++) {
		const struct engine_p2p *p = &d->eng.p2p[i];
		char ma[ENGINE_P2P_ADDR_MAX + 16];
		cJSON *o;

		if (seen[i]) {
			continue;
		}
		o = cJSON_CreateObject();
		if (!o) {
			free(seen);
			return -ENOMEM;
		}
		cJSON_AddItemToArray(list, o);
		cJSON_AddNumberToObject(o, "id", (double)p->key);
		cJSON_AddStringToObject(o, "kind", p->forward ? "forward" : "expose");
		cJSON_AddStringToObject(o, "protocol", p->protocol);
		if (p->forward) {
			p2p_svc_hostport_ma(p->addr, ma, sizeof(ma));
			cJSON_AddStringToObject(o, "listen", ma);
			cJSON_AddStringToObject(o, "peer", p->peer);
		} else {
			cJSON_AddStringToObject(o, "target", p->addr);
		}
		cJSON_AddStringToObject(o, "state", p->error[0] ? "failed" : "pending");
		cJSON_AddStringToObject(o, "error",
					p->error[0] ? p->error :
					rc	    ? "the engine is not running" :
						      "");
	}
	free(seen);
	return 0;
}

/* p2p_svc_close - forget service @req.service (natxd's id) and close it in the engine. */
static int p2p_svc_close(struct natxd *d, const struct ctl_req *req, char *msg)
{
	const char *sid;
	unsigned long long n;
	char *end;
	int rc;

	sid = ctl_req_str(req, "service", 20, &rc);
	if (!sid || !sid[0]) {
		snprintf(msg, CTL_MSG_MAX, "\"service\" must be a service id");
		return -EINVAL;
	}
	errno = 0;
	n = strtoull(sid, &end, 10);
	if (*end || errno || sid[0] < '0' || sid[0] > '9') {
		snprintf(msg, CTL_MSG_MAX, "\"service\" must be a service id");
		return -EINVAL;
	}
	return p2p_svc_remove(d, n, msg);
}

int p2p_svc_remove(struct natxd *d, unsigned long long n, char *msg)
{
	int rc, i;

	i = n ? engine_sup_p2p_find(&d->eng, n, 0) : -1;
	if (i < 0) {
		snprintf(msg, CTL_MSG_MAX, "no p2p service with id %llu", n);
		return -ENOENT;
	}
	rc = store_p2p_rm(&d->st, n);
	if (rc && rc != -ENOENT) {
		snprintf(msg, CTL_MSG_MAX, "cannot update the database: %s", store_errmsg(&d->st));
		return -EIO;
	}
	pr_info(MOD, "p2p service %llu closed", n);
	rc = engine_sup_p2p_rm(&d->eng, (unsigned)i);
	if (rc) {
		pr_warn(MOD, "engine p2p.close: %s", natx_strerror(rc));
	}
	return 0;
}

int natxd_cmd_p2p_svc(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		      cJSON *reply, char *msg)
{
	static const char *const keys[] = { "protocol", "target", "listen", "addr" };
	bool forward = !strcmp(req->cmd, "p2p.forward");
	cJSON *q;
	int rc;

	if (!strcmp(req->cmd, "p2p.ls")) {
		return p2p_svc_ls(d, reply, msg);
	}
	if (!strcmp(req->cmd, "p2p.close")) {
		return p2p_svc_close(d, req, msg);
	}
	q = cJSON_CreateObject();
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
	rc = p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
	return rc ? rc : p2p_svc_persist(d, forward, reply, msg);
}

int p2p_svc_forward_add(struct natxd *d, const char *protocol, const char *listen, const char *peer,
			bool flow, const char *alts, cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject(), *a;
	char buf[ENGINE_P2P_ALT_LEN], *save, *ma;
	int rc;

	if (!q || !cJSON_AddStringToObject(q, "cmd", "p2p.forward") ||
	    !cJSON_AddStringToObject(q, "protocol", protocol) ||
	    !cJSON_AddStringToObject(q, "listen", listen) ||
	    !cJSON_AddStringToObject(q, "addr", peer) ||
	    (flow && !cJSON_AddBoolToObject(q, "flow", true))) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	if (flow && alts && alts[0]) {
		a = cJSON_AddArrayToObject(q, "alt_addrs");
		snprintf(buf, sizeof(buf), "%s", alts);
		for (ma = strtok_r(buf, " ", &save); a && ma; ma = strtok_r(NULL, " ", &save)) {
			cJSON_AddItemToArray(a, cJSON_CreateString(ma));
		}
	}
	rc = p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
	return rc ? rc : p2p_svc_persist(d, true, reply, msg);
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

int natxd_cmd_upgrades(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		       cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject();

	if (!q || !cJSON_AddStringToObject(q, "cmd", "p2p.upgrades")) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	return p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
}

/* natxd_cmd_nat_call - engine @cmd (p2p.nat or p2p.nat.probe). */
static int natxd_cmd_nat_call(struct natxd *d, const char *cmd, cJSON *reply, char *msg)
{
	cJSON *q = cJSON_CreateObject();

	if (!q || !cJSON_AddStringToObject(q, "cmd", cmd)) {
		cJSON_Delete(q);
		return -ENOMEM;
	}
	return p2p_engine_call(d, q, d->eng.timeout_ms, reply, msg);
}

int natxd_cmd_nat(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg)
{
	return natxd_cmd_nat_call(d, "p2p.nat", reply, msg);
}

int natxd_cmd_nat_probe(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
			cJSON *reply, char *msg)
{
	return natxd_cmd_nat_call(d, "p2p.nat.probe", reply, msg);
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

/* Finished upgrades of the engine instance p2p_pushed_* already counted in the metrics. */
static double p2p_upg_ok, p2p_upg_failed;
static uint64_t p2p_upg_polled_ms;

/* p2p_upgrades_poll - add the engine's newly finished DCUtR upgrades to the service metrics. */
static void p2p_upgrades_poll(struct natxd *d)
{
	char msg[CTL_MSG_MAX];
	struct svc *s = svc_find(&d->svcs, "libp2p");
	cJSON *q, *r;
	const cJSON *c;
	uint64_t now = d->clk->now_ms(d->clk);
	double ok, failed;

	if (!s || now - p2p_upg_polled_ms < 2000) {
		return;
	}
	p2p_upg_polled_ms = now;
	q = cJSON_CreateObject();
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(q, "cmd", "p2p.upgrades");
	if (!p2p_engine_call(d, q, d->eng.timeout_ms, r, msg) &&
	    (c = cJSON_GetObjectItemCaseSensitive(r, "counters"))) {
		ok = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "upgraded"));
		failed = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "failed"));
		for (; p2p_upg_ok < ok; p2p_upg_ok++) {
			svc_upgrade_record(s, true);
		}
		for (; p2p_upg_failed < failed; p2p_upg_failed++) {
			svc_upgrade_record(s, false);
		}
	}
	cJSON_Delete(r);
}

void natxd_p2p_tick(struct natxd *d)
{
	char msg[CTL_MSG_MAX];
	cJSON *q, *r, *peers, *it;
	int rc;

	if (!d->cfg.enable_libp2p || !d->p2p_peer[0] || d->eng.state != ENGINE_UP) {
		return;
	}
	if (d->eng.pid == p2p_pushed_pid && d->eng.started_at == p2p_pushed_at) {
		p2p_upgrades_poll(d);
		return;
	}
	p2p_pushed_pid = d->eng.pid;
	p2p_pushed_at = d->eng.started_at;
	p2p_upg_ok = p2p_upg_failed = 0; /* a new engine counts from zero */
	q = cJSON_CreateObject();
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(q, "cmd", "p2p.dcutr");
	cJSON_AddBoolToObject(q, "enabled", d->cfg.enable_hole_punching);
	cJSON_AddBoolToObject(q, "relay_discovery", d->cfg.enable_relay_discovery);
	cJSON_AddNumberToObject(q, "attempt_timeout_ms", d->cfg.upgrade_timeout_ms);
	rc = p2p_engine_call(d, q, d->eng.timeout_ms, r, msg);
	cJSON_Delete(r);
	if (rc) {
		pr_warn(MOD, "hole punching setting not applied: %s", msg);
	}
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

/* Engine counters of migratable flows (p2p_flow.c), as natx_flow_<name> (docs/migration.md). */
static const char *const p2p_flow_rows[][4] = {
	/* engine counter, metric, type, help */
	{ "flows_open", "open", "gauge", "bridged flows (/natx/flow/1.0.0) open now" },
	{ "flows_total", "total", "counter", "bridged flows opened, both ends" },
	{ "flows_migrated", "migrated_total", "counter",
	  "flows moved to a direct path by a clean switch" },
	{ "flows_repaired", "repaired_total", "counter",
	  "flows that continued on a new path after the one in use died" },
	{ "flows_failed", "failed_total", "counter",
	  "flows closed (application connection reset) for lack of a path or a peer's reset" },
	{ "flow_paths", "paths_total", "counter", "paths attached after a flow's first" },
	{ "flow_resent", "resent_bytes_total", "counter",
	  "bytes sent again after a lost path or a NACK" },
};

/* p2p_flow_counters - the engine's flow counters as {"open":N,...} (metric names), or NULL. */
static cJSON *p2p_flow_counters(struct natxd *d)
{
	char msg[CTL_MSG_MAX];
	cJSON *q, *r, *o = NULL;
	const cJSON *c;

	if (!d->cfg.enable_libp2p || !d->p2p_peer[0] || d->eng.state != ENGINE_UP) {
		return NULL;
	}
	q = cJSON_CreateObject();
	r = cJSON_CreateObject();
	if (!q || !r || !cJSON_AddStringToObject(q, "cmd", "p2p.peer")) {
		cJSON_Delete(q);
		cJSON_Delete(r);
		return NULL;
	}
	if (!p2p_engine_call(d, q, d->eng.timeout_ms, r, msg) &&
	    cJSON_IsObject(c = cJSON_GetObjectItemCaseSensitive(r, "counters"))) {
		o = cJSON_CreateObject();
		for (size_t i = 0; o && i < sizeof(p2p_flow_rows) / sizeof(p2p_flow_rows[0]); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, p2p_flow_rows[i][0]);

			if (cJSON_IsNumber(v)) {
				cJSON_AddNumberToObject(o, p2p_flow_rows[i][1], v->valuedouble);
			}
		}
	}
	cJSON_Delete(r);
	return o;
}

void natxd_p2p_relay_metrics(struct natxd *d, cJSON *o)
{
	char msg[CTL_MSG_MAX];
	cJSON *q, *r, *c;

	c = p2p_flow_counters(d);
	if (c) {
		cJSON_AddItemToObject(o, "flows", c);
	}
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
	c = cJSON_GetObjectItemCaseSensitive(o, "flows");
	for (size_t i = 0; c && i < sizeof(p2p_flow_rows) / sizeof(p2p_flow_rows[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, p2p_flow_rows[i][1]);

		if (cJSON_IsNumber(v)) {
			fprintf(f,
				"# HELP natx_flow_%s %s\n# TYPE natx_flow_%s %s\nnatx_flow_%s %.0f\n",
				p2p_flow_rows[i][1], p2p_flow_rows[i][3], p2p_flow_rows[i][1],
				p2p_flow_rows[i][2], p2p_flow_rows[i][1], v->valuedouble);
		}
	}
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
