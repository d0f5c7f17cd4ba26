// SPDX-License-Identifier: MIT
/* conns - connections with a local port (contract in conns.h). */
#include "conns.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "engine_sup.h"
#include "fwdspec.h"
#include "nodes.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p_svc.h"
#include "select.h"
#include "udpx_ctl.h"

#define MOD "conns"

/* Prefixes of store_conn.handle: what to remove from the engine on close. */
#define CONNS_H_FORWARD "forward:" /* + forward spec */
#define CONNS_H_P2P "p2p:" /* + natxd's p2p service id (p2p_svc.c) */
#define CONNS_H_FLOW "p2pf:" /* the same, a flow forward (/natx/flow/1.0.0) */
#define CONNS_FLOW_PROTOCOL "/natx/flow/1.0.0"
#define CONNS_FLOW_NAME_MAX 64 /* longest service name an OPEN carries (mig_wire) */
#define CONNS_FLOW_ALT_MAX 4 /* other addresses a flow forward's repair may dial (engine) */

static int conns_load_one(void *arg, const struct store_conn *c)
{
	struct natxd *d = arg;
	struct store_conn *n;

	if (d->conns.n >= CONNS_MAX) {
		pr_warn(MOD, "more than %d stored connections: %u and later not loaded", CONNS_MAX,
			(unsigned)c->id);
		return 1;
	}
	n = malloc(sizeof(*n));
	if (!n) {
		return -ENOMEM;
	}
	*n = *c;
	d->conns.v[d->conns.n++] = n;
	if (c->id >= d->conns.next_id) {
		d->conns.next_id = c->id + 1;
	}
	return 0;
}

int conns_load(struct natxd *d)
{
	int rc;

	d->conns.next_id = 1;
	rc = store_conn_each(&d->st, conns_load_one, d);
	return rc > 0 ? 0 : rc;
}

void conns_free(struct natxd *d)
{
	for (unsigned int i = 0; i < d->conns.n; i++) {
		free(d->conns.v[i]);
	}
	d->conns.n = 0;
}

int conns_protocol(const char *name, char *out, size_t len)
{
	size_t n = strlen(name);

	if (!n || n >= CONNS_SERVICE_MAX) {
		return -EINVAL;
	}
	if (name[0] == '/') {
		if ((size_t)snprintf(out, len, "%s", name) >= len) {
			return -EINVAL;
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return -EINVAL;
		}
	}
	return (size_t)snprintf(out, len, "/natx/svc/%s/1.0.0", name) >= len ? -EINVAL : 0;
}

const struct store_conn *conns_p2p_flow(const struct natxd *d, unsigned long long key)
{
	for (unsigned int i = 0; i < d->conns.n; i++) {
		const char *h = d->conns.v[i]->handle;

		if (!strncmp(h, CONNS_H_FLOW, strlen(CONNS_H_FLOW)) &&
		    strtoull(h + strlen(CONNS_H_FLOW), NULL, 10) == key) {
			return d->conns.v[i];
		}
	}
	return NULL;
}

void conns_flow_alts(struct natxd *d, const char *target, const char *used, char *out, size_t len)
{
	char cand[NODES_ADDRS_MAX][NODES_ADDR_LEN];
	int n = nodes_candidates(d, target, cand), k = 0;
	size_t at = 0;

	out[0] = '\0';
	for (int i = 0; i < n && k < CONNS_FLOW_ALT_MAX; i++) {
		size_t l = strlen(cand[i]);

		if (!strcmp(cand[i], used) || at + l + 2 > len) {
			continue;
		}
		if (at) {
			out[at++] = ' ';
		}
		memcpy(out + at, cand[i], l + 1);
		at += l;
		k++;
	}
}

int conns_peer_offers(struct natxd *d, const char *peer, const char *proto, bool *flow, char *msg)
{
	cJSON *q = cJSON_CreateObject(), *r = cJSON_CreateObject();
	const cJSON *p;
	int rc;

	if (!q || !r || !cJSON_AddStringToObject(q, "cmd", "p2p.identify") ||
	    !cJSON_AddStringToObject(q, "addr", peer)) {
		cJSON_Delete(q);
		cJSON_Delete(r);
		return -ENOMEM;
	}
	rc = p2p_engine_call(d, q, d->eng.timeout_ms, r, msg);
	if (!rc) {
		rc = -NATX_E_NOT_FOUND;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(r, "protocols"))
		{
			if (cJSON_IsString(p) && !strcmp(p->valuestring, proto)) {
				rc = 0;
			}
			if (flow && cJSON_IsString(p) &&
			    !strcmp(p->valuestring, CONNS_FLOW_PROTOCOL)) {
				*flow = true;
			}
		}
		if (rc) {
			snprintf(msg, CTL_MSG_MAX, "%.200s does not offer %.100s", peer, proto);
		}
	}
	cJSON_Delete(r);
	return rc;
}

