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
