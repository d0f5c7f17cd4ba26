// SPDX-License-Identifier: MIT
/* The libp2p traversal adapter (see adapter_p2p.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "adapter_p2p.h"
#include "daemon.h"
#include "natx/err.h"
#include "natx/log.h"
#include "p2p/multiaddr.h"
#include "p2p/peerid.h"
#include "p2p/relay_client.h"
#include "nodes.h"
#include "p2p_svc.h"

#define MOD "libp2p"

enum { P2P_CONNECT_MS = 6000, P2P_STATUS_MS = 1000 };

int p2p_target_parse(const char *target)
{
	uint8_t bin[MADDR_MAX_LEN], rbin[MADDR_MAX_LEN];
	struct sockaddr_storage ss;
	struct peer_id id, relay;
	size_t len, rlen;
	int has_id = 0;

	if (!target || target[0] != '/' || maddr_from_text(target, bin, sizeof(bin), &len)) {
		return -EINVAL;
	}
	/* RELAY/p2p/R/p2p-circuit/p2p/ID: the relay's part must be dialable. */
	if (!relay_circuit_parse(bin, len, rbin, sizeof(rbin), &rlen, &relay, &id)) {
		return maddr_to_sockaddr(rbin, rlen, &ss, NULL, &has_id) ? -EINVAL : 0;
	}
	if (maddr_to_sockaddr(bin, len, &ss, &id, &has_id) || !has_id) {
		return -EINVAL;
	}
	return 0;
}

static unsigned p2p_caps(void *ctx)
{
	return SVC_CAP_DIRECT | SVC_CAP_TCP | SVC_CAP_UDP; /* UDP: udpx_ctl.h */
}

static bool p2p_can_reach(void *ctx, const char *target)
{
	char cand[NODES_ADDRS_MAX][NODES_ADDR_LEN];

	return nodes_candidates(ctx, target, cand) > 0;
}

static bool p2p_operational(void *ctx)
{
	struct natxd *d = ctx;

	return d->cfg.enable_libp2p && d->p2p_peer[0] && d->eng.state == ENGINE_UP;
}

/* p2p_ping_one - one authenticated libp2p ping to @addr within @ms. 0 or -errno with @msg. */
static int p2p_ping_one(struct natxd *d, const char *addr, unsigned int ms, char *msg)
{
	cJSON *q = cJSON_CreateObject(), *r = cJSON_CreateObject();
	int rc;

	if (!q || !r || !cJSON_AddStringToObject(q, "cmd", "p2p.ping") ||
	    !cJSON_AddStringToObject(q, "addr", addr) || !cJSON_AddNumberToObject(q, "count", 1) ||
	    !cJSON_AddNumberToObject(q, "timeout_ms", ms - 1000)) {
		cJSON_Delete(q);
		cJSON_Delete(r);
		return -ENOMEM;
	}
	rc = p2p_engine_call(d, q, ms, r, msg);
	cJSON_Delete(r);
	return rc;
}

/*
 * p2p_connect - try the target's addresses in order (nodes_candidates: direct before relayed)
 * with one authenticated ping each; the first that answers is the connection's address. Every
 * address tried is named in out->detail.
 */
static int p2p_connect(void *ctx, const struct svc_request *req, struct svc_conn_info *out)
{
	static char cand[NODES_ADDRS_MAX][NODES_ADDR_LEN];
	struct natxd *d = ctx;
	char msg[512], detail[sizeof(out->detail)] = "";
	size_t dl = 0;
	int n, rc = -NATX_E_NOT_FOUND;

	n = nodes_candidates(d, req->target, cand);
	for (int i = 0; i < n; i++) {
		bool relayed = strstr(cand[i], "/p2p-circuit") != NULL;

		if (strlen(cand[i]) >= sizeof(out->public_address)) {
			continue;
		}
		/* A relayed dial is two handshakes deep: it gets more time than a direct one. */
		rc = p2p_ping_one(d, cand[i], relayed ? P2P_CONNECT_MS + 4000 : P2P_CONNECT_MS,
				  msg);
		if (dl < sizeof(detail)) {
			dl += (size_t)snprintf(detail + dl, sizeof(detail) - dl, "%s%s %s%s%.60s",
					       dl ? "; " : "", relayed ? "relayed" : "direct",
					       rc ? "failed" : "ok", rc ? ": " : "",
					       rc ? natx_strerror(rc) : "");
		}
		if (!rc) {
			memset(out, 0, sizeof(*out));
			snprintf(out->target_node_id, sizeof(out->target_node_id), "%s",
				 req->target);
			snprintf(out->traversal_type, sizeof(out->traversal_type), "libp2p");
			/* The address that answered an authenticated libp2p ping. */
			snprintf(out->public_address, sizeof(out->public_address), "%s", cand[i]);
			snprintf(out->detail, sizeof(out->detail), "%s", detail);
			return 0;
		}
		pr_info(MOD, "connect %.100s via %.200s: %s", req->target, cand[i], msg);
	}
	return rc;
}

