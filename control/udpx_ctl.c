// SPDX-License-Identifier: MIT
/* udpx_ctl - natxd's side of UDP services between natx nodes (contract in udpx_ctl.h). */
#include "udpx_ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "daemon.h"
#include "engine_sup.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p_svc.h"
#include "udpx.h"

#define MOD "udpx"

/* Engine p2p services of udpx are desired under keys from here (store rows stay below). */
#define UDPX_CTL_KEY_BASE (1ULL << 40)

struct udpx_ctl {
	struct udpx *u;
	uint64_t next_key;
	struct {
		char name[64];
		uint64_t key;
	} exp[UDPX_SERVICES_MAX];
	unsigned int nexp;
};

void natxd_udp_start(struct natxd *d)
{
	struct udpx_ctl *x = calloc(1, sizeof(*x));
	int err = -ENOMEM;

	if (x) {
		x->u = udpx_new(&err);
	}
	if (!x || !x->u) {
		pr_warn(MOD, "UDP services off: %s", natx_strerror(err));
		free(x);
		return;
	}
	x->next_key = UDPX_CTL_KEY_BASE;
	d->udp = x;
	pr_info(MOD, "UDP services: gateway on 127.0.0.1:%u",
		(unsigned int)udpx_gateway_port(x->u));
}

void natxd_udp_stop(struct natxd *d)
{
	if (!d->udp) {
		return;
	}
	udpx_free(d->udp->u);
	free(d->udp);
	d->udp = NULL;
}

/* udpx_ctl_protocol - /natx/udp/NAME/1.0.0 into @out. 0 or -EINVAL. */
static int udpx_ctl_protocol(const char *name, char *out, size_t len)
{
	size_t n = strlen(name);

	if (!n || n > 63) {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-')) {
			return -EINVAL;
		}
	}
	return (size_t)snprintf(out, len, "/natx/udp/%s/1.0.0", name) >= len ? -EINVAL : 0;
}

/* udpx_ctl_engine_close - p2p.close of engine service @id and forget desired key @key. */
static void udpx_ctl_engine_forget(struct natxd *d, uint64_t key)
{
	int i = engine_sup_p2p_find(&d->eng, key, 0);

	if (i >= 0) {
		engine_sup_p2p_rm(&d->eng, (unsigned int)i);
	}
}

/*
 * udpx_ctl_engine_add - run p2p.expose / p2p.forward in the engine and keep it desired under a
 * new key (*@key); a forward's bound "127.0.0.1:PORT" into @bound.
 */
static int udpx_ctl_engine_add(struct natxd *d, bool forward, const char *proto, const char *addr,
			       const char *peer, uint64_t *key, char *bound, size_t blen, char *msg)
{
	cJSON *q = cJSON_CreateObject(), *r = cJSON_CreateObject();
	struct engine_p2p p = { .forward = forward };
	const cJSON *svc, *sid, *v;
	int rc;

	if (!q || !r ||
	    !cJSON_AddStringToObject(q, "cmd", forward ? "p2p.forward" : "p2p.expose") ||
	    !cJSON_AddStringToObject(q, "protocol", proto) ||
	    !cJSON_AddStringToObject(q, forward ? "listen" : "target", addr) ||
	    (forward && !cJSON_AddStringToObject(q, "addr", peer))) {
		cJSON_Delete(q);
		cJSON_Delete(r);
		return -ENOMEM;
	}
	rc = p2p_engine_call(d, q, d->eng.timeout_ms, r, msg);
	if (rc) {
		goto free_reply;
	}
	svc = cJSON_GetObjectItemCaseSensitive(r, "service");
	sid = cJSON_GetObjectItemCaseSensitive(r, "service_id");
	if (!cJSON_IsNumber(sid) || sid->valuedouble < 1) {
		snprintf(msg, CTL_MSG_MAX, "the engine did not describe the new service");
		rc = -EIO;
		goto free_reply;
	}
	p.id = (unsigned long)sid->valuedouble;
	p.key = d->udp->next_key++;
	snprintf(p.protocol, sizeof(p.protocol), "%s", proto);
	if (forward) {
		v = cJSON_GetObjectItemCaseSensitive(svc, "listen");
		if (!cJSON_IsString(v) ||
		    engine_sup_p2p_listen_hostport(v->valuestring, p.addr, sizeof(p.addr))) {
			snprintf(msg, CTL_MSG_MAX, "the engine did not say where it listens");
			rc = -EIO;
			goto close_engine;
		}
		v = cJSON_GetObjectItemCaseSensitive(svc, "peer");
		snprintf(p.peer, sizeof(p.peer), "%s", cJSON_IsString(v) ? v->valuestring : peer);
		if ((size_t)snprintf(bound, blen, "%s", p.addr) >= blen) {
			snprintf(msg, CTL_MSG_MAX, "listen address %.100s too long", p.addr);
			rc = -EIO;
			goto close_engine;
		}
	} else {
		snprintf(p.addr, sizeof(p.addr), "%s", addr);
	}
	rc = engine_sup_p2p_define(&d->eng, &p);
	if (rc) {
		snprintf(msg, CTL_MSG_MAX, "at most %d p2p services", ENGINE_P2P_MAX);
		rc = -NATX_E_LIMIT;
		goto close_engine;
	}
	*key = p.key;
	cJSON_Delete(r);
	return 0;
close_engine:
	cJSON_Delete(r);
	r = NULL;
	q = cJSON_CreateObject();
	if (q && cJSON_AddStringToObject(q, "cmd", "p2p.close") &&
	    cJSON_AddNumberToObject(q, "fwd_id", (double)p.id)) {
		engine_sup_call(&d->eng, q, &r);
	}
	cJSON_Delete(q);
free_reply:
	cJSON_Delete(r);
	return rc;
}