/*
 * conns_open_p2p - a persisted p2p forward of @proto on @local to @peer (p2p_svc.c); its listen
 * address to @bound and natxd's service id to *@sid.
 */
static int conns_open_p2p(struct natxd *d, const char *proto, const char *local, const char *peer,
			  bool flow, const char *alts, char *bound, size_t blen,
			  unsigned long long *sid, char *msg)
{
	cJSON *r = cJSON_CreateObject();
	const cJSON *l, *id;
	int rc;

	if (!r) {
		return -ENOMEM;
	}
	rc = p2p_svc_forward_add(d, proto, local, peer, flow, alts, r, msg);
	if (!rc) {
		l = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "service"),
						     "listen");
		id = cJSON_GetObjectItemCaseSensitive(r, "service_id");
		if (!cJSON_IsString(l) || !cJSON_IsNumber(id) ||
		    (size_t)snprintf(bound, blen, "%s", l->valuestring) >= blen) {
			snprintf(msg, CTL_MSG_MAX, "the engine did not say where it listens");
			rc = -EIO;
		} else {
			*sid = (unsigned long long)id->valuedouble;
		}
	}
	cJSON_Delete(r);
	return rc;
}

/* conns_open_forward - an engine forward @local -> @upstream, persisted like `forward add`. */
static int conns_open_forward(struct natxd *d, const char *local, const char *upstream, char *spec,
			      size_t slen, char *msg)
{
	struct fwdspec fs;
	const char *why = NULL;
	int rc, i;

	if ((size_t)snprintf(spec, slen, "tcp:%s=%s", local, upstream) >= slen ||
	    fwdspec_parse(spec, &fs, &why)) {
		snprintf(msg, CTL_MSG_MAX, "cannot forward %s to the tunnel at %s: %s", local,
			 upstream, why ? why : "too long");
		return -EINVAL;
	}
	if (!fs.listen_port) {
		/* Each shard would bind its own ephemeral port: one address needs a fixed port. */
		snprintf(msg, CTL_MSG_MAX, "the tunnel path needs a fixed local port, not %s",
			 local);
		return -EINVAL;
	}
	rc = engine_sup_forward_add(&d->eng, spec, ENGINE_FWD_STORED, msg);
	if (rc) {
		return rc;
	}
	rc = store_forward_add(&d->st, spec, d->clk->wall_s(d->clk));
	if (rc) {
		snprintf(msg, CTL_MSG_MAX, "cannot persist the forward: %s", store_errmsg(&d->st));
		i = engine_sup_forward_find(&d->eng, spec, 0);
		if (i >= 0) {
			engine_sup_forward_rm(&d->eng, (unsigned int)i);
		}
		return -EIO;
	}
	return 0;
}

/* conns_path - "libp2p-direct", "libp2p-relay" or "tunnel" for a connect through @ci. */
static const char *conns_path(const struct store_conn *c)
{
	if (!strcmp(c->type, "libp2p")) {
		return strstr(c->via, "/p2p-circuit") ? "libp2p-relay" : "libp2p-direct";
	}
	return "tunnel";
}