/* p2p_counter - a number from the engine's counters object, 0 when absent. */
static double p2p_counter(const cJSON *c, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, name);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* p2p_nat_text - the engine's AutoNAT verdict as "public 3/3" ("?" when it cannot tell). */
static void p2p_nat_text(struct natxd *d, char *out, size_t cap)
{
	cJSON *q = cJSON_CreateObject(), *r = cJSON_CreateObject();
	const cJSON *v;
	char msg[512];

	snprintf(out, cap, "?");
	if (!q || !r || !cJSON_AddStringToObject(q, "cmd", "p2p.nat")) {
		cJSON_Delete(q);
		cJSON_Delete(r);
		return;
	}
	if (!p2p_engine_call(d, q, P2P_STATUS_MS, r, msg)) { /* consumes q */
		v = cJSON_GetObjectItemCaseSensitive(r, "reachability");
		snprintf(out, cap, "%.8s %.0f/%.0f", cJSON_IsString(v) ? v->valuestring : "?",
			 p2p_counter(r, "confidence"), p2p_counter(r, "max_confidence"));
	}
	cJSON_Delete(r);
}

static void p2p_status(void *ctx, struct svc_status *out)
{
	struct natxd *d = ctx;
	cJSON *q, *r;
	const cJSON *c;
	char msg[512], nat[32];

	memset(out, 0, sizeof(*out));
	if (!d->cfg.enable_libp2p || !d->p2p_peer[0]) {
		snprintf(out->detail, sizeof(out->detail), "libp2p off: %.140s",
			 d->p2p_error[0] ? d->p2p_error :
					   "enabled after natxd started; restart it");
		return;
	}
	q = cJSON_CreateObject();
	r = cJSON_CreateObject();
	if (!q || !r || !cJSON_AddStringToObject(q, "cmd", "p2p.peer")) {
		cJSON_Delete(q);
		cJSON_Delete(r);
		snprintf(out->detail, sizeof(out->detail), "out of memory");
		return;
	}
	if (p2p_engine_call(d, q, P2P_STATUS_MS, r, msg)) {
		snprintf(out->detail, sizeof(out->detail), "peer %.60s, engine: %.80s", d->p2p_peer,
			 msg);
		cJSON_Delete(r);
		return;
	}
	c = cJSON_GetObjectItemCaseSensitive(r, "counters");
	out->operational = true;
	out->active_connections = (unsigned)p2p_counter(c, "conns_open");
	p2p_nat_text(d, nat, sizeof(nat));
	snprintf(out->detail, sizeof(out->detail),
		 "peer %.56s; nat %s; conns in %.0f out %.0f, failed %.0f, handshakes failed %.0f",
		 d->p2p_peer, nat, p2p_counter(c, "conns_in"), p2p_counter(c, "conns_out"),
		 p2p_counter(c, "conns_failed"), p2p_counter(c, "handshake_failed"));
	cJSON_Delete(r);
}

const struct svc_ops p2p_adapter_ops = {
	.type = "libp2p",
	.capabilities = p2p_caps,
	.can_reach = p2p_can_reach,
	.connect = p2p_connect,
	.operational = p2p_operational,
	.status = p2p_status,
};

int p2p_adapter_register(struct natxd *d)
{
	return svc_register(&d->svcs, &p2p_adapter_ops, d);
}