static int udpx_ctl_expose(struct natxd *d, const char *name, const char *target, cJSON *reply,
			   char *msg)
{
	struct udpx_ctl *x = d->udp;
	char proto[96], gw[32];
	uint64_t key;
	int rc;

	if (udpx_ctl_protocol(name, proto, sizeof(proto))) {
		snprintf(msg, CTL_MSG_MAX, "a UDP service name is 1..63 of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if (x->nexp >= UDPX_SERVICES_MAX) {
		snprintf(msg, CTL_MSG_MAX, "at most %d UDP services", UDPX_SERVICES_MAX);
		return -NATX_E_LIMIT;
	}
	rc = udpx_service_add(x->u, name, target, msg, CTL_MSG_MAX);
	if (rc) {
		return rc;
	}
	snprintf(gw, sizeof(gw), "127.0.0.1:%u", (unsigned int)udpx_gateway_port(x->u));
	rc = udpx_ctl_engine_add(d, false, proto, gw, NULL, &key, NULL, 0, msg);
	if (rc) {
		udpx_service_rm(x->u, name);
		return rc;
	}
	snprintf(x->exp[x->nexp].name, sizeof(x->exp[0].name), "%s", name);
	x->exp[x->nexp++].key = key;
	pr_info(MOD, "UDP service %s = %s exposed as %s", name, target, proto);
	cJSON_AddStringToObject(reply, "protocol", proto);
	cJSON_AddStringToObject(reply, "name", name);
	cJSON_AddStringToObject(reply, "target", target);
	return 0;
}

static int udpx_ctl_unexpose(struct natxd *d, const char *name, char *msg)
{
	struct udpx_ctl *x = d->udp;

	for (unsigned int i = 0; i < x->nexp; i++) {
		if (!strcmp(x->exp[i].name, name)) {
			udpx_ctl_engine_forget(d, x->exp[i].key);
			udpx_service_rm(x->u, name);
			x->exp[i] = x->exp[--x->nexp];
			return 0;
		}
	}
	snprintf(msg, CTL_MSG_MAX, "no UDP service %.64s", name);
	return -ENOENT;
}

int natxd_cmd_udp(struct natxd *d, const struct ctl_caller *who, const struct ctl_req *req,
		  cJSON *reply, char *msg)
{
	const char *name, *target;
	int err;

	if (!d->udp) {
		snprintf(msg, CTL_MSG_MAX, "UDP services are off (see natxd's log)");
		return -NATX_E_UNAVAILABLE;
	}
	if (!strcmp(req->cmd, "udp.ls")) {
		cJSON *o = udpx_json(d->udp->u);
		cJSON *c;

		if (!o) {
			return -ENOMEM;
		}
		while ((c = o->child)) {
			cJSON_AddItemToObject(reply, c->string, cJSON_DetachItemViaPointer(o, c));
		}
		cJSON_Delete(o);
		return 0;
	}
	name = ctl_req_str(req, "name", 63, &err);
	if (!name) {
		snprintf(msg, CTL_MSG_MAX, "\"name\" must be a service name of 1..63 bytes");
		return -EINVAL;
	}
	if (!strcmp(req->cmd, "udp.unexpose")) {
		return udpx_ctl_unexpose(d, name, msg);
	}
	target = ctl_req_str(req, "target", 63, &err);
	if (!target) {
		snprintf(msg, CTL_MSG_MAX, "\"target\" must be HOST:PORT");
		return -EINVAL;
	}
	return udpx_ctl_expose(d, name, target, reply, msg);
}

bool udpx_ctl_is_udp(const char *local, bool udp, const char **bind)
{
	if (!strncmp(local, "udp:", 4)) {
		*bind = local + 4;
		return true;
	}
	*bind = local;
	return udp;
}

/*
 * udpx_ctl_stun - the STUN responder to learn our public UDP address from: the first IPv4 of
 * @peer (the relay of a /p2p-circuit address, else the peer itself), at our stun_port: the
 * relay must answer Binding requests there (its XDP reflector, or the engine's user-space
 * responder: NAT_TRAVERSAL_STUN_FALLBACK=always without an XDP interface, docs/udp-punch.md).
 * "" when @peer has no IPv4 address.
 */
static void udpx_ctl_stun(struct natxd *d, const char *peer, char *out, size_t cap)
{
	const char *p = strncmp(peer, "/ip4/", 5) ? NULL : peer + 5;
	size_t n = p ? strcspn(p, "/") : 0;

	out[0] = 0;
	if (p && n && n < 16) {
		snprintf(out, cap, "%.*s:%u", (int)n, p, d->cfg.stun_port);
	}
}

int udpx_ctl_open(struct natxd *d, const char *service, const char *bind, const char *peer,
		  struct store_conn *c, char *msg)
{
	struct udpx_conn_req r = { .name = service, .local = bind, .target = peer };
	char proto[96], stream[64], stun[40], bound[64];
	uint64_t key;
	uint32_t id;
	int rc;

	if (!d->udp) {
		snprintf(msg, CTL_MSG_MAX, "UDP services are off (see natxd's log)");
		return -NATX_E_UNAVAILABLE;
	}
	if (!service || udpx_ctl_protocol(service, proto, sizeof(proto))) {
		snprintf(msg, CTL_MSG_MAX,
			 "a UDP connection needs --service NAME (1..63 of [A-Za-z0-9._-])");
		return -EINVAL;
	}
	rc = conns_peer_offers(d, peer, proto, NULL, msg);
	if (rc) {
		return rc;
	}
	rc = udpx_ctl_engine_add(d, true, proto, "127.0.0.1:0", peer, &key, stream, sizeof(stream),
				 msg);
	if (rc) {
		return rc;
	}
	udpx_ctl_stun(d, peer, stun, sizeof(stun));
	r.stream = stream;
	r.stun = stun[0] ? stun : NULL;
	rc = udpx_conn_open(d->udp->u, &r, &id, bound, msg, CTL_MSG_MAX);
	if (rc) {
		udpx_ctl_engine_forget(d, key);
		return rc;
	}
	snprintf(c->local, sizeof(c->local), "%s", bound);
	snprintf(c->handle, sizeof(c->handle), UDPX_CTL_HANDLE "%u:%llu", (unsigned int)id,
		 (unsigned long long)key);
	pr_info(MOD, "UDP connection %u: %s -> %s %s (stream via 127.0.0.1 forward %s, STUN %s)",
		(unsigned int)id, bound, peer, proto, stream, stun[0] ? stun : "none");
	return 0;
}

/* udpx_ctl_handle - the udpx id and engine key of handle @h. 0 or -EINVAL. */
static int udpx_ctl_handle(const char *h, uint32_t *id, uint64_t *key)
{
	char *end;
	unsigned long long v;

	if (strncmp(h, UDPX_CTL_HANDLE, strlen(UDPX_CTL_HANDLE))) {
		return -EINVAL;
	}
	v = strtoull(h + strlen(UDPX_CTL_HANDLE), &end, 10);
	if (*end != ':' || v > 0xffffffffULL) {
		return -EINVAL;
	}
	*id = (uint32_t)v;
	*key = strtoull(end + 1, &end, 10);
	return *end ? -EINVAL : 0;
}

int udpx_ctl_close(struct natxd *d, const char *h)
{
	uint32_t id;
	uint64_t key;

	if (!d->udp || udpx_ctl_handle(h, &id, &key)) {
		return 0;
	}
	udpx_conn_close(d->udp->u, id);
	udpx_ctl_engine_forget(d, key);
	return 0;
}

void udpx_ctl_path(struct natxd *d, const char *h, char *path, size_t plen, char *reason,
		   size_t rlen)
{
	uint32_t id;
	uint64_t key;

	if (!d->udp || udpx_ctl_handle(h, &id, &key) ||
	    udpx_conn_path(d->udp->u, id, path, plen, reason, rlen)) {
		snprintf(path, plen, "udp-closed");
	}
}

void natxd_udp_metrics(struct natxd *d, cJSON *o)
{
	cJSON *j, *c;

	if (!d->udp) {
		return;
	}
	j = udpx_json(d->udp->u);
	c = j ? cJSON_DetachItemFromObjectCaseSensitive(j, "counters") : NULL;
	if (c) {
		cJSON_AddItemToObject(o, "udp", c);
	}
	cJSON_Delete(j);
}

void natxd_udp_prom(struct natxd *d, FILE *f)
{
	if (d->udp) {
		udpx_prom(d->udp->u, f);
	}
}