static cJSON *conns_item(struct natxd *d, const struct store_conn *c)
{
	char upath[32], ureason[256];
	const char *path = conns_path(c), *reason = c->reason;
	cJSON *o = cJSON_CreateObject();

	if (!strncmp(c->handle, UDPX_CTL_HANDLE, strlen(UDPX_CTL_HANDLE))) {
		/* UDP: the path and reason now (punching, direct, relayed), not at connect time */
		udpx_ctl_path(d, c->handle, upath, sizeof(upath), ureason, sizeof(ureason));
		path = upath;
		reason = ureason;
	}
	if (!o || !cJSON_AddNumberToObject(o, "id", c->id) ||
	    !cJSON_AddStringToObject(o, "target", c->target) ||
	    !cJSON_AddStringToObject(o, "service", c->service) ||
	    !cJSON_AddStringToObject(o, "local", c->local) ||
	    !cJSON_AddStringToObject(o, "type", c->type) ||
	    !cJSON_AddStringToObject(o, "path", path) ||
	    !cJSON_AddStringToObject(o, "via", c->via) ||
	    !cJSON_AddBoolToObject(o, "flow",
				   !strncmp(c->handle, CONNS_H_FLOW, strlen(CONNS_H_FLOW))) ||
	    !cJSON_AddStringToObject(o, "reason", reason) ||
	    (reason != c->reason && !cJSON_AddStringToObject(o, "selection", c->reason)) ||
	    !cJSON_AddNumberToObject(o, "created_at", (double)c->created_s)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* conns_undo - remove what conns_open_* opened for @c (handle). 0 or -errno with @msg. */
static int conns_undo(struct natxd *d, const struct store_conn *c, char *msg)
{
	const char *h = c->handle;

	if (!strncmp(h, UDPX_CTL_HANDLE, strlen(UDPX_CTL_HANDLE))) {
		return udpx_ctl_close(d, h);
	}
	if (!strncmp(h, CONNS_H_FORWARD, strlen(CONNS_H_FORWARD))) {
		const char *spec = h + strlen(CONNS_H_FORWARD);
		int i = engine_sup_forward_find(&d->eng, spec, 0);

		if (i >= 0) {
			engine_sup_forward_rm(&d->eng, (unsigned int)i);
		}
		store_forward_rm(&d->st, spec);
		return 0;
	}
	if (!strncmp(h, CONNS_H_P2P, strlen(CONNS_H_P2P)) ||
	    !strncmp(h, CONNS_H_FLOW, strlen(CONNS_H_FLOW))) {
		int rc = p2p_svc_remove(d, strtoull(strchr(h, ':') + 1, NULL, 10), msg);

		/* Already gone (closed with `p2p close`): nothing left to undo. */
		return rc == -ENOENT ? 0 : rc;
	}
	return 0;
}

int conns_open(struct natxd *d, const struct svc_request *req, const char *who_key,
	       const char *service, const char *local, cJSON *reply, char *msg)
{
	char proto[CONNS_SERVICE_MAX + 32], spec[CTL_SPEC_MAX + 1];
	unsigned long long sid = 0;
	struct select_trace tr = { 0 };
	char alts[ENGINE_P2P_ALT_LEN] = "";
	bool flow = false;
	struct svc_conn_info ci;
	struct store_conn *c;
	struct svc *used;
	const char *bind;
	bool udp = udpx_ctl_is_udp(local, req->need_caps & SVC_CAP_UDP, &bind);
	cJSON *item;
	int rc;

	if (d->conns.n >= CONNS_MAX) {
		snprintf(msg, CTL_MSG_MAX, "at most %d connections with a local port", CONNS_MAX);
		return -NATX_E_LIMIT;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		return -ENOMEM;
	}
	rc = natxd_connect_traced(d, req, who_key, &ci, &used, msg, &tr);
	if (rc) {
		goto free_conn;
	}
	snprintf(c->target, sizeof(c->target), "%s", req->target);
	snprintf(c->service, sizeof(c->service), "%s", service ? service : "");
	snprintf(c->type, sizeof(c->type), "%s", ci.traversal_type);
	/* The selection trace, then the adapter's own account in brackets; cut when too long. */
	if (snprintf(c->reason, sizeof(c->reason), ci.detail[0] ? "%s [%s]" : "%s", tr.text,
		     ci.detail) >= (int)sizeof(c->reason)) {
		pr_debug(MOD, "connection reason cut to %zu bytes", sizeof(c->reason) - 1);
	}
	if (udp && !strcmp(ci.traversal_type, "libp2p")) {
		snprintf(c->via, sizeof(c->via), "%s", ci.public_address);
		rc = udpx_ctl_open(d, service, bind, ci.public_address, c, msg);
		if (rc) {
			goto free_conn;
		}
	} else if (udp) {
		snprintf(msg, CTL_MSG_MAX, "UDP connections need the libp2p path, not %s",
			 ci.traversal_type);
		rc = -NATX_E_UNAVAILABLE;
		goto free_conn;
	} else if (!strcmp(ci.traversal_type, "libp2p")) {
		if (!service || conns_protocol(service, proto, sizeof(proto))) {
			snprintf(msg, CTL_MSG_MAX,
				 "the libp2p path needs --service NAME ([A-Za-z0-9._-], or a "
				 "protocol starting with '/')");
			rc = -EINVAL;
			goto free_conn;
		}
		snprintf(c->via, sizeof(c->via), "%s", ci.public_address);
		rc = conns_peer_offers(d, ci.public_address, proto, &flow, msg);
		if (rc) {
			goto free_conn;
		}
		/* A natx node (it offers /natx/flow/1.0.0): bridged connections are migratable
		 * flows that move to a direct path and survive a lost relay; others (js) keep
		 * plain streams of the service's protocol. */
		flow = flow && strlen(proto) <= CONNS_FLOW_NAME_MAX;
		if (flow) {
			conns_flow_alts(d, req->target, ci.public_address, alts, sizeof(alts));
		}
		rc = conns_open_p2p(d, proto, local, ci.public_address, flow, alts, c->local,
				    sizeof(c->local), &sid, msg);
		if (rc) {
			goto free_conn;
		}
		snprintf(c->handle, sizeof(c->handle), "%s%llu", flow ? CONNS_H_FLOW : CONNS_H_P2P,
			 sid);
	} else if (ci.proxy_address[0]) {
		snprintf(c->via, sizeof(c->via), "%s", ci.proxy_address);
		rc = conns_open_forward(d, local, ci.proxy_address, spec, sizeof(spec), msg);
		if (rc) {
			goto free_conn;
		}
		snprintf(c->local, sizeof(c->local), "%s", local);
		snprintf(c->handle, sizeof(c->handle), CONNS_H_FORWARD "%s", spec);
	} else {
		snprintf(msg, CTL_MSG_MAX, "service %s gave no address to open a local port to",
			 ci.traversal_type);
		rc = -NATX_E_UNAVAILABLE;
		goto free_conn;
	}
	c->id = d->conns.next_id;
	c->created_s = d->clk->wall_s(d->clk);
	/* UDP connections last while natxd runs (udpx_ctl.h): not stored */
	rc = udp ? 0 : store_conn_add(&d->st, c);
	if (rc) {
		snprintf(msg, CTL_MSG_MAX, "cannot persist the connection: %s",
			 store_errmsg(&d->st));
		conns_undo(d, c, msg);
		rc = -EIO;
		goto free_conn;
	}
	d->conns.next_id++;
	d->conns.v[d->conns.n++] = c;
	pr_info(MOD, "connection %u: %s service %s on %s via %s (%s): %s", (unsigned int)c->id,
		c->target, c->service, c->local, c->via, conns_path(c), c->reason);
	item = conns_item(d, c);
	if (!item) {
		return -ENOMEM;
	}
	cJSON_AddItemToObject(reply, "connection", item);
	item = natxd_conn_info_json(&ci);
	if (!item) {
		return -ENOMEM;
	}
	cJSON_AddItemToObject(reply, "connection_info", item);
	return 0;
free_conn:
	free(c);
	return rc;
}

cJSON *conns_json(struct natxd *d)
{
	cJSON *o = cJSON_CreateObject(), *a = o ? cJSON_AddArrayToObject(o, "connections") : NULL;

	if (!a) {
		cJSON_Delete(o);
		return NULL;
	}
	for (unsigned int i = 0; i < d->conns.n; i++) {
		cJSON *it = conns_item(d, d->conns.v[i]);

		if (!it) {
			cJSON_Delete(o);
			return NULL;
		}
		cJSON_AddItemToArray(a, it);
	}
	return o;
}

int conns_close(struct natxd *d, uint32_t id, char *msg)
{
	unsigned int i;
	int rc;

	for (i = 0; i < d->conns.n && d->conns.v[i]->id != id; i++) {
	}
	if (i == d->conns.n) {
		snprintf(msg, CTL_MSG_MAX, "no connection %u", (unsigned int)id);
		return -ENOENT;
	}
	rc = conns_undo(d, d->conns.v[i], msg);
	if (rc) {
		return rc;
	}
	store_conn_rm(&d->st, id);
	pr_info(MOD, "connection %u closed (%s on %s)", (unsigned int)id, d->conns.v[i]->target,
		d->conns.v[i]->local);
	free(d->conns.v[i]);
	d->conns.v[i] = d->conns.v[--d->conns.n];
	return 0;
}
